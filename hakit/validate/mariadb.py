"""MariaDB's files: the server fragment through ``mariadbd --help --verbose``, and the
replication SQL executed by a throwaway server (``--skip-networking``, its own network
namespace, a datadir in the private folder), shut down (killed if it must be) afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hakit.clock import wait_until
from hakit.render.artefact import Artefact
from hakit.validate.sandbox import CheckContext, CheckResult, Process, ToolResult, fail_detail


def _help_variables(text: str) -> dict[str, str]:
    """The "Variables (--variable-name=value)" table of ``mariadbd --help --verbose``."""
    values: dict[str, str] = {}
    started = False
    for line in text.splitlines():
        if line.startswith("Variables (--variable-name=value)"):
            started = True
            continue
        if started:
            if not line.strip():
                if values:
                    break
                continue
            parts = line.split(None, 1)
            if parts and not parts[0].startswith("-"):
                values[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return values


def check_mysql_cnf(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``mariadbd --defaults-file=FILE --help --verbose``: every option known and well-typed.

    ``--defaults-file`` makes mariadbd read the rendered fragment and nothing else (not this
    machine's /etc/mysql). ``--help`` prints the effective values without opening a datadir,
    so the check also confirms what the fragment means: read_only ON (safety invariant 1),
    binary log and log_slave_updates on, innodb_autoinc_lock_mode 0, and a server_id /
    auto_increment_offset that no other node has.
    """
    res = ctx.run([ctx.program("mariadbd"), f"--defaults-file={ctx.file(art)}", "--help", "--verbose"], timeout=60)
    errors = [line for line in res.stderr.splitlines() if "[ERROR]" in line]
    if res.returncode != 0 or res.timed_out or errors:
        return [ctx.result("mariadbd --help --verbose", art, False, fail_detail(
            ToolResult(res.returncode, "", "\n".join(errors) or res.stderr, res.timed_out), "mariadbd"))]
    values = _help_variables(res.stdout)
    problems = []
    expect = {"read-only": ("TRUE", "read_only must be ON (safety invariant 1)"),
              "log-slave-updates": ("TRUE", "log_slave_updates must be ON"),
              "innodb-autoinc-lock-mode": ("0", "innodb_autoinc_lock_mode must be 0")}
    for name, (want, rule) in expect.items():
        if values.get(name) != want:
            problems.append(f"{rule} (mariadbd says {name} = {values.get(name, 'unset')})")
    if values.get("log-bin", "(No default value)") in ("(No default value)", "", "FALSE"):
        problems.append("log_bin must be set (binary log for replication)")
    mine = (values.get("server-id"), values.get("auto-increment-offset"))
    for other in ctx.of_kind("mysql-cnf"):
        if other.node == art.node or ctx.inv.pair_of(other.node) is not ctx.inv.pair_of(art.node):
            continue
        theirs_res = ctx.run([ctx.program("mariadbd"), f"--defaults-file={ctx.file(other)}", "--help", "--verbose"],
                             timeout=60)
        theirs = _help_variables(theirs_res.stdout)
        if mine[0] == theirs.get("server-id"):
            problems.append(f"server_id {mine[0]} is also the server_id of {other.node}")
        if mine[1] == theirs.get("auto-increment-offset"):
            problems.append(f"auto_increment_offset {mine[1]} is also that of {other.node}")
    return [ctx.result("mariadbd --help --verbose", art, not problems,
                       f"options accepted; read_only ON, server_id {mine[0]}, auto_increment_offset {mine[1]}"
                       if not problems else "\n".join(problems))]


#: options of the fragment a throwaway server must not take over: where it listens, and every
#: path on the node (the throwaway server's files all live in the private folder)
_NOT_FOR_THROWAWAY = re.compile(r"(bind[-_]address|port|socket|datadir|pid[-_]file|log[-_]error|tmpdir|"
                                r"ssl[-_].*|user|general[-_]log[-_]file|slow[-_]query[-_]log[-_]file|"
                                r"skip[-_]networking|plugin[-_]dir)$")


def _throwaway_cnf(fragment: bytes) -> tuple[str, list[str]]:
    """The [mysqld] options of ``fragment`` usable by a throwaway server, and those left out."""
    keep, dropped = [], []
    section = None
    for raw in fragment.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip().lower()
            continue
        if section not in ("mysqld", "mariadb", "mariadbd", "server", "mariadb-10.11"):
            continue
        name, _, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if _NOT_FOR_THROWAWAY.match(name) or value.startswith("/"):
            dropped.append(name)
        else:
            keep.append(line)
    return "[mysqld]\n" + "\n".join(keep) + "\n", dropped


@dataclass
class _Seed:
    datadir: Path | None
    error: str = ""


def _seed_datadir(ctx: CheckContext) -> _Seed:
    """One freshly initialised datadir per validate run, copied for each node."""
    cached = ctx._cache.get("mysql-seed")
    if isinstance(cached, _Seed):
        return cached
    folder = ctx.scratch("mysql-seed")
    datadir = folder / "data"
    res = ctx.run([ctx.program("mariadb-install-db"), "--no-defaults", f"--datadir={datadir}", "--user=root",
                   "--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve"],
                  timeout=180)
    seed = _Seed(datadir) if res.returncode == 0 and not res.timed_out and datadir.is_dir() else \
        _Seed(None, fail_detail(res, "mariadb-install-db", keep=lambda line: "ERROR" in line or "rror" in line))
    ctx._cache["mysql-seed"] = seed
    return seed


def _sql(ctx: CheckContext, socket: Path, sql: str, timeout: float = 60, names: bool = False) -> ToolResult:
    # the statements (and any password in them) go through stdin, never the command line
    return ctx.run([ctx.program("mariadb"), "--no-defaults", f"--socket={socket}", "--user=root", "--batch"]
                   + ([] if names else ["--skip-column-names"]), input=sql.encode("utf-8"), timeout=timeout)


def check_mysql_sql(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """Execute the node's replication SQL on a throwaway MariaDB server.

    The server gets a copy of a fresh datadir (``mariadb-install-db --no-defaults``), the
    node's fragment minus its network settings and node paths, ``--skip-networking`` inside a
    private network namespace, its socket in the private folder, ``--user=root``. The SQL goes
    through the ``mariadb`` client's stdin. ``CHANGE MASTER`` without ``START SLAVE`` never
    connects to the peer. Then the result is read back: replication points at the peer with
    GTID, and read_only is still ON. The server is shut down, and killed in a ``finally`` if
    it does not stop; its datadir goes with the private folder.
    """
    check = "mariadb replication SQL"
    seed = _seed_datadir(ctx)
    if seed.datadir is None:
        return [ctx.result(check, art, False, seed.error)]
    folder = ctx.scratch(f"mysql-{art.node}")
    datadir = folder / "data"
    shutil.copytree(seed.datadir, datadir, symlinks=True)
    cnf_art = ctx.find(art.node, "mysql-cnf")
    cnf_text, dropped = _throwaway_cnf(cnf_art.content if cnf_art else b"[mysqld]\n")
    cnf = folder / "my.cnf"
    cnf.write_text(cnf_text)
    log = folder / "mysqld.err"
    # a unix socket path is limited to 107 bytes; a deep private folder gets a short sibling
    sockdir = folder if len(str(folder)) < 80 else Path(tempfile.mkdtemp(prefix="hakit-validate-sock-", dir="/tmp"))
    socket = sockdir / "mysqld.sock"
    argv = [ctx.program("unshare"), "--net"] + (["--map-root-user"] if os.geteuid() != 0 else []) + [
        "--", ctx.program("mariadbd"), f"--defaults-file={cnf}", f"--datadir={datadir}", f"--socket={socket}",
        f"--pid-file={folder / 'mysqld.pid'}", f"--log-error={log}", f"--tmpdir={folder}", "--skip-networking",
        "--user=root", "--skip-slave-start", "--innodb-buffer-pool-size=16M"]
    proc = ctx.tools.start(argv, log=folder / "mysqld.out")
    try:
        wait_until(lambda: socket.exists() or proc.poll() is not None, 60, 0.05)
        if not socket.exists():
            tail = log.read_text(errors="replace") if log.exists() else ""
            return [ctx.result(check, art, False, "throwaway mariadbd did not start:\n" + "\n".join(
                line for line in tail.splitlines() if "ERROR" in line))]
        res = _sql(ctx, socket, art.content.decode("utf-8"))
        if res.returncode != 0 or res.timed_out:
            # the client's error line names the line and the words it stopped at; the statement
            # it echoes before it (--verbose in batch mode) would push that line out of the detail
            return [ctx.result(check, art, False, fail_detail(res, "mariadb", keep=lambda line: "ERROR" in line))]
        read_only = _sql(ctx, socket, "SELECT @@global.read_only;\n")
        problems = []
        if read_only.stdout.strip() != "1":
            problems.append("read_only is not ON after the SQL ran (safety invariant 1)")
        state = _sql(ctx, socket, "SHOW SLAVE STATUS\\G\n", names=True)
        status = dict(re.findall(r"^\s*(\w+): ?(.*)$", state.stdout, re.M))
        pair = ctx.inv.pair_of(art.node)
        peer = pair.peer_of(art.node)
        if ctx.inv.settings.storage.databases == "replication":
            if status.get("Master_Host") != peer.address:
                problems.append(f"replication does not point at the peer {peer.address} "
                                f"(Master_Host = {status.get('Master_Host', 'none')})")
            if status.get("Using_Gtid", "No") == "No":
                problems.append("replication does not use GTID (MASTER_USE_GTID)")
            if status.get("Slave_IO_Running", "No") != "No":
                problems.append("the SQL started replication; it must only configure it")
            tls = ctx.inv.settings.mysql.tls.enabled
            if status.get("Master_SSL_Allowed", "No") != ("Yes" if tls else "No"):
                problems.append(f"replication {'does not ask for' if tls else 'asks for'} TLS although mysql.tls is "
                                f"{'on' if tls else 'off'} (Master_SSL_Allowed = {status.get('Master_SSL_Allowed')})")
            if tls and status.get("Master_SSL_Verify_Server_Cert") != "Yes":
                problems.append("replication over TLS does not verify the peer's certificate "
                                "(MASTER_SSL_VERIFY_SERVER_CERT)")
            user = ctx.inv.settings.mysql.replication_user
            require = _sql(ctx, socket, f"SELECT ssl_type FROM mysql.user WHERE User = '{user}' "
                                        f"AND Host = '{peer.address}';\n").stdout.strip()
            if (require == "ANY") != tls:
                problems.append(f"the replication user {user}@{peer.address} is "
                                f"{'not ' if tls else ''}REQUIRE SSL although mysql.tls is {'on' if tls else 'off'}")
        note = (f"executed on a throwaway MariaDB; replicates from {status.get('Master_Host', '-')} "
                f"with GTID {status.get('Using_Gtid', '-')}"
                + (", over TLS verifying the peer's certificate" if status.get("Master_SSL_Allowed") == "Yes" else "")
                + "; read_only ON")
        if dropped:
            note += f"; fragment options not used by the throwaway server: {', '.join(dropped)}"
        return [ctx.result(check, art, not problems, note if not problems else "\n".join(problems))]
    finally:
        _stop_mariadbd(ctx, proc, socket)
        if sockdir != folder:
            shutil.rmtree(sockdir, ignore_errors=True)


def _stop_mariadbd(ctx: CheckContext, proc: Process, socket: Path) -> None:
    """SHUTDOWN the throwaway server; kill it when that fails or it does not stop in time."""
    stopped_cleanly = False
    if proc.poll() is None and socket.exists():
        try:
            stopped_cleanly = _sql(ctx, socket, "SHUTDOWN;\n", timeout=30).returncode == 0
        except Exception:  # noqa: BLE001 - a failed SHUTDOWN ends in kill below
            stopped_cleanly = False
    try:
        if not stopped_cleanly and proc.poll() is None:
            raise TimeoutError  # no point waiting for a server that was not asked to stop
        proc.wait(timeout=30)
    except Exception:  # noqa: BLE001 - whatever went wrong, the server must not outlive the check
        proc.kill()
        try:
            proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass
