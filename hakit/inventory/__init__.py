"""The inventory: one YAML file (an Ansible inventory) and its secrets file, loaded into a typed,
frozen model. Pure.
"""
