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
import re
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import pytest
import testinfra.host
from testinfra.backend.paramiko import ParamikoBackend

from hakit.lab import lifecycle as labmod
from hakit.lab.chaos import keep_logs
from hakit.lab.driver import PairDriver
from hakit.lab.labinventory import KEY, KNOWN_HOSTS
from hakit.lab.spec import LabSpec
from hakit.lab.writer import TABLE as WRITER_TABLE
from hakit.lab.writer import WritableSampler
from hakit.lab.writer import Writer as LabWriter

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


def build_lab(tmp_path_factory: pytest.TempPathFactory, topology: str, stack: str, **options: Any) -> Iterator[Lab]:
    """Build a lab, yield it, and remove it whatever happened (the body of the lab fixtures).

    ``options`` go to :func:`hakit.lab.lifecycle.up` (``tls=True``, ``timings=...``)."""
    need_root()
    dir = tmp_path_factory.mktemp(f"lab-{topology}-{stack}")
    _MADE.append(str(dir))
    try:
        report = labmod.up(str(dir), topology, stack, **options)
        hosts = {n.name: testinfra_host(n.address, dir / KNOWN_HOSTS, dir / KEY) for n in report.spec.nodes}
        yield Lab(dir=dir, spec=report.spec, up_seconds=report.seconds, hosts=hosts)
    finally:
        # every node's logs outlive the lab (pytest keeps the last three runs' folders): what
        # explains a failure, even one in CI, is still there after the teardown
        try:
            keep_logs(dir, Path(f"{dir}-logs"))
        except OSError:
            pass
        labmod.down(str(dir))


def initialised(tmp_path_factory: pytest.TempPathFactory, topology: str, stack: str, **options: Any) -> Iterator[Lab]:
    """A lab that ``hakit init`` made healthy (``options`` as :func:`build_lab`'s: ``witness=True``
    ...); removed after."""
    gen = build_lab(tmp_path_factory, topology, stack, **options)
    lab = next(gen)
    try:
        from hakit.cli import main

        assert main(["-i", str(lab.dir / "inventory.yml"), "init"]) == 0
        yield lab
    finally:
        gen.close()


def initialised_pair(tmp_path_factory: pytest.TempPathFactory, stack: str) -> Iterator[Lab]:
    """A two-node lab of ``stack`` that ``hakit init`` made healthy (n1 active); removed after."""
    yield from initialised(tmp_path_factory, "two-node", stack)


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


class Writer(LabWriter):
    """hakit's lab writer (:class:`hakit.lab.writer.Writer`) through ``vip``, from this machine's
    address on the lab bridge; ``lost_on(lab, node)`` as the tests call it."""

    TABLE = WRITER_TABLE

    def __init__(self, lab: Lab, inv, vip: str, interval: float = 0.005):
        # the library's default SQL path: over SSH with the statements on stdin (the writer's
        # password is in them, so never on a command line)
        super().__init__(inv, vip, lab.spec.host_address, interval=interval)

    def __enter__(self) -> Writer:
        try:
            self.start()
        except RuntimeError as exc:
            pytest.fail(str(exc))
        return self

    def lost_on(self, lab: Lab, node: str) -> list[int]:  # type: ignore[override]
        return super().lost_on(node)


def other_admin(lab: Lab, folder: Path) -> Path:
    """Another admin machine: the lab's inventory, secrets and known_hosts in ``folder``, without
    this one's ``.hakit/`` records (journal, generation floor). Returns its inventory."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("inventory.yml", "known_hosts", "hakit-secrets.yml"):
        shutil.copy2(lab.dir / name, folder / name)
    assert not (folder / ".hakit").exists()
    return folder / "inventory.yml"


# --------------------------------------------------------------------------- four nodes


def votes(doc: dict) -> dict[str, tuple[bool, int | None, bool] | None]:
    """Each node's (quorate, total votes, the witness voting), as status reads them."""
    return {name: (n["quorum"]["quorate"], n["quorum"]["total_votes"], n["quorum"]["device_voting"])
            if n.get("quorum") else None for name, n in doc["nodes"].items()}


def pairs(lab: Lab) -> tuple[list[str], list[str]]:
    return [n.name for n in lab.spec.nodes if n.pair == "db"], [n.name for n in lab.spec.nodes if n.pair == "app"]


class FourNodeWatch:
    """While the application pair is struck: a sampler reading every node's ``@@read_only`` and
    who holds each VIP, a writer through the database VIP from this machine, and reads of the
    database active's ``@@read_only`` every 0.2 s."""

    def __init__(self, lab: Lab) -> None:
        self.driver = PairDriver(lab.dir)
        db, app = pairs(lab)
        self.sampler = WritableSampler(self.driver_inits, [db, app],
                                       vips=[lab.spec.vips["db"], lab.spec.vips["app"]])
        self.writer = self.driver.writer()

    def driver_inits(self) -> dict[str, int | None]:
        from hakit.lab.state import live_inits

        return live_inits(self.driver.dir)

    def __enter__(self) -> FourNodeWatch:
        self.sampler.start()
        self.writer.start()
        time.sleep(1.0)
        return self

    def reads_of(self, node: str, seconds: float) -> list[bool | None]:
        reads: list[bool | None] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            reads.append(WritableSampler.writable(self.driver_inits()[node]))
            time.sleep(0.2)
        return reads

    def __exit__(self, *exc) -> None:
        self.writer.stop()
        self.sampler.stop()


def fenced_since(lab: Lab, mark: int) -> list[tuple[str, str]]:
    """(node powered off, the node that asked) in the lab's fence log after ``mark`` bytes."""
    log = lab.dir / "logs" / "fence.log"
    text = log.read_text()[mark:] if log.exists() else ""
    return re.findall(r"power off (\S+) \((?:off|reboot) asked by (\S+)\)", text)


def fence_mark(lab: Lab) -> int:
    log = lab.dir / "logs" / "fence.log"
    return len(log.read_text()) if log.exists() else 0


def bring_back(lab: Lab, driver: PairDriver, nodes: list[str]) -> dict:
    """Start again each of ``nodes`` that is powered off; then wait until the pair is healthy and
    the monitoring master runs on the application node that holds the application VIP (the
    stack may still be moving the application group when status first says healthy)."""
    from hakit.lab import lifecycle as labmod

    for node in nodes:
        alive = {s.name: s.alive for s in labmod.status(str(lab.dir))}
        if not alive[node]:
            driver.restart(node)
            lab.reconnect(node)
    app = pairs(lab)[1]
    return driver.wait("healthy, the monitoring master with the application VIP", lambda d: d.get(
        "state") == "healthy" and any(d["nodes"][n]["vip"] and d["nodes"][n]["monitoring"] for n in app), 240)


def reach_database(lab: Lab, inv, node: str) -> list[str]:
    """``@@hostname`` and ``@@read_only`` of the database behind the db VIP, asked from ``node``
    with the monitoring master's own login (its password in a 0600 option file, never argv)."""
    from hakit.inventory.secrets import load_secrets, secrets_path
    from hakit.remote.ssh import runner_for

    secrets = load_secrets(secrets_path(inv), inv)
    runner = runner_for(inv, node)
    try:
        runner.put("/root/monitoring.cnf", f"[client]\nuser={inv.settings.mysql.monitoring_user}\n"
                                           f"password={secrets.monitoring_db_password}\n".encode(), 0o600)
        return runner.run(["mariadb", "--defaults-extra-file=/root/monitoring.cnf", "--batch", "--skip-column-names",
                           "-h", inv.db_pair.vip.address, "-e", "SELECT @@hostname, @@read_only"]).stdout.split()
    finally:
        runner.close()
