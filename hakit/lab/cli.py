"""``hakit lab``: build, break and remove the namespace lab."""

from __future__ import annotations

import click


@click.group()
def lab() -> None:
    """The namespace lab: real nodes on this machine (root needed)."""
