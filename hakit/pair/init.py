"""``hakit init``: bring an installed pair to ``healthy(active, standby)``. Idempotent.

A convergence procedure, in the manner of an Ansible play: a fixed list of steps (printed by
``--dry-run``), each of which looks at the node first and changes only what differs, and says
what it changed. A second run changes nothing and says so. A run interrupted anywhere is
simply run again.

What it does, in order (DESIGN.md, issue "hakit init"):

1. preflight — every node reachable over SSH with a verified host key, the programs present;
2. install — every rendered artefact, only the files that differ (reported);
3. restart — MariaDB where its fragment changed; the cluster stack where its config changed;
4. users — the node-local SQL (users, ``CHANGE MASTER``) with ``sql_log_bin=0``;
5. roles — pick the active (the writable one, else the one with the data, else priority);
6. seed — when the standby lacks the data: the seed runbook's dump (main databases under the
   global read lock, bulk history databases without it, converged by an idempotent catch-up);
7. schema — hakit's state table on the active: generation 1 and its promotion point;
8. replication — both ways by GTID, threads checked;
9. writable — ``read_only=OFF`` on the active only (the standby stays read-only);
10. storage — with ``storage.files: shared``: the shared disk formatted (a blank one only),
    mounted on the active, the shared paths moved onto it and linked (:mod:`hakit.pair.storage`);
11. resources — the cluster configuration (Pacemaker CIB or heartbeat haresources);
12. keys — the monitoring user's SSH key and the SSH host keys identical on both nodes;
13. sync — the sync lists pushed from the active to the standby.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

import yaml

from hakit import __version__
from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.cluster import stack_for, traits_for
from hakit.cluster.alerts import SCRIPT as ALERT_SCRIPT
from hakit.cluster.alerts import alerting
from hakit.cluster.drbd import Wanted as DrbdWanted
from hakit.cluster.drbd import wanted as drbd_wanted
from hakit.cluster.port import TRAITS
from hakit.errors import OperationFailed, SafetyRefusal
from hakit.failover.executor import Executor
from hakit.failover.plan import Plan, Step, step
from hakit.failover.reseed import copy_by_dump, dump_position
from hakit.failover.snapshot import DRBD_TALKING
from hakit.inventory.model import Inventory, Node
from hakit.inventory.node_paths import (
    ALERT_AGENT,
    ALERT_SPOOL,
    CHECK_CREDENTIALS,
    ENABLED_UNITS,
    NODE_INVENTORY,
    NODE_SECRETS,
    UNIT_DIR,
)
from hakit.inventory.secrets import Secrets
from hakit.mysql.gtid import Position
from hakit.mysql.root import root_rows, root_sql
from hakit.mysql.sql import (
    MONITORING_FILES_TABLE,
    MONITORING_STATE_TABLE,
    STATE_TABLE,
    ident,
    monitoring_files_sql,
    monitoring_state_sql,
    state_schema_sql,
)
from hakit.mysql.tls import probe_files
from hakit.pair.decide import RoleFacts, choose_active
from hakit.pair.storage import Wanted, label_for
from hakit.pair.sync import sync
from hakit.remote.port import HostKeyRefused, Result, Runner, Unreachable
from hakit.remote.probes import process_running
from hakit.remote.services import service, wait_until
from hakit.remote.transfer import NullProgress
from hakit.render.artefact import CLUSTER_DIR, Artefact

#: the Debian package of each program hakit needs on a node
NODE_PROGRAMS = {"mariadb": "mariadb-client", "mariadb-dump": "mariadb-client", "mariadb-binlog": "mariadb-client",
                 "mariabackup": "mariadb-backup", "mbstream": "mariadb-backup", "python3": "python3",
                 "tar": "tar", "ip": "iproute2", "pgrep": "procps", "ssh-keygen": "openssh-client"}
#: the programs each stack needs (the port's traits say them)
STACK_PROGRAMS = {name: traits.programs for name, traits in TRAITS.items()}
HASH_PROGRAM = r"""
import hashlib, json, os, stat, sys
out = {}
for p in json.loads(sys.argv[1]):
    try:
        with open(p, "rb") as fh:
            out[p] = [hashlib.sha256(fh.read()).hexdigest(), stat.S_IMODE(os.stat(p).st_mode)]
    except OSError:
        out[p] = None
out["systemd_runs"] = os.path.isdir("/run/systemd/system")  # not a path: the paths are absolute
print(json.dumps(out))
"""


@dataclass
class InitRun:
    """The state of one ``init`` run, shared by its steps."""

    inv: Inventory
    secrets: Secrets
    runners: dict[str, Runner]
    artefacts: list[Artefact]
    say: Callable[[str], None] = print
    changed: dict[str, list[str]] = field(default_factory=dict)
    active: str | None = None
    standby: str | None = None
    actions_taken: list[str] = field(default_factory=list)
    #: the resource agents' wrappers to install on every node, path -> content (the front end
    #: passes :func:`hakit.agents.registry.wrappers`: the agents are a front end, init is not)
    agent_files: dict[str, bytes] = field(default_factory=dict)
    #: the clock init's waits run on (a FakeClock in unit tests)
    clock: Clock = SYSTEM_CLOCK
    #: the quorum device's witness (``quorum_device``), reached over SSH like a node
    witness: Runner | None = None

    def did(self, what: str) -> None:
        self.actions_taken.append(what)
        self.say(f"    changed: {what}")

    def note(self, what: str) -> None:
        self.say(f"    ok: {what}")

    def sql(self, node: str, text: str | bytes, warn: bool = False) -> Result:
        return root_sql(self.runners[node], text, warn=warn)

    def value(self, node: str, query: str) -> str:
        out = self.sql(node, query).stdout.strip()
        return "" if out == "NULL" else out


def plan_init(inv: Inventory) -> Plan:
    """The steps of ``init`` for this inventory, in order."""
    db = inv.db_pair
    steps: list[Step] = [step("preflight", "preflight", "every node reachable with a verified host key; "
                                                        "programs and hakit versions checked")]
    for node in inv.nodes:
        steps.append(step(f"install {node.name}", "install", "write the rendered files that differ",
                          node=node.name))
    for node in db.nodes:
        steps.append(step(f"database {node.name}", "database", "restart MariaDB if its fragment changed; "
                                                               "make sure it runs", node=node.name))
    for node in inv.nodes:
        steps.append(step(f"stack {node.name}", "stack", f"restart {inv.settings.stack} if its config changed; "
                                                         f"make sure it runs", node=node.name))
    if inv.settings.quorum_device is not None:
        steps.append(step("quorum device", "quorum", "certificates for the witness made and shared (TLS), "
                                                     "corosync-qnetd on the witness, corosync-qdevice on every node; "
                                                     "every node sees the device's vote"))
    for node in db.nodes:
        steps.append(step(f"users {node.name}", "users", "replication, admin and monitoring users and the "
                                                         "replication source, node-local (sql_log_bin=0)",
                          node=node.name))
    steps += [
        step("roles", "roles", "pick the active: the writable node, else the one holding the data, else priority"),
        step("seed", "seed", "copy the active's databases to the standby when it lacks them (dump)"),
        step("schema", "schema", "the managed databases and hakit's state on the active: generation 1 and its "
                                 "promotion point"),
        step("replication", "replication", "replication both ways by GTID; threads running"),
        step("writable", "writable", "read_only=OFF on the active only"),
        *([step("monitoring grants", "app_grants", "the monitoring master's login from the application nodes may "
                                                   "write the shipped monitoring state (hakit's two tables for it)")]
          if inv.app_pair is not db else []),
        *([step("storage", "storage", "the shared disk formatted by hakit (a blank one only), mounted on the "
                                      "active, the shared paths moved onto it and linked on both nodes")]
          if wanted_storage(inv) else []),
        *([step("drbd", "drbd", "DRBD up on both nodes (metadata on blank disks only, the first sync), hakit's "
                                "file system on the active only, mounted there, the shared paths moved onto it "
                                "and linked on both nodes")]
          if wanted_drbd(inv) else []),
        step("resources", "resources", "load the cluster resources (database role, VIP, monitoring master)"),
        step("keys", "keys", "monitoring user's SSH key and SSH host keys identical on each pair"),
        step("sync", "sync", "push the sync lists from the active to the standby"),
    ]
    return Plan("init", f"bring {inv.settings.cluster_name} to healthy", tuple(steps))


# --------------------------------------------------------------------------- the steps


#: the file systems the storage step formats, and the Debian package of each one's mkfs
FORMATS = {"ext4": "e2fsprogs", "xfs": "xfsprogs"}


def _preflight(run: InitRun, _: Step, *, dry_run: bool = False) -> None:
    """Every node reachable with a verified host key, its programs present, the same hakit.
    ``dry_run`` (``init --dry-run``): a node that cannot be reached still fails (nothing can be
    planned for it), what the real run would refuse is said and the plan goes on (Ansible's
    check mode runs it on nodes its real run installs first)."""
    programs = dict(NODE_PROGRAMS, **traits_for(run.inv).programs)
    qd = run.inv.settings.quorum_device
    if qd is not None:
        # its corosync.conf has no two_node rule: the vote it counts on must come (issue 27)
        programs.update({"corosync-qdevice": "corosync-qdevice", "corosync-quorumtool": "corosync"})
        if qd.tls != "off":
            programs.update({"corosync-qdevice-net-certutil": "corosync-qdevice", "certutil": "libnss3-tools"})
        if qd.heuristics or run.inv.settings.ping_nodes:
            programs["ping"] = "iputils-ping"
        _preflight_witness(run, dry_run=dry_run)
    disk = wanted_storage(run.inv)
    if disk is not None:  # the storage step reads the device and may format it
        # the stack's Filesystem agent refuses to run without modprobe
        programs.update({"blkid": "util-linux", "mount": "mount", "modprobe": "kmod"})
        if disk.fstype in FORMATS:
            programs[f"mkfs.{disk.fstype}"] = FORMATS[disk.fstype]
    mirrored = wanted_drbd(run.inv)
    if mirrored is not None:  # the DRBD step brings the resource up and formats its device
        programs.update({"drbdadm": "drbd-utils", "blkid": "util-linux", "mount": "mount", "modprobe": "kmod",
                         f"mkfs.{mirrored.fstype}": FORMATS[mirrored.fstype]})

    unreachable: list[str] = []

    def check(node: Node) -> str | None:
        runner = run.runners[node.name]
        try:
            found = runner.run(["sh", "-c", 'for p in "$@"; do command -v "$p" >/dev/null || echo "$p"; done',
                                "sh", *sorted(programs)], timeout=20).stdout.split()
        except HostKeyRefused:
            raise
        except Unreachable as exc:
            unreachable.append(str(exc))
            return str(exc)
        if found:
            return f"{node.name}: missing {', '.join(found)} (Debian packages: " \
                   f"{' '.join(sorted({programs[p] for p in found}))})"
        version = runner.run([run.inv.settings.node_hakit, "--version"], warn=True, timeout=20)
        if version.ok and version.stdout.split()[-1:] != [__version__]:
            return f"{node.name}: hakit {version.stdout.split()[-1]} is installed but this is {__version__}; " \
                   f"install the same version on every node (pip install hakit=={__version__})"
        if not version.ok:
            return f"{node.name}: hakit is not installed at {run.inv.settings.node_hakit} (hakit.node_hakit); the " \
                   f"resource agents run it there: install hakit {__version__} on the node (pip install hakit==" \
                   f"{__version__}, or the ansible/site.yml playbook)"
        if run.inv.pair_of(node.name).carries_db:
            # mysql.tls: the files must be in place before MariaDB (re)starts with them
            tls = probe_files(runner, node.name, run.inv.settings.mysql.tls)
            if tls:
                return "; ".join(tls)
        return None

    with ThreadPoolExecutor(max_workers=len(run.inv.nodes)) as pool:
        problems = [p for p in pool.map(check, run.inv.nodes) if p]
    if dry_run and problems and not unreachable:
        run.say(f"    the preflight would refuse: {'; '.join(problems)}")
        return
    if problems:
        raise OperationFailed("; ".join(problems))
    run.note(f"{len(run.inv.nodes)} nodes reachable, host keys verified, programs present")


def node_copy_of_inventory(inv: Inventory) -> bytes:
    """The inventory as the node keeps it (/etc/hakit/inventory.yml, readable by the monitoring
    master), secrets beside it: hakit's settings and, per host, the variables hakit reads, never
    the rest (Ansible's own, a become password, vaulted or not, stays on the admin machine)."""
    data = inv.composed if inv.composed is not None else yaml.safe_load(Path(inv.path).read_text())
    data = _only_hakit(data)
    data["all"]["vars"]["hakit"]["secrets_file"] = NODE_SECRETS.rsplit("/", 1)[1]
    header = "# managed by hakit: the node's copy of the inventory (hakit init writes it; edit the original)\n"
    return (header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)).encode()


def _only_hakit(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``all.vars.hakit`` and, for each host of hakit's groups, the host variables
    hakit reads (:class:`HostVars`); nothing else."""
    import copy

    from hakit.inventory.model import HostVars

    out: dict[str, Any] = {"all": {"vars": {"hakit": copy.deepcopy(data["all"]["vars"]["hakit"])}, "children": {}}}
    for group, value in (data["all"].get("children") or {}).items():
        hosts = value.get("hosts") if isinstance(value, dict) else None
        if isinstance(hosts, dict):
            out["all"]["children"][group] = {"hosts": {
                host: {k: v for k, v in (hvars or {}).items() if k in HostVars.model_fields}
                for host, hvars in hosts.items()}}
    return out


def current_files(runner: Runner, arts: list[Artefact]) -> dict[str, tuple[bytes, int] | None]:
    """What the node holds at each artefact's path now: (content, mode), None when nothing;
    the content is fetched only for the files that differ (one command for the checksums)."""
    found = json.loads(runner.run(["python3", "-c", HASH_PROGRAM, json.dumps([a.path for a in arts])]).stdout)
    out: dict[str, tuple[bytes, int] | None] = {}
    for art in arts:
        have = found.get(art.path)
        if have is None:
            out[art.path] = None
        elif have == [hashlib.sha256(art.content).hexdigest(), art.mode]:
            out[art.path] = (art.content, art.mode)
        else:
            out[art.path] = (runner.get(art.path), int(have[1]))
    return out


def node_files(run: InitRun, node: str) -> list[Artefact]:
    """What ``init`` installs on ``node`` besides the stack's haresources (see resources)."""
    arts = [a for a in run.artefacts if a.node == node and a.kind != "haresources"]
    if run.inv.settings.stack == "pacemaker":  # the cluster-wide CIB goes to every node, for reference and load
        arts += [Artefact(node, "/etc/hakit" + a.path, a.content, a.mode, a.kind)
                 for a in run.artefacts if a.node == CLUSTER_DIR]
    secrets_text = ("# hakit secrets: the node's copy (mode 0600)\n"
                    + yaml.safe_dump(run.secrets.model_dump(), sort_keys=True)).encode()
    arts += [Artefact(node, NODE_INVENTORY, node_copy_of_inventory(run.inv), 0o644, "node-inventory"),
             Artefact(node, NODE_SECRETS, secrets_text, 0o600, "node-secrets")]
    for path, content in run.agent_files.items():
        arts.append(Artefact(node, path, content, 0o755, "agent"))
    if alerting(run.inv):  # the stack's alert agent: the event into hakit's spool (hakit.cluster.alerts)
        arts.append(Artefact(node, ALERT_AGENT, ALERT_SCRIPT.encode(), 0o755, "alert-agent"))
    if run.inv.pair_of(node).carries_app:
        # hakit check runs as the monitoring user: it gets the monitoring login only (0640, its group)
        check = ("# hakit check: the monitoring login (mode 0640, group of the monitoring master)\n"
                 + yaml.safe_dump({"monitoring_db_password": run.secrets.monitoring_db_password})).encode()
        arts.append(Artefact(node, CHECK_CREDENTIALS, check, 0o640, "check-credentials"))
    return arts


def _install(run: InitRun, s: Step) -> None:
    node = s.node
    runner = run.runners[node]
    arts = node_files(run, node)
    behind = _behind_the_disk(run, node)
    if behind:
        # a shared path that links into the shared disk, which this node does not mount (the
        # standby): its files are on the disk, written through the active
        skipped = [a for a in arts if any(a.path.startswith(p.rstrip("/") + "/") for p in behind)]
        arts = [a for a in arts if a not in skipped]
        if skipped:
            where = "DRBD's device" if wanted_drbd(run.inv) is not None else "the shared disk"
            run.note(f"{node}: {', '.join(a.path for a in skipped)} on {where} (not mounted here): written "
                     f"through the active")
    current = json.loads(runner.run(["python3", "-c", HASH_PROGRAM, json.dumps([a.path for a in arts])]).stdout)
    changed = []
    folders = sorted({a.path.rsplit("/", 1)[0] for a in arts})
    runner.run(["mkdir", "-p", "--", *folders])
    for art in arts:
        want = [hashlib.sha256(art.content).hexdigest(), art.mode]
        if current.get(art.path) != want:
            runner.put(art.path, art.content, art.mode)
            changed.append(art.path)
        if art.kind == "check-credentials":  # readable by the monitoring master's group only
            runner.run(["chgrp", run.inv.settings.monitoring.group, art.path], warn=True)
    run.changed[node] = changed
    if current.get("systemd_runs") is True:
        _systemd_units(run, node, changed)
    # the agent server (hakit.agents.server): the stack's calls here skip Python's start and imports
    if alerting(run.inv):  # the alert agent runs as hacluster: the spool is its to write
        runner.run(["install", "-d", "-o", "hacluster", "-g", "haclient", "-m", "0770", ALERT_SPOOL], timeout=30)
    runner.run([run.inv.settings.node_hakit, "agent", "server", "--start"], warn=True, timeout=30)
    if changed:
        run.did(f"{node}: wrote {', '.join(changed)}")
    else:
        run.note(f"{node}: all {len(arts)} files up to date")


def _systemd_units(run: InitRun, node: str, changed: list[str]) -> None:
    """Where systemd runs the node (the install's look at it: ``/run/systemd/system``): systemd
    reads hakit's unit files again when one changed, and the agent server and the metrics agent
    are enabled (started at boot). hakit starts them itself (``hakit agent server --start``,
    ``metrics --start``, through their units); the watcher's unit belongs to the role (never
    enabled). Without systemd there is nothing to do (``hakit.agents.units``)."""
    runner = run.runners[node]
    if any(path.startswith(UNIT_DIR + "/") for path in changed):
        runner.run(["systemctl", "daemon-reload"], timeout=60)
    state = runner.run(["systemctl", "is-enabled", *ENABLED_UNITS], warn=True, timeout=30).stdout.split()
    if state != ["enabled"] * len(ENABLED_UNITS):
        runner.run(["systemctl", "enable", *ENABLED_UNITS], timeout=60)
        run.did(f"{node}: {' and '.join(ENABLED_UNITS)} enabled (started at boot)")


#: which of the given paths are links whose target does not exist (the shared disk not mounted)
DANGLING_PROGRAM = ("import os, sys; "
                    "print('\\n'.join(p for p in sys.argv[1:] if os.path.islink(p) and not os.path.exists(p)))")


def _behind_the_disk(run: InitRun, node: str) -> list[str]:
    """The shared paths that are links into the shared disk (or DRBD's device) and dangle on ``node``."""
    if (wanted_storage(run.inv) is None and wanted_drbd(run.inv) is None) or not run.inv.pair_of(node).carries_app:
        return []
    paths = list(run.inv.settings.monitoring.shared_paths)
    out = run.runners[node].run(["python3", "-c", DANGLING_PROGRAM, *paths], timeout=30).stdout
    return [line for line in out.splitlines() if line in paths]


def _database(run: InitRun, s: Step) -> None:
    node = s.node
    runner = run.runners[node]
    cnf = run.inv.settings.mysql.config_path
    sysctl = next((a for a in run.artefacts if a.node == node and a.kind == "sysctl"), None)
    if sysctl is not None and runner.run(["sysctl", "-n", "net.ipv4.ip_nonlocal_bind"]).stdout.strip() != "1":
        runner.run(["sysctl", "-q", "-p", sysctl.path])  # before MariaDB binds the VIP
        run.did(f"{node}: kernel settings applied ({sysctl.path})")
    running = run.sql(node, "SELECT 1", warn=True).ok
    if cnf in run.changed.get(node, []) or not running:
        service(run.runners[node], "mariadb", "restart" if running else "start")
        wait_until(lambda: run.sql(node, "SELECT 1", warn=True).ok, f"MariaDB on {node}", 120, clock=run.clock)
        run.did(f"{node}: MariaDB {'restarted (fragment changed)' if running else 'started'}")
    else:
        run.note(f"{node}: MariaDB runs with the current fragment")
    if run.inv.settings.mysql.tls.enabled:
        have_ssl = run.value(node, "SELECT @@have_ssl")
        if have_ssl != "YES":
            # MariaDB starts without TLS when it cannot load its certificate or key (it logs why)
            raise OperationFailed(f"{node}: MariaDB runs without TLS (have_ssl = {have_ssl or 'unknown'}) although "
                                  f"mysql.tls is enabled: it could not load ssl_cert/ssl_key at its last start (see "
                                  f"/var/log/mysql/error.log); fix the files, restart MariaDB on {node}, then re-run "
                                  f"hakit init")
        run.note(f"{node}: MariaDB serves TLS")


def _stack(run: InitRun, s: Step) -> None:
    node = s.node
    stack = stack_for(run.inv, run.runners, clock=run.clock)
    changed, what = stack.ensure_running(node, set(run.changed.get(node, [])))
    (run.did if changed else run.note)(what)


def _users(run: InitRun, s: Step) -> None:
    node = s.node
    mysql = run.inv.settings.mysql
    peer = run.inv.db_pair.peer_of(node)
    fields = _replica_fields(run, node)
    users = run.value(node, f"SELECT GROUP_CONCAT(CONCAT(User, '@', Host) ORDER BY User, Host) FROM mysql.user "
                            f"WHERE User IN ('{mysql.replication_user}', '{mysql.admin_user}', "
                            f"'{mysql.monitoring_user}')")
    sql_art = next(a for a in run.artefacts if a.node == node and a.kind == "mysql-sql")
    # TLS as the inventory says: the replica's MASTER_SSL and the replication user's REQUIRE SSL
    tls = "Yes" if mysql.tls.enabled else "No"
    require = run.value(node, f"SELECT ssl_type FROM mysql.user WHERE User = '{mysql.replication_user}' "
                              f"AND Host = '{peer.address}'")
    converged = (fields.get("Master_Host") == peer.address and fields.get("Master_User") == mysql.replication_user
                 and fields.get("Using_Gtid") == "Slave_Pos" and f"{mysql.replication_user}@{peer.address}" in users
                 and f"{mysql.admin_user}@" in users
                 and fields.get("Master_SSL_Allowed") == tls
                 and (fields.get("Master_SSL_Verify_Server_Cert") == "Yes" or not mysql.tls.enabled)
                 and (require == "ANY") == mysql.tls.enabled
                 and sql_art.path not in run.changed.get(node, []))
    if converged:
        run.note(f"{node}: users and replication source in place")
        return
    run.sql(node, sql_art.content)
    run.did(f"{node}: users and replication source set (node-local, sql_log_bin=0)")


class _Facts(TypedDict):
    """What ``init`` reads of one node's database (:func:`_facts`)."""

    read_only: bool
    binlog: Position
    current: Position
    slave: Position
    tables: int
    generation: int
    promoted: str


def _facts(run: InitRun, node: str) -> _Facts:
    mysql = run.inv.settings.mysql
    dbs = ",".join(f"'{d}'" for d in mysql.databases)
    row = run.sql(node, "SELECT @@read_only, @@gtid_binlog_pos, @@gtid_current_pos, @@gtid_slave_pos, "
                        f"(SELECT COUNT(*) FROM information_schema.tables WHERE table_schema IN ({dbs})), "
                        f"(SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{mysql.hakit_schema}' "
                        f"AND table_name = '{STATE_TABLE}')").stdout.rstrip("\n").split("\t")
    generation, promoted = 0, ""
    if row[5] == "1":
        state = run.sql(node, f"SELECT generation, promoted_node FROM {ident(mysql.hakit_schema)}.{STATE_TABLE} "
                              f"WHERE id = 1").stdout.split()
        if state:
            generation, promoted = int(state[0]), state[1]
    return {"read_only": row[0] == "1", "binlog": Position.parse(row[1]), "current": Position.parse(row[2]),
            "slave": Position.parse(row[3] if row[3] != "NULL" else ""), "tables": int(row[4]),
            "generation": generation, "promoted": promoted}


def _roles(run: InitRun, _: Step) -> None:
    """Read both nodes, then :func:`hakit.pair.decide.choose_active` picks (or refuses)."""
    a, b = run.inv.db_pair.nodes
    facts = {}
    for node in (a.name, b.name):
        f = _facts(run, node)
        facts[node] = RoleFacts(f["read_only"], f["generation"], f["promoted"], f["tables"])
    choice = choose_active(a, b, facts)
    run.active, run.standby = choice.active, choice.standby
    run.note(f"active {choice.active} ({choice.reason}), standby {run.standby}")


def _seed(run: InitRun, _: Step) -> None:
    active, standby = run.active, run.standby
    fa, fs = _facts(run, active), _facts(run, standby)
    # the standby's data came from the active only if it was replicated or seeded from it (its
    # gtid_slave_pos is set) and holds nothing the active lacks; two servers that wrote on their
    # own have divergent histories, which sequence numbers alone cannot tell apart
    from_active = bool(fs["slave"].gtids) and fa["current"].contains(fs["current"])
    if not fa["tables"] or (fs["tables"] and from_active):
        run.note(f"{standby} needs no seeding" + (" (nothing to copy)" if not fa["tables"] else
                                                   " (it already replicates the active's data)"))
        return
    if fs["tables"]:
        raise SafetyRefusal(f"{standby} already holds {fs['tables']} tables in the managed databases that did not "
                            f"come from {active}; hakit will not overwrite them. Save them (mariadb-dump), drop "
                            f"those databases on {standby}, then re-run init")
    seed_by_dump(run.inv, run.runners[active], run.runners[standby], run.say, clock=run.clock)
    run.did(f"{standby}: seeded from {active} by dump")


def seed_by_dump(inv: Inventory, active: Runner, standby: Runner, say: Callable[[str], None],
                 clock: Clock = SYSTEM_CLOCK) -> Position:
    """The seed runbook's dump (main databases under the global read lock, bulk without it),
    streamed from the active into the standby: :func:`hakit.failover.reseed.copy_by_dump`, quietly.

    It drops the standby's managed databases before the import. Here that loses nothing:
    ``_seed`` only gets this far when those databases hold no table (a standby holding tables
    that did not come from the active is refused before), and hakit's schema, if the standby
    has one, is the active's to give. Returns the GTID position the standby replicates from.
    """
    return copy_by_dump(inv, active, standby, say=say, progress=NullProgress(), clock=clock)


def _dump_position(dump: bytes) -> Position:
    """The GTID position of a whole dump held in memory (see :func:`hakit.failover.reseed.dump_position`)."""
    return dump_position(dump[:20000], dump[-20000:])


def _semi_sync_waits_for_nobody(run: InitRun) -> None:
    """Semi-sync off on a node whose peer does not replicate from it yet: no one could acknowledge
    its commits, and each would wait ``rpl_semi_sync_master_timeout`` (10 s by default) for
    nothing. That is the active's own writes (schema, generation 1) and, with
    ``log_slave_updates``, the standby applying them: its applier waits as well, and the active's
    replication set up after that waits for it. Nothing is lost: the active is read-only until
    the ``writable`` step, which comes after ``replication`` has turned it on again."""
    if not run.inv.settings.mysql.semi_sync.enabled:
        return
    for node in (run.active, run.standby):
        peer = run.inv.db_pair.peer_of(node).name
        if run.value(node, "SELECT @@rpl_semi_sync_master_enabled") == "0":
            continue
        fields = _replica_fields(run, peer)
        if fields.get("Slave_IO_Running") == "Yes" and fields.get("Slave_SQL_Running") == "Yes":
            continue
        run.sql(node, "SET GLOBAL rpl_semi_sync_master_enabled = OFF")
        run.did(f"{node}: semi-synchronous replication off until {peer} replicates from it "
                f"(nobody could acknowledge init's writes)")


def _schema(run: InitRun, _: Step) -> None:
    mysql = run.inv.settings.mysql
    _semi_sync_waits_for_nobody(run)
    present = set(run.sql(run.active, "SHOW DATABASES").stdout.split())
    absent = [d for d in mysql.databases if d not in present]
    if absent:  # empty, on the active: they replicate; the monitoring master fills them
        run.sql(run.active, "".join(f"CREATE DATABASE IF NOT EXISTS {ident(d)};\n" for d in absent))
        run.did(f"{run.active}: created the managed databases {', '.join(absent)}")
    if _facts(run, run.active)["generation"] > 0:
        run.note(f"generation already recorded on {run.active}")
        return
    statements = ";\n".join(state_schema_sql(mysql.hakit_schema)) + ";\n"
    run.sql(run.active, statements)
    point = run.value(run.active, "SELECT @@gtid_binlog_pos")
    run.sql(run.active, f"INSERT IGNORE INTO {ident(mysql.hakit_schema)}.{STATE_TABLE} (id, generation, "
                        f"promotion_point, promoted_node, promoted_at, kind) VALUES (1, 1, "
                        f"'{Position.parse(point)}', '{run.active}', UTC_TIMESTAMP(6), 'init')")
    run.did(f"{run.active}: hakit schema created, generation 1 at {point or 'the empty position'}")


def _replica_fields(run: InitRun, node: str) -> dict[str, str]:
    rows = root_rows(run.runners[node], "SHOW SLAVE STATUS")
    return {k: v or "" for k, v in rows[0].items()} if rows else {}


def _replication(run: InitRun, _: Step) -> None:
    for node in (run.standby, run.active):
        fields = _replica_fields(run, node)
        if fields.get("Slave_IO_Running") == "Yes" and fields.get("Slave_SQL_Running") == "Yes":
            run.note(f"{node} replicates from {run.inv.db_pair.peer_of(node).name}")
            continue
        if node == run.active:
            if not run.value(node, "SELECT @@gtid_slave_pos"):
                # the active starts from its own history, not from the beginning of the standby's
                run.sql(node, "SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos")
            # the standby must hold the position the active asks for before the active reads
            # the standby's binlog from there (strict mode refuses a position it has not logged
            # yet): the position asked for, read after it was set (a writer on the active moves
            # its binlog meanwhile: waiting for an earlier one raced, error 1236)
            mine = run.value(node, "SELECT @@gtid_slave_pos")
            if mine and run.value(run.standby, f"SELECT MASTER_GTID_WAIT('{Position.parse(mine)}', 60)") != "0":
                raise OperationFailed(f"{run.standby} did not catch up with {node} ({mine}) within 60 s")
        run.sql(node, "START SLAVE")

        def running(n: str | None = node) -> bool:
            f = _replica_fields(run, n)
            if f.get("Last_IO_Errno", "0") not in ("0", "") or f.get("Last_SQL_Errno", "0") not in ("0", ""):
                raise OperationFailed(f"{n}: replication failed: {f.get('Last_IO_Error') or f.get('Last_SQL_Error')}")
            return f.get("Slave_IO_Running") == "Yes" and f.get("Slave_SQL_Running") == "Yes"

        wait_until(running, f"replication threads on {node}", 60, clock=run.clock)
        run.did(f"{node}: replicating from {run.inv.db_pair.peer_of(node).name}")
    if run.inv.settings.mysql.semi_sync.enabled:
        for node in (run.active, run.standby):
            # off at runtime: by init's schema step (no replica yet) or by a takeover whose peer
            # was gone; each node's peer replicates from it now, so it can acknowledge
            if run.value(node, "SELECT @@rpl_semi_sync_master_enabled") == "0":
                run.sql(node, "SET GLOBAL rpl_semi_sync_master_enabled = ON")
                run.did(f"{node}: semi-synchronous replication on again")


def _writable(run: InitRun, _: Step) -> None:
    facts = {n: _facts(run, n) for n in (run.active, run.standby)}
    if facts[run.active]["generation"] < max(f["generation"] for f in facts.values()):
        raise SafetyRefusal(f"{run.active} has an older generation than {run.standby}; it must not be made writable")
    if not facts[run.standby]["read_only"]:
        run.sql(run.standby, "SET GLOBAL read_only = ON")
        run.did(f"{run.standby}: read_only=ON")
    if facts[run.active]["read_only"]:
        run.sql(run.active, "SET GLOBAL read_only = OFF")
        run.did(f"{run.active}: writable (read_only=OFF)")
    else:
        run.note(f"{run.active} is writable, {run.standby} read-only")


#: what the monitoring master's login from an application node may do to hakit's tables (four-node):
#: write the shipped monitoring state and files, nothing else (the promotion record stays root's)
APP_GRANTS = ((MONITORING_STATE_TABLE, "INSERT, UPDATE"), (MONITORING_FILES_TABLE, "INSERT, UPDATE, DELETE"))


def _app_grants(run: InitRun, _: Step) -> None:
    """Four-node: the monitoring master's login from the application nodes may write the rows of
    the shipped monitoring state (:mod:`hakit.agents.continuity` ships it from there through the
    database VIP). A table's grant needs the table: made on the active (it replicates), then
    granted on each database node with binary logging off (the users are node-local, as the
    users step made them). read_only binds that login: it never writes on a standby."""
    from hakit.render.filters import sql_string

    mysql = run.inv.settings.mysql
    schema = mysql.hakit_schema
    tables = [monitoring_state_sql(schema), monitoring_files_sql(schema)]
    run.sql(run.active, ";\n".join(tables) + ";\n")
    point = run.value(run.active, "SELECT @@gtid_binlog_pos")
    if point and run.value(run.standby, f"SELECT MASTER_GTID_WAIT('{Position.parse(point)}', 60)") != "0":
        raise OperationFailed(f"{run.standby} did not receive hakit's tables from {run.active} within 60 s")
    hosts = [n.address for n in run.inv.app_pair.nodes]
    want = {(h, t, p.strip()) for h in hosts for t, privs in APP_GRANTS for p in privs.split(",")}
    for node in run.inv.db_pair.node_names:
        rows = root_rows(run.runners[node], "SELECT GRANTEE, TABLE_NAME, PRIVILEGE_TYPE FROM "
                                            "information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = "
                                            f"{sql_string(schema)}")
        have = {(str(r["GRANTEE"]), str(r["TABLE_NAME"]), str(r["PRIVILEGE_TYPE"])) for r in rows}
        missing = {w for w in want if (f"'{mysql.monitoring_user}'@'{w[0]}'", w[1], w[2]) not in have}
        if not missing:
            run.note(f"{node}: the monitoring login from the application nodes writes the shipped monitoring state")
            continue
        statements = ["SET SESSION sql_log_bin = 0"] + [
            f"GRANT {privs} ON {ident(schema)}.{ident(table)} TO {sql_string(mysql.monitoring_user)}@{sql_string(h)}"
            for h in hosts for table, privs in APP_GRANTS]
        run.sql(node, ";\n".join(statements) + ";\n")
        run.did(f"{node}: the monitoring login from {', '.join(hosts)} may write the shipped monitoring state "
                f"({', '.join(t for t, _ in APP_GRANTS)})")


def wanted_storage(inv: Inventory) -> Wanted | None:
    """What the storage step converges to (``storage.files: shared``), or None: no such step."""
    s = inv.settings
    if s.storage.files != "shared" or s.shared_storage is None:
        return None
    disk = s.shared_storage
    return Wanted(disk.device, disk.mount, disk.fstype, label_for(s.cluster_name), tuple(s.monitoring.shared_paths),
                  s.monitoring.daemon)


def _app_nodes(run: InitRun) -> tuple[str, str]:
    """The application pair's active and standby for the storage steps: the database active on
    two nodes, the application pair's first node on four (its resources are loaded after)."""
    app = run.inv.app_pair
    active = run.active if app.carries_db and run.active else app.nodes[0].name
    return active, app.peer_of(active).name


def _storage(run: InitRun, _: Step) -> None:
    """:mod:`hakit.pair.storage`: the device first (format a blank one, mount it on the active),
    then the shared paths on the facts read again."""
    from hakit.pair import storage as st

    want = wanted_storage(run.inv)
    assert want is not None
    active, standby = _app_nodes(run)

    def read() -> dict[str, st.NodeStorage]:
        return {n: st.read_node(run.runners[n], n, want) for n in (active, standby)}

    views = read()
    changes = st.plan_device(want, views[active], views[standby])
    for action in changes:
        st.apply(run.runners[action.node], action, want)
        run.did(action.describe(want.device, want.mount))
    if changes:
        views = read()
    kept = {n: st.taken_names(run.runners[n], want) for n in (active, standby)}
    moves = st.plan_paths(want, views[active], views[standby], kept)
    for action in moves:
        st.apply(run.runners[action.node], action, want)
        run.did(action.describe(want.device, want.mount))
    if not changes and not moves:
        run.note(f"{want.device} holds hakit's {want.fstype} file system, mounted on {active} at {want.mount}; "
                 f"{', '.join(want.paths)} link into it on {active} and {standby}")


def wanted_drbd(inv: Inventory) -> DrbdWanted | None:
    """What the DRBD step converges to (``storage.files: drbd``), or None: no such step."""
    return drbd_wanted(inv)


def _drbd(run: InitRun, _: Step) -> None:
    """:mod:`hakit.pair.drbd`: the resource up and Primary on the active, hakit's file system on
    it, then the shared paths exactly as on a shared disk (:mod:`hakit.pair.storage`)."""
    from hakit.pair import drbd as dr
    from hakit.pair import storage as st

    want = wanted_drbd(run.inv)
    assert want is not None
    active, standby = _app_nodes(run)

    def read() -> dict[str, dr.DrbdFacts]:
        return {n: dr.read_node(run.runners[n], n, want) for n in (active, standby)}

    def connected() -> bool:
        views = read()
        return all(v.cstate in DRBD_TALKING for v in views.values())

    views = read()
    changes = dr.plan_resource(want, views[active], views[standby])
    for action in changes:
        if action.kind in ("skip-initial-sync", "initial-sync"):
            wait_until(connected, f"DRBD {want.resource} connected on {active} and {standby}", dr.CONNECT_WITHIN,
                       clock=run.clock)
        dr.apply(run.runners[action.node], action, want)
        run.did(action.describe(want))
    views = read()
    device = dr.plan_device(want, views[active])
    for action in device:
        dr.apply(run.runners[action.node], action, want)
        run.did(action.describe(want))
    mon = run.inv.settings.monitoring
    paths = st.Wanted(want.device, want.mount, want.fstype, want.label, tuple(mon.shared_paths), mon.daemon)
    # the standby's device cannot be opened (Secondary): only its paths are read there
    elsewhere = st.Wanted("", want.mount, want.fstype, want.label, tuple(mon.shared_paths), mon.daemon)
    storage_views = {active: st.read_node(run.runners[active], active, paths),
                     standby: st.read_node(run.runners[standby], standby, elsewhere)}
    kept = {n: st.taken_names(run.runners[n], paths) for n in (active, standby)}
    moves = st.plan_paths(paths, storage_views[active], storage_views[standby], kept)
    for move in moves:
        st.apply(run.runners[move.node], move, paths)
        run.did(move.describe(want.device, want.mount))
    at_boot = _drbd_at_boot(run, want, (active, standby))
    if not changes and not device and not moves and not at_boot:
        run.note(f"DRBD {want.resource} up, {active} Primary with hakit's {want.fstype} file system on "
                 f"{want.mount}; {', '.join(paths.paths)} link into it on {active} and {standby}")


#: DRBD's own unit (drbd-utils): brings every resource up at boot and waits for the peer (the
#: resource's startup timeouts bound the wait)
DRBD_UNIT = "drbd.service"


def _drbd_at_boot(run: InitRun, want: DrbdWanted, nodes: tuple[str, str]) -> bool:
    """On heartbeat, whose ``drbddisk`` only promotes and demotes, DRBD's unit brings the resource
    up at boot, so that a returning node reconnects as Secondary and resyncs by itself (seen on
    the VM tier: without it the rebooted node's resource stayed down until hakit resync). Under
    Pacemaker ``ocf:linbit:drbd`` brings it up and the unit stays as it is (LINBIT: disabled
    under a cluster manager). Whether anything changed."""
    from hakit.remote.services import has_systemd

    if not traits_for(run.inv).drbd_up_at_boot:
        return False
    changed = False
    for node in nodes:
        runner = run.runners[node]
        if not has_systemd(runner):
            run.note(f"{node}: no systemd: bring DRBD {want.resource} up at boot with drbd-utils' init script "
                     f"(update-rc.d drbd enable), or hakit resync does it after a restart")
            continue
        if runner.run(["systemctl", "is-enabled", DRBD_UNIT], warn=True, timeout=30).stdout.strip() != "enabled":
            runner.run(["systemctl", "enable", DRBD_UNIT], timeout=60)
            run.did(f"{node}: {DRBD_UNIT} enabled: DRBD {want.resource} up at boot, connected as Secondary "
                    f"(heartbeat's drbddisk only promotes)")
            changed = True
    return changed


#: what the witness runs (``corosync-qnetd``) and, with TLS, its certificate tools
WITNESS_PROGRAMS = {"corosync-qnetd": "corosync-qnetd", "corosync-qnetd-certutil": "corosync-qnetd",
                    "certutil": "libnss3-tools", "python3": "python3"}
#: how long the nodes have to see the device's vote once corosync-qdevice runs (it connects to
#: the witness, TLS included, then votequorum counts the vote at its next poll)
DEVICE_VOTE_WITHIN = 60.0


def _preflight_witness(run: InitRun, *, dry_run: bool) -> None:
    """The quorum device's witness reachable with a verified host key, corosync-qnetd installed."""
    qd = run.inv.settings.quorum_device
    assert qd is not None
    if run.witness is None:
        raise OperationFailed(f"quorum_device: no connection to the witness {qd.host} was made")
    try:
        missing = run.witness.run(["sh", "-c", 'for p in "$@"; do command -v "$p" >/dev/null || echo "$p"; done',
                                   "sh", *sorted(WITNESS_PROGRAMS)], timeout=20).stdout.split()
    except Unreachable as exc:
        raise OperationFailed(f"the quorum device's witness {qd.host} (quorum_device.host): {exc}") from exc
    if missing:
        problem = (f"witness {qd.host}: missing {', '.join(missing)} (Debian packages: "
                   f"{' '.join(sorted({WITNESS_PROGRAMS[p] for p in missing}))}; the ansible/site.yml playbook "
                   f"installs them)")
        if dry_run:
            run.say(f"    the preflight would refuse: {problem}")
            return
        raise OperationFailed(problem)
    run.note(f"witness {qd.host} reachable, host key verified, corosync-qnetd present")


def _quorum(run: InitRun, _: Step) -> None:
    """:mod:`hakit.cluster.qdevice`: certificates, corosync-qnetd on the witness, corosync-qdevice
    on every node (started after corosync, which already reads the device from corosync.conf), and
    the device's vote seen by every node."""
    from hakit.cluster import qdevice as qdev
    from hakit.failover.observe import QUORUM_SCRIPT, quorum_of
    from hakit.remote.services import has_systemd, service

    qd = run.inv.settings.quorum_device
    assert qd is not None and run.witness is not None
    witness = run.witness
    names = [n.name for n in run.inv.nodes]
    certs_changed = new_authority = False
    if qd.tls != "off":
        w = qdev.read_side(witness, "witness", qdev.WITNESS_DB)
        sides = [qdev.read_side(run.runners[n], n, qdev.NODE_DB) for n in names]
        actions = qdev.plan_certificates(w, sides)
        for action in actions:
            qdev.apply(witness, run.runners, action, run.inv.settings.cluster_name)
            run.did(action.describe(run.inv.settings.cluster_name))
        certs_changed = bool(actions)
        new_authority = any(a.kind == "witness-ca" for a in actions)
    def running(runner: Runner, label: str, daemon: str, restart_why: str | None) -> None:
        """``daemon`` enabled (under systemd) and running on ``runner``; restarted for ``restart_why``."""
        if has_systemd(runner):
            runner.run(["systemctl", "enable", daemon], timeout=60)
        if not process_running(runner, daemon):
            service(runner, daemon, "start")
            run.did(f"{label}: {daemon} started")
        elif restart_why:
            service(runner, daemon, "restart")
            run.did(f"{label}: {daemon} restarted ({restart_why})")

    running(witness, f"witness {qd.host}", "corosync-qnetd",
            "its certificate authority is new" if new_authority else None)
    for name in names:
        running(run.runners[name], name, "corosync-qdevice",
                "its certificates changed" if certs_changed else None)

    def everyone_counts_it() -> bool:
        views = [quorum_of(run.runners[n].run(["sh", "-c", QUORUM_SCRIPT], warn=True, timeout=20).stdout.split())
                 for n in names]
        return all(v is not None and v.quorate and v.device_voting for v in views)

    wait_until(everyone_counts_it, f"the quorum device's vote (witness {qd.host}) on {', '.join(names)}",
               DEVICE_VOTE_WITHIN, interval=1.0, clock=run.clock)
    run.note(f"every node counts the witness {qd.host}'s vote (corosync-qnetd, algorithm "
             f"{qd.algorithm_for(len(names))}, TLS {qd.tls})")


def _resources(run: InitRun, _: Step) -> None:
    stack_for(run.inv, run.runners, clock=run.clock).load_resources(run)


def _keys(run: InitRun, _: Step) -> None:
    from hakit.pair.keys import share_keys

    share_keys(run)


def _sync(run: InitRun, _: Step) -> None:
    items = list(run.inv.settings.sync)
    if not items:
        run.note("no sync list")
        return
    app = run.inv.app_pair
    source = run.active if app.carries_db else app.nodes[0].name  # four-node: see resources for the app active
    target = app.peer_of(source).name
    plan = sync(run.runners[source], run.runners[target], items)
    if plan.empty:
        run.note(f"sync lists identical on {source} and {target}")
    else:
        run.did(f"{target}: synced {len(plan.copy)} entries from {source}, removed {len(plan.remove)}")


ACTIONS: dict[str, Callable[[InitRun, Step], None]] = {
    "preflight": _preflight, "install": _install, "database": _database, "stack": _stack, "users": _users,
    "roles": _roles, "seed": _seed, "schema": _schema, "replication": _replication, "writable": _writable,
    "app_grants": _app_grants, "storage": _storage, "drbd": _drbd, "resources": _resources, "keys": _keys,
    "sync": _sync, "quorum": _quorum}


def run_init(run: InitRun, *, dry_run: bool = False) -> list[str]:
    """Run ``init``; returns what it changed (empty: nothing to do)."""
    plan = plan_init(run.inv)
    if dry_run:
        # the preflight only reads: a dry run looks at the nodes too, and a pair it cannot reach
        # (or whose host keys it cannot verify) is said, with a non-zero exit, not planned blind
        _preflight(run, plan.steps[0], dry_run=True)
    executor = Executor({name: partial(func, run) for name, func in ACTIONS.items()}, None, say=run.say)
    executor.run(plan, dry_run=dry_run)
    if not dry_run:
        # each node's metrics, health endpoints and notifications, once the pair is what init
        # made it (started before, a seeding would be told as a standby that cannot take over),
        # serving the inventory just installed
        for node in run.inv.nodes:
            run.runners[node.name].run([run.inv.settings.node_hakit, "agent", "metrics", "--start"], warn=True,
                                       timeout=30)
    return run.actions_taken
