"""A local Kubernetes cluster for cern-spawner's tests and demo.

Real upstream etcd, kube-apiserver, kube-scheduler and kube-controller-manager, plus a node
agent that registers Magnum-labelled nodes and runs bound pods as local processes.
"""
