"""The sandbox's Cluster API: the MachineDeployment/MachineSet/Machine CRDs (crds.yaml) in the
sandbox's API server, and a controller (controller.py, run inside the OpenStack simulator, which owns
nodes.json) that does what Cluster API's MachineDeployment and MachineSet controllers do for the hub:
replicas become Machines, Machines become nodes of the node agent after a boot delay, and a scale-down
deletes the Machines annotated cluster.x-k8s.io/delete-machine first (rules.py)."""
