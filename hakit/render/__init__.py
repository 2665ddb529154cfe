"""Render: the model and its secrets into the files each node needs (Jinja2 templates, the
Pacemaker CIB). Pure.
"""
