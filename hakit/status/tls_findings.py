"""What is wrong with TLS on a node, as ``status`` and ``check`` say it (``mysql.tls`` enabled):
the node's certificate files, a server running without TLS, replication that is not encrypted
or does not verify its master. Pure.
"""

from __future__ import annotations

from hakit.failover.snapshot import NodeView


def findings(view: NodeView, source: str | None = None) -> list[str]:
    """What is wrong with TLS on one node, as ``status`` and ``check`` say it (pure): its files
    (:attr:`NodeView.tls_problems`), a server running without TLS, replication that is not
    encrypted or does not verify its master. Only asked when ``mysql.tls`` is enabled."""
    problems = list(view.tls_problems)
    db = view.db
    if db is None:
        return problems
    if db.have_ssl is not None and db.have_ssl != "YES":
        problems.append(f"{view.name}: MariaDB runs without TLS (have_ssl = {db.have_ssl}): it could not load "
                        f"the certificate or key of mysql.tls at its last start (see its error log)")
    replica = db.replica
    if replica is not None:
        origin = f" from {source}" if source else ""
        if replica.ssl is False:
            problems.append(f"{view.name}: replication{origin} is not encrypted (Master_SSL_Allowed: No); "
                            f"hakit init sets it up over TLS")
        elif replica.ssl and replica.ssl_verify is False:
            problems.append(f"{view.name}: replication{origin} does not verify the master's certificate "
                            f"(Master_SSL_Verify_Server_Cert: No); hakit init sets it")
    return problems
