"""OpenStack simulator for the sandbox: Keystone v3 tokens and Magnum's node-group API.

The only simulated part of the sandbox. It obeys the Magnum rules the hub's backend relies on and
turns node-group changes into nodes the node agent registers (through nodes.json).
"""
