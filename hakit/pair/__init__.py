"""Bringing a pair to healthy and keeping it so: init, the sync lists, the shared SSH keys,
maintenance mode.
"""
