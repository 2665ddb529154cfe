"""Replication over TLS (``mysql.tls``): what hakit checks, and how its own logins use it.

With ``mysql.tls.enabled`` the rendered files make replication TLS-only:

* each server loads ``ssl_ca``/``ssl_cert``/``ssl_key`` (the fragment);
* the replication user is ``REQUIRE SSL``: a plain login with its password is refused;
* each replica connects with ``MASTER_SSL=1``, presents its node's certificate and verifies the
  master's against the CA and the address it connects to (``MASTER_SSL_VERIFY_SERVER_CERT=1``):
  every node's certificate must name the node's address in its subjectAltName (and the VIP,
  for clients of the active).

This module holds what the rest of hakit needs for it: the checks of the certificate files on
a node (present; the key owned by ``mysql`` and not readable by others) and the TLS arguments
of hakit's own logins with the replication user (the resource agent reading its peer's
generation). What ``status`` and ``check`` report of it (a server that runs without TLS,
replication not encrypted) is :mod:`hakit.status.tls_findings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hakit.inventory.model import Tls
from hakit.mysql.facts import ReplicaTls

if TYPE_CHECKING:  # the resource agents import this module: they load nothing of hakit.remote
    from hakit.remote.port import Runner

#: the user MariaDB runs as (Debian's package): it must read the key
MYSQL_USER = "mysql"

#: one line per file: ``path|state|owner|mode``; state is file, notfile, missing, or unknown
#: (this user cannot look into the folder, e.g. the monitoring user and a 0750 folder)
FILES_SCRIPT = r"""
for f in "$@"; do
  d=$(dirname -- "$f")
  if [ -e "$f" ]; then
    if [ -f "$f" ]; then stat -L -c '%n|file|%U|%a' -- "$f"; else echo "$f|notfile||"; fi
  elif [ -d "$d" ] && [ ! -x "$d" ]; then echo "$f|unknown||"
  else echo "$f|missing||"; fi
done
"""


def replica_tls(tls: Tls) -> ReplicaTls | None:
    """The files a replica uses for ``CHANGE MASTER`` (None when TLS is off)."""
    if not tls.enabled:
        return None
    assert tls.ca and tls.cert and tls.key  # the model refuses enabled without them
    return ReplicaTls(tls.ca, tls.cert, tls.key)


def pymysql_tls(tls: Tls) -> dict[str, Any]:
    """pymysql's arguments for a login with the replication user to a peer (empty when TLS is
    off): TLS, this node's certificate, the peer's verified against the CA and its address."""
    if not tls.enabled:
        return {}
    return {"ssl_ca": tls.ca, "ssl_cert": tls.cert, "ssl_key": tls.key, "ssl_verify_cert": True,
            "ssl_verify_identity": True}


def judge_files(node: str, tls: Tls, output: str) -> list[str]:
    """The problems :data:`FILES_SCRIPT`'s ``output`` shows (pure). A file this user could not
    look at is not a problem; a line the output lacks neither (nothing was learnt)."""
    if not tls.enabled:
        return []
    seen: dict[str, list[str]] = {}
    for line in output.splitlines():
        parts = line.split("|")
        if len(parts) == 4:
            seen[parts[0]] = parts[1:]
    problems = []
    for what, path in (("CA certificate", tls.ca), ("certificate", tls.cert), ("key", tls.key)):
        if path not in seen:
            continue
        state, owner, mode = seen[path]
        if state == "missing":
            problems.append(f"{node}: TLS {what} {path} is missing (mysql.tls.{_field(what)})")
        elif state == "notfile":
            problems.append(f"{node}: TLS {what} {path} is not a regular file")
        elif state == "file" and path == tls.key:
            bits = int(mode, 8) if mode.isdigit() else 0o777
            wrong = []
            if owner != MYSQL_USER:
                wrong.append(f"owned by {owner}")
            if bits & 0o037:
                wrong.append(f"mode {bits:04o}")
            if wrong:
                problems.append(f"{node}: TLS key {path} is {' and '.join(wrong)}; it must be owned by "
                                f"{MYSQL_USER} with mode 0600 or 0640 (chown {MYSQL_USER} {path}; chmod 0600 {path})")
    return problems


def _field(what: str) -> str:
    return {"CA certificate": "ca", "certificate": "cert", "key": "key"}[what]


def probe_files(runner: Runner, node: str, tls: Tls) -> list[str]:
    """Look at the certificate files on ``node`` (through its runner) and judge them."""
    if not tls.enabled:
        return []
    result = runner.run(["sh", "-c", FILES_SCRIPT, "sh", tls.ca or "", tls.cert or "", tls.key or ""],
                        warn=True, timeout=20)
    return judge_files(node, tls, result.stdout)
