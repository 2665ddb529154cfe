"""What an agent on a node knows: the node's copy of the inventory and secrets, and its name."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pymysql

from hakit.errors import InputError
from hakit.failover.automatic import classify_peer
from hakit.failover.promote import PeerView
from hakit.inventory.loader import load_inventory
from hakit.inventory.model import Inventory, Node
from hakit.inventory.node_paths import NODE_INVENTORY, NODE_SECRETS
from hakit.inventory.secrets import Secrets, load_secrets
from hakit.mysql.facts import DbFacts, PromotionRecord
from hakit.mysql.gtid import Position
from hakit.mysql.pymysql_adapter import PyMySQLDatabase
from hakit.mysql.sql import PROMOTED_AT_EPOCH, STATE_TABLE, ident
from hakit.mysql.tls import pymysql_tls

#: pymysql's error for a connection that could not be made (refused, no route, timed out);
#: any other error came after the peer accepted the connection
CR_CONN_HOST_ERROR = 2003

@dataclass
class NodeContext:
    inv: Inventory
    secrets: Secrets
    node: Node

    @property
    def peer(self) -> Node:
        return self.inv.pair_of(self.node.name).peer_of(self.node.name)

    def local_db(self, read_timeout: float = 30) -> PyMySQLDatabase:
        """MariaDB's root through the node's unix socket (socket authentication: no password)."""
        mysql = self.inv.settings.mysql
        return PyMySQLDatabase(self.node.name, unix_socket=mysql.socket, user="root", connect_timeout=2,
                               read_timeout=read_timeout)

    def peer_out_of_cluster(self) -> bool:
        """Pacemaker: whether the peer is outside this node's partition. Pacemaker starts resources
        here in its absence only after fencing it, so it cannot be running a database any more."""
        from hakit.cluster import local, traits_for

        if not traits_for(self.inv).recovers:
            return False
        members = local.partition()
        return members is not None and self.node.name in members and self.peer.name not in members

    #: a peer's server without hakit's promotion table: no such table (1146), no such schema (1049)
    NO_RECORD_ERRORS = (1146, 1049)

    def peer_view(self, timeout: float = 1.0) -> PeerView:
        """The peer's role and generation, read with the replication login (SELECT on hakit's schema).

        A Pacemaker peer outside the cluster partition is not asked (it was fenced): a dead
        address would hold the promotion for the whole connect timeout."""
        mysql = self.inv.settings.mysql
        peer = self.peer
        if self.peer_out_of_cluster():
            return PeerView(peer.name, False)
        try:
            # the replication user is REQUIRE SSL when mysql.tls is on: the same TLS as replication
            conn = pymysql.connect(host=peer.address, port=mysql.port, user=mysql.replication_user,
                                   password=self.secrets.replication_password, connect_timeout=timeout,
                                   read_timeout=timeout, autocommit=True, **pymysql_tls(mysql.tls))
        except pymysql.MySQLError as exc:
            original = getattr(exc, "original_exception", None)
            connected = not (exc.args and exc.args[0] == CR_CONN_HOST_ERROR)
            answer = classify_peer(connected, isinstance(original, ConnectionRefusedError), greeted=False)
            if answer == "hung":
                # the connection was accepted and the server did not greet (or refused the
                # login): it is alive, and may still take writes (the planner refuses)
                return PeerView(peer.name, True, None)
            return PeerView(peer.name, False, refused=answer == "refused")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@server_id, @@read_only, @@gtid_binlog_pos, @@gtid_current_pos")
                server_id, ro, binlog, current = cur.fetchone()
                table = f"{ident(mysql.hakit_schema)}.{STATE_TABLE}"
                try:
                    try:
                        cur.execute(f"SELECT generation, promotion_point, promoted_node, kind, "
                                    f"{PROMOTED_AT_EPOCH} FROM {table} WHERE id = 1")
                    except pymysql.err.OperationalError as exc:
                        if exc.args[0] != 1054:  # a table made before the kind column
                            raise
                        cur.execute(f"SELECT generation, promotion_point, promoted_node, 'manual', "
                                    f"{PROMOTED_AT_EPOCH} FROM {table} WHERE id = 1")
                    row = cur.fetchone()
                except pymysql.MySQLError as exc:
                    # the server answered (its role is read above) but holds no promotion record:
                    # hakit's table or schema is missing, as on a server a resync by dump is
                    # rebuilding (it drops the databases and imports them again; seed 26, step
                    # 163). That is no record, not a server that cannot be read
                    if not (exc.args and exc.args[0] in self.NO_RECORD_ERRORS):
                        raise
                    row = None
        except pymysql.MySQLError:
            # reachable but its generation cannot be read: treat it as unknown-but-alive, which
            # blocks a promotion only if it is writable (checked by the planner)
            return PeerView(peer.name, True, None)
        finally:
            conn.close()
        state = PromotionRecord(int(row[0]), row[1], row[2], row[3], float(row[4]) if row[4] is not None else None) \
            if row else None
        pos = Position.parse(current)
        return PeerView(peer.name, True, DbFacts(int(server_id), bool(int(ro)), Position.parse(binlog), pos, pos,
                                                 None, state))


    def ping_nodes_reachable(self) -> bool | None:
        """Whether this node reaches at least one of the inventory's ping nodes (None: none listed);
        all are asked at once (half a second at most)."""
        from hakit.agents.network import reaches_any

        nodes = list(self.inv.settings.ping_nodes)
        return reaches_any(nodes) if nodes else None


def load_context(inventory: str | None = None, secrets: str | None = None, node: str | None = None) -> NodeContext:
    inv = load_inventory(inventory or os.environ.get("HAKIT_NODE_INVENTORY", NODE_INVENTORY))
    sec = load_secrets(Path(secrets or os.environ.get("HAKIT_NODE_SECRETS", NODE_SECRETS)), inv)
    name = node or os.environ.get("HAKIT_NODE") or socket.gethostname().split(".")[0]
    try:
        return NodeContext(inv, sec, inv.node(name))
    except KeyError:
        raise InputError(f"{inv.path}: this node, {name!r}, is not a node of the inventory "
                         f"({', '.join(n.name for n in inv.nodes)}); set the agent's node parameter "
                         f"or HAKIT_NODE") from None
