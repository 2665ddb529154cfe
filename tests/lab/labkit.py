"""Helpers of the lab tests: real labs (root, real daemons), torn down whatever happens.

A lab is module-scoped: each test module builds one and asserts many things on it. Every
lab is removed by its fixture's ``finally``, and once more at session end and at exit (a
safety net for an interrupted run). Nodes are reached like production reaches them: over SSH
with pytest-testinfra's paramiko backend, the lab key, and **verified host keys** (the lab's
known_hosts, unknown or changed keys refused).
"""

from __future__ import annotations

import atexit
import functools
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import paramiko
import pytest
import testinfra.host
from testinfra.backend.paramiko import ParamikoBackend

from hakit.lab import lab as labmod
from hakit.lab.labinventory import KEY, KNOWN_HOSTS
from hakit.lab.spec import LabSpec

_MADE: list[str] = []  #: every lab folder a fixture created (the safety net removes them)


def _safety_net() -> None:
    for dir in _MADE:
        try:
            labmod.down(dir)
        except Exception:  # noqa: BLE001 - last resort at exit: never mask the test result
            pass


atexit.register(_safety_net)


def need_root() -> None:
    """Skip (only) when not root: the lab makes namespaces, links and mounts."""
    if os.geteuid() != 0:
        pytest.skip("the namespace lab needs root (namespaces, links, mounts); run the lab tests as root")


class VerifiedParamikoBackend(ParamikoBackend):
    """testinfra's paramiko backend, but with host keys verified against one known_hosts file.

    The stock backend accepts unknown host keys with a warning (``WarningPolicy``) and reads
    no known_hosts file; here only keys in ``known_hosts`` are accepted (``RejectPolicy``), a
    changed key fails, and only the lab's key authenticates (no agent, no ~/.ssh keys).
    """

    def __init__(self, hostspec: str, known_hosts: str, **kwargs: Any):
        self.known_hosts = known_hosts
        super().__init__(hostspec, **kwargs)

    @functools.cached_property
    def client(self) -> paramiko.SSHClient:  # type: ignore[override]
        client = paramiko.SSHClient()
        client.load_host_keys(self.known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(hostname=self.host.name, port=int(self.host.port or 22), username=self.host.user or "root",
                       key_filename=self.ssh_identity_file, timeout=self.timeout, allow_agent=False,
                       look_for_keys=False)
        return client


def testinfra_host(address: str, known_hosts: str | Path, identity: str | Path) -> testinfra.host.Host:
    """A testinfra Host for one lab node, over SSH with verified host keys."""
    backend = VerifiedParamikoBackend(f"root@{address}", known_hosts=str(known_hosts),
                                      ssh_identity_file=str(identity), timeout=10)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host


@dataclass
class Lab:
    """A running lab as the tests see it."""

    dir: Path
    spec: LabSpec
    up_seconds: float
    hosts: dict[str, testinfra.host.Host]

    @property
    def known_hosts(self) -> Path:
        return self.dir / KNOWN_HOSTS

    @property
    def key(self) -> Path:
        return self.dir / KEY

    def host(self, name: str) -> testinfra.host.Host:
        return self.hosts[name]

    def address(self, name: str) -> str:
        return self.spec.node(name).address

    def reconnect(self, name: str) -> testinfra.host.Host:
        """A fresh SSH connection to ``name`` (after a restart, the old one is dead)."""
        self.hosts[name] = testinfra_host(self.address(name), self.known_hosts, self.key)
        return self.hosts[name]


def build_lab(tmp_path_factory: pytest.TempPathFactory, topology: str, stack: str) -> Iterator[Lab]:
    """Build a lab, yield it, and remove it whatever happened (the body of the lab fixtures)."""
    need_root()
    dir = tmp_path_factory.mktemp(f"lab-{topology}-{stack}")
    _MADE.append(str(dir))
    try:
        report = labmod.up(str(dir), topology, stack)
        hosts = {n.name: testinfra_host(n.address, dir / KNOWN_HOSTS, dir / KEY) for n in report.spec.nodes}
        yield Lab(dir=dir, spec=report.spec, up_seconds=report.seconds, hosts=hosts)
    finally:
        labmod.down(str(dir))


def _wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something true; fail the test naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def hakit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the hakit CLI in this process: (exit code, stdout, stderr)."""
    from hakit.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def sql(lab: Lab, node: str, statement: str, *extra: str) -> str:
    """Run SQL as MariaDB's root on a node (socket authentication: no password anywhere)."""
    # option files first: the client reads --defaults-extra-file only in first place
    return lab.host(node).check_output(f"mariadb {' '.join(extra)} --batch --skip-column-names "
                                       f"-e {shlex.quote(statement)}")


class Writer:
    """A client writing through the VIP: one small transaction every few milliseconds, each with an id.

    A write whose outcome is unknown (connection lost around the commit) is retried with the same id;
    a duplicate-key answer then proves it had committed. ``acked`` holds the ids whose commit was
    acknowledged, ``gaps`` the longest time without an acknowledgement. After the run, every
    acknowledged id must be on the surviving active (zero loss); ids are a primary key (no duplicates).
    """

    TABLE = "opsview.hakit_writer"

    def __init__(self, lab: Lab, inv, vip: str, interval: float = 0.005):
        import secrets as _secrets
        import threading

        from hakit.remote import runner_for

        self.vip, self.interval = vip, interval
        self.password = _secrets.token_urlsafe(18)
        self.acked: list[int] = []
        self.ack_times: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        active = next(n.name for n in inv.db_pair.nodes
                      if sql(lab, n.name, "SELECT @@read_only").strip() == "0")
        runner = runner_for(inv, active)
        try:  # the password goes on stdin, never on a command line
            runner.run(["mariadb"], input=(
                f"CREATE USER IF NOT EXISTS 'writer'@'{lab.spec.host_address}' IDENTIFIED BY '{self.password}';\n"
                f"ALTER USER 'writer'@'{lab.spec.host_address}' IDENTIFIED BY '{self.password}';\n"
                f"GRANT INSERT, SELECT ON opsview.* TO 'writer'@'{lab.spec.host_address}';\n"
                f"CREATE TABLE IF NOT EXISTS {self.TABLE} (id INT PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB;\n"
                f"DELETE FROM {self.TABLE};\n"))
        finally:
            runner.close()

    def _connect(self):
        import pymysql

        return pymysql.connect(host=self.vip, user="writer", password=self.password, connect_timeout=1,
                               read_timeout=3, write_timeout=3, autocommit=True)

    def _run(self) -> None:
        import pymysql

        conn, next_id = None, 1
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = self._connect()
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {self.TABLE} VALUES (%s, NOW(6))", (next_id,))
                self._ack(next_id)
                next_id += 1
            except pymysql.err.IntegrityError:  # the retried write had committed before
                self._ack(next_id)
                next_id += 1
            except pymysql.MySQLError as exc:
                self.errors.append(str(exc)[:120])
                try:
                    if conn is not None:
                        conn.close()
                except Exception:  # noqa: BLE001 - a broken connection may fail to close
                    pass
                conn = None
                time.sleep(0.05)
            time.sleep(self.interval)
        if conn is not None:
            conn.close()

    def _ack(self, ident: int) -> None:
        self.acked.append(ident)
        self.ack_times.append(time.monotonic())

    def __enter__(self) -> "Writer":
        self.thread.start()
        _wait_until("the writer's first acknowledged write", lambda: self.acked, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    @property
    def longest_gap(self) -> float:
        times = self.ack_times
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    def lost_on(self, lab: Lab, node: str) -> list[int]:
        present = {int(x) for x in sql(lab, node, f"SELECT id FROM {self.TABLE}").split()}
        return sorted(set(self.acked) - present)
