"""Running commands on the nodes: the runner port, its local, SSH and fake runners, copies between
nodes, services.
"""
