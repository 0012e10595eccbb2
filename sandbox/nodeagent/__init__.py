"""The sandbox's node agent: the part of a kubelet that the hub's tests need."""
