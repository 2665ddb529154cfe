"""The real world: how the front ends reach the nodes. Runners over SSH (verified host keys) and
each node's database through its SSH connection, or, for ``hakit check`` on a node, the local
runner and the monitoring login.

The one place that puts the real adapters (:mod:`hakit.remote.ssh`, paramiko;
:mod:`hakit.mysql.pymysql_adapter`, pymysql) into a :class:`~hakit.failover.observe.World`:
the failover machine below only ever sees the ports, and the unit tests give it fakes.
"""

from __future__ import annotations

from hakit.failover.observe import World
from hakit.inventory.model import Inventory, Node
from hakit.inventory.secrets import Secrets
from hakit.mysql.pymysql_adapter import PyMySQLDatabase
from hakit.remote.local import LocalRunner
from hakit.remote.ssh import SshRunner, runner_for, witness_runner


def database_for(inv: Inventory, secrets: Secrets, node: Node, runner: SshRunner) -> PyMySQLDatabase:
    """hakit's admin login to ``node``'s server, through the node's SSH connection.

    The server listens on the node's address; the tunnel reaches it from the node itself, so
    the admin user exists only for the node's own addresses (created by ``hakit init``).
    """
    mysql = inv.settings.mysql
    return PyMySQLDatabase(node.name, host=node.address, port=mysql.port, user=mysql.admin_user,
                           password=secrets.admin_password, connect_timeout=inv.settings.ssh.connect_timeout,
                           sock_factory=lambda: runner.open_tunnel(node.address, mysql.port,
                                                                   inv.settings.ssh.connect_timeout))


def real_world(inv: Inventory, secrets: Secrets) -> World:
    """Runners over SSH (verified host keys) and databases through them, for every node."""
    world = World()
    for node in inv.nodes:
        runner = runner_for(inv, node.name)
        world.runners[node.name] = runner
        if inv.pair_of(node.name).carries_db:
            world.databases[node.name] = database_for(inv, secrets, node, runner)
    world.witness = witness_runner(inv)
    return world


def node_world(inv: Inventory, monitoring_password: str, me: str | None) -> World:
    """How ``hakit check`` sees the pair from a node, as the monitoring user (no root, no SSH).

    The databases are read with the monitoring master's own login (read-only views: no SUPER
    or READ_ONLY ADMIN); the VIP and the monitoring master only on this node.
    """
    mysql = inv.settings.mysql
    world = World()
    if me is not None:
        world.runners[me] = LocalRunner(me)
    for node in inv.db_pair.nodes:
        world.databases[node.name] = PyMySQLDatabase(node.name, host=node.address, port=mysql.port,
                                                     user=mysql.monitoring_user, password=monitoring_password,
                                                     connect_timeout=inv.settings.ssh.connect_timeout,
                                                     read_timeout=10)
    return world
