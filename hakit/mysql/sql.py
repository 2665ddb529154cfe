"""SQL text hakit builds: identifiers checked and quoted, ``CHANGE MASTER TO``, hakit's own
state table. Pure.

* identifiers are checked against a strict pattern and backtick-quoted; values are always
  passed as query parameters, never formatted into SQL;
* passwords travel inside the protocol (as parameters), never on a command line.
"""

from __future__ import annotations

import re
from typing import Any

from hakit.errors import InputError
from hakit.mysql.facts import ReplicaTls

STATE_TABLE = "cluster_state"

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def ident(name: str) -> str:
    """Backtick-quote a MySQL identifier after checking it (no user character can escape)."""
    if not _IDENT.fullmatch(name):
        raise InputError(f"not a safe MySQL identifier: {name!r}")
    return f"`{name}`"


#: seconds between the heartbeats a master sends an idle replica (``MASTER_HEARTBEAT_PERIOD``; the
#: default is half of ``slave_net_timeout``, 30 s). A replica whose server died leaves its binary log
#: dump thread on the master until a send fails: the first heartbeat after the death is answered
#: by a reset, the second fails. Until then the master counts a replica that receives nothing,
#: and the watcher turned semi-sync on again for it (:data:`hakit.failover.automatic.REPLICA_SETTLE`)
HEARTBEAT_PERIOD = 1


def change_master_sql(host: str, port: int, user: str, password: str,
                      tls: ReplicaTls | None = None) -> tuple[str, tuple[Any, ...]]:
    """The ``CHANGE MASTER TO`` statement and its parameters (every value a parameter).

    With ``tls``: TLS required, the master's certificate verified against ``host``
    (``MASTER_SSL_VERIFY_SERVER_CERT``) and this node's certificate presented. Without it,
    ``MASTER_SSL = 0`` explicitly: ``CHANGE MASTER`` keeps any option it does not name, so
    turning TLS off must say so.
    """
    sql = ("CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, MASTER_PASSWORD = %s, "
           "MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = %s, ")
    args: tuple[Any, ...] = (host, int(port), user, password, HEARTBEAT_PERIOD)
    if tls is None:
        return sql + "MASTER_SSL = 0", args
    return (sql + "MASTER_SSL = 1, MASTER_SSL_CA = %s, MASTER_SSL_CERT = %s, MASTER_SSL_KEY = %s, "
                  "MASTER_SSL_VERIFY_SERVER_CERT = 1", args + (tls.ca, tls.cert, tls.key))


def state_schema_sql(schema: str) -> list[str]:
    """DDL of hakit's own schema (created on the active; it replicates)."""
    return [f"CREATE DATABASE IF NOT EXISTS {ident(schema)}",
            f"CREATE TABLE IF NOT EXISTS {ident(schema)}.{STATE_TABLE} ("
            "id TINYINT UNSIGNED NOT NULL PRIMARY KEY, generation BIGINT UNSIGNED NOT NULL, "
            "promotion_point VARCHAR(4096) NOT NULL, promoted_node VARCHAR(64) NOT NULL, "
            "promoted_at DATETIME(6) NOT NULL, kind VARCHAR(16) NOT NULL DEFAULT 'manual') ENGINE=InnoDB",
            f"ALTER TABLE {ident(schema)}.{STATE_TABLE} ADD COLUMN IF NOT EXISTS kind VARCHAR(16) NOT NULL "
            "DEFAULT 'manual'",
            f"ALTER TABLE {ident(schema)}.{STATE_TABLE} ADD COLUMN IF NOT EXISTS server_instance VARCHAR(160) "
            "NOT NULL DEFAULT ''",
            monitoring_state_sql(schema), monitoring_files_sql(schema)]


#: the monitoring master's shipped retention state and files (:mod:`hakit.continuity.store`)
MONITORING_STATE_TABLE = "monitoring_state"
MONITORING_FILES_TABLE = "monitoring_files"


def monitoring_state_sql(schema: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {ident(schema)}.{MONITORING_STATE_TABLE} ("
            "id TINYINT UNSIGNED NOT NULL PRIMARY KEY, owner VARCHAR(128) NOT NULL, node VARCHAR(64) NOT NULL, "
            "seq BIGINT UNSIGNED NOT NULL, saved_at DATETIME(6) NULL, checked_at DATETIME(6) NULL, "
            "sha256 CHAR(64) NOT NULL DEFAULT '', content LONGBLOB NULL) ENGINE=InnoDB")


#: ``promoted_at`` as epoch seconds, by DATETIME arithmetic alone: the column holds UTC
#: (``UTC_TIMESTAMP``), and ``UNIX_TIMESTAMP()`` would read it in the session's time zone
PROMOTED_AT_EPOCH = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', promoted_at) / 1000000"


def utc_age_sql(column: str) -> str:
    """Seconds since a UTC ``DATETIME`` column by this server's clock, read in the statement
    that reads the column (one clock: the value means something only where it was written)."""
    return f"TIMESTAMPDIFF(MICROSECOND, {ident(column)}, UTC_TIMESTAMP(6)) / 1000000"


#: seconds since ``promoted_at`` by this server's clock (both UTC, read in one statement)
PROMOTED_AGE = utc_age_sql("promoted_at")
#: seconds since the shipped monitoring state's last write, and since its shipper last found
#: it current, by this server's clock (:class:`~hakit.mysql.facts.ShippedState`)
SAVED_AGE = utc_age_sql("saved_at")
CHECKED_AGE = utc_age_sql("checked_at")


def monitoring_files_sql(schema: str) -> str:
    # a path of up to 700 characters: the primary key stays under InnoDB's 3072 bytes in utf8mb4
    return (f"CREATE TABLE IF NOT EXISTS {ident(schema)}.{MONITORING_FILES_TABLE} ("
            "path VARCHAR(700) NOT NULL PRIMARY KEY, kind CHAR(1) NOT NULL, mode INT UNSIGNED NOT NULL, "
            "owner VARCHAR(64) NOT NULL, grp VARCHAR(64) NOT NULL, target VARCHAR(4096) NOT NULL DEFAULT '', "
            "sha256 CHAR(64) NOT NULL DEFAULT '', content LONGBLOB NULL) ENGINE=InnoDB")
