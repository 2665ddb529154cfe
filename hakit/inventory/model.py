"""The typed, immutable model of an inventory (DESIGN.md "The inventory").

Every string that can end up in a rendered file, a shell command or an SQL statement is
constrained here to a safe alphabet, so no value can break out of a config line: the
renderer may trust the model. Each constraint's message is a plain sentence of the rule.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# --------------------------------------------------------------------------- safe strings


def _pattern(regex: str, rule: str) -> AfterValidator:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(rule)
        return value

    return AfterValidator(check)


#: a pair's name: one pair of two-node, two of four-node
PairName = Literal["main", "db", "app"]

#: node, cluster and device names: usable as hostnames, corosync/heartbeat node names, XML ids
Name = Annotated[str, _pattern(r"[a-z][a-z0-9-]{0,62}",
                               "must be a name of lowercase letters, digits and '-', starting with a letter, "
                               "at most 63 characters")]
#: MySQL identifiers (database, user names): quoted with backticks, never with user characters
Ident = Annotated[str, _pattern(r"[A-Za-z_][A-Za-z0-9_]{0,31}",
                                "must be an identifier of letters, digits and '_', not starting with a digit, "
                                "at most 32 characters")]
AbsPath = Annotated[str, _pattern(r"/[A-Za-z0-9._+@/-]{0,254}",
                                  "must be an absolute path of letters, digits and '._+@-/' (no spaces or quotes)"),
                    AfterValidator(lambda v: _no_dotdot(v))]
Interface = Annotated[str, _pattern(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}",
                                    "must be a network interface name (letters, digits, '_.-', at most 15 characters)")]
#: values handed to fence agents and hooks: no quotes, spaces, braces, ';', '$' or newlines
#: a fence device's parameter (';' only in pcmk_host_map, between its mappings: FenceDevice)
SafeValue = Annotated[str, _pattern(r"[A-Za-z0-9._:;/@,+=%-]{0,255}",
                                    "must be at most 255 letters, digits or '._:;/@,+=%-' "
                                    "(no spaces, quotes, braces, '$' or newlines)")]
#: the only parameter ';' may be in: Pacemaker separates its node-to-port mappings with ';'
HOST_MAP = "pcmk_host_map"
FenceAgent = Annotated[str, _pattern(r"(fence_[a-z0-9_]{1,40}|external/[a-z0-9_-]{1,40}|[a-z][a-z0-9_]{1,40})",
                                     "must be a fence agent name such as 'fence_ipmilan', or a heartbeat "
                                     "stonith plugin such as 'external/ipmi'")]
HookArg = Annotated[str, _pattern(r"[^\x00\n\r]{1,1024}", "must be one line of at most 1024 characters")]


def _no_dotdot(value: str) -> str:
    if "/../" in value + "/" or value.endswith("/..") or "//" in value:
        raise ValueError("must be a normalised absolute path (no '..' or '//')")
    return value


#: addresses no host of the cluster can be reached at, with what they are (RFC 6890): nodes, VIPs
#: and ping nodes are all hosts, so none of them may be one of these. (Link-local 169.254/16 is an
#: address a host can have, and stays allowed.)
UNREACHABLE: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "in 0.0.0.0/8 (this network: 0.0.0.0 means any address)"),
    (ipaddress.IPv4Network("127.0.0.0/8"), "a loopback address (127.0.0.0/8: every host reaches itself there)"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "a multicast address (224.0.0.0/4)"),
    (ipaddress.IPv4Network("255.255.255.255/32"), "the limited broadcast address"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "reserved (240.0.0.0/4)"),
)


def _ipv4(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an IPv4 address written as a string, e.g. '10.0.0.1'")
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError("must be an IPv4 address such as '10.0.0.1'") from None
    for network, kind in UNREACHABLE:
        if address in network:
            raise ValueError(f"must be an address a host can be reached at: {address} is {kind}")
    return str(address)


IPv4 = Annotated[str, AfterValidator(_ipv4)]

# --------------------------------------------------------------------------- the tools' limits


def _drbd_path(value: str) -> str:
    # drbdadm's scanner reads an unquoted path as a word of at most 128 of these characters
    # (drbd-utils 9.22: '+' or '@' ends the word, a longer one is "Token too long")
    if not re.fullmatch(r"[A-Za-z0-9/._-]{1,128}", value):
        raise ValueError("must be at most 128 characters of letters, digits and '/._-': drbdadm reads no other "
                         "characters in a path ('+' and '@' end it), nor a longer word")
    return value


#: the largest minor number of a block device (the kernel's 20-bit minors)
MAX_MINOR = (1 << 20) - 1


def _drbd_device(value: str) -> str:
    # hakit writes "device /dev/drbdN;" without a separate "minor N": drbdadm takes the minor from the name
    match = re.fullmatch(r"/dev/drbd(0|[1-9][0-9]{0,6})", value)
    if match is None or int(match.group(1)) > MAX_MINOR:
        raise ValueError(f"must be /dev/drbdN with a minor number N from 0 to {MAX_MINOR}: drbdadm takes the minor "
                         f"from the device's name")
    return value


#: words drbdadm (drbd-utils 9.22) will not read as a resource's name: 'all' means every resource
#: to drbdadm, the others are keywords of drbd.conf (found by feeding each to ``drbdadm dump``)
DRBD_WORDS = frozenset({
    "all", "address", "ask", "cmd-timeout-long", "cmd-timeout-medium", "cmd-timeout-short", "common", "connection",
    "connection-mesh", "device", "dialog-refresh", "disable-ip-verification", "disk", "flexible-meta-disk",
    "floating", "global", "handlers", "host", "hosts", "include", "inside", "ipv4", "ipv6", "meta-disk",
    "minor-count", "net", "no", "node-id", "on", "options", "outside", "path", "proxy",
    "require-drbd-module-version-eq", "require-drbd-module-version-ge", "resource", "sci", "sdp", "skip", "ssocks",
    "stacked-on-top-of", "startup", "syncer", "template-file", "udev-always-use-vnr", "usage-count", "volume", "yes",
})


def _drbd_resource(value: str) -> str:
    if value in DRBD_WORDS:
        raise ValueError("must not be 'all' (drbdadm's word for every resource) or a word of drbd.conf such as "
                         "common, global, resource, on, net, disk, device, volume, yes, no")
    return value


#: a unix socket's path: sun_path holds 108 bytes, the last one the terminating NUL
MAX_SOCKET_PATH = 107


def _socket_path(value: str) -> str:
    if len(value.encode()) > MAX_SOCKET_PATH:
        raise ValueError(f"must be at most {MAX_SOCKET_PATH} characters: the path of a unix socket has room for "
                         f"{MAX_SOCKET_PATH} bytes (sun_path)")
    return value


#: the folders MariaDB's packaged configuration reads fragments from (!includedir: *.cnf only, no
#: sub-folders): Debian's two, and Red Hat's and SUSE's
MARIADB_FRAGMENT_DIRS = ("/etc/mysql/mariadb.conf.d", "/etc/mysql/conf.d", "/etc/my.cnf.d")


def _cnf_path(value: str) -> str:
    folder, _, name = value.rpartition("/")
    if folder not in MARIADB_FRAGMENT_DIRS or not re.fullmatch(r"[A-Za-z0-9_.@+-]+\.cnf", name):
        raise ValueError(f"must be a .cnf file directly in a folder MariaDB reads its fragments from "
                         f"({', '.join(MARIADB_FRAGMENT_DIRS[:2])} or {MARIADB_FRAGMENT_DIRS[2]}): MariaDB never "
                         f"reads a fragment elsewhere, and with it read_only=ON")
    return value


#: hakit's own folder on the nodes: rendered files only hakit writes there
HAKIT_DIR = "/etc/hakit"


def _cfg_path(value: str) -> str:
    # /etc/X/.../name.cfg, /opt/X/..., /usr/local/X/...: in a folder of the monitoring master's own
    top = next((t for t in ("/etc/", "/opt/", "/usr/local/") if value.startswith(t)), None)
    below = value[len(top):].split("/") if top else []
    if len(below) < 2 or not re.fullmatch(r"[A-Za-z0-9_.@+-]+\.cfg", below[-1]) \
            or value.startswith(HAKIT_DIR + "/"):
        raise ValueError(f"must be a .cfg file in a folder of its own below /etc, /opt or /usr/local (such as "
                         f"/etc/nagios4/conf.d/hakit.cfg), outside hakit's own {HAKIT_DIR}: Nagios reads only .cfg "
                         f"files")
    return value


# --------------------------------------------------------------------------- folders no sync may touch

#: folders that belong to the system, not to the monitoring master: a sync list or a shared path
#: naming one would copy the active's over the standby's (deleting what only the standby has), or
#: move it onto the shared storage and leave a link behind. The top of the file system hierarchy
#: and the folders directly below /usr and /var, and /etc's folders for the system's own services.
SYSTEM_FOLDERS = frozenset(
    ["/"]
    + [f"/{d}" for d in ("bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt",
                         "opt", "proc", "root", "run", "sbin", "srv", "sys", "tmp", "usr", "var")]
    + [f"/usr/{d}" for d in ("bin", "games", "include", "lib", "lib32", "lib64", "libexec", "libx32", "local",
                             "sbin", "share", "src")]
    + [f"/usr/local/{d}" for d in ("bin", "etc", "include", "lib", "sbin", "share", "src")]
    + [f"/var/{d}" for d in ("backups", "cache", "lib", "local", "lock", "log", "mail", "opt", "run", "spool",
                             "tmp")]
    + [f"/etc/{d}" for d in ("apt", "cron.d", "default", "init.d", "network", "pam.d", "security", "ssh", "ssl",
                             "sudoers.d", "systemd")]
)
#: file systems of the running system's state (and their old names): nothing under them is a file to copy
STATE_ROOTS = ("/proc", "/sys", "/dev", "/run", "/var/run", "/var/lock")


def system_path_problem(path: str) -> str | None:
    """Why ``path`` may be neither synced nor shared (a system folder, or under a state file
    system), or None."""
    path = path.rstrip("/") or "/"
    if path in SYSTEM_FOLDERS:
        return "is a system folder"
    for root in STATE_ROOTS:
        if path.startswith(root + "/"):
            return f"is under {root}, which holds the running system's state, not files"
    return None


def _sync_path(value: str) -> str:
    why = system_path_problem(value)
    if why:
        raise ValueError(f"{value} {why}: hakit sync makes the standby's copy the active's, deleting what only the "
                         f"standby has")
    return value


def _shared_path(value: str) -> str:
    why = system_path_problem(value)
    if why:
        raise ValueError(f"{value} {why}: a shared path is moved onto the storage the active mounts, and replaced "
                         f"by a link")
    return value


DrbdPath = Annotated[AbsPath, AfterValidator(_drbd_path)]
DrbdDevice = Annotated[AbsPath, AfterValidator(_drbd_device)]
SocketPath = Annotated[AbsPath, AfterValidator(_socket_path)]
CnfPath = Annotated[AbsPath, AfterValidator(_cnf_path)]
CfgPath = Annotated[AbsPath, AfterValidator(_cfg_path)]
SyncPath = Annotated[AbsPath, AfterValidator(_sync_path)]
SharedPath = Annotated[AbsPath, AfterValidator(_shared_path)]
Port = Annotated[int, Field(ge=1, le=65535)]


class Frozen(BaseModel):
    """Base of every model class: immutable, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, str_strip_whitespace=False)


# --------------------------------------------------------------------------- sections


class Vip(Frozen):
    """A virtual IP that follows the active node."""

    address: IPv4
    netmask: Annotated[int, Field(ge=8, le=32, description="CIDR prefix length, e.g. 24")] = 24
    interface: Interface = "eth0"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.address}/{self.netmask}", strict=False)


class Storage(Frozen):
    """Where the data lives: databases replicated (or on a block device), monitoring files mirrored."""

    databases: Literal["replication", "drbd", "shared"] = "replication"
    files: Literal["drbd", "shared", "none"] = "none"


def _tenths(value: float) -> float:
    if not math.isfinite(value * 10):  # 1.8e307 s: ten times that overflows (round() would raise)
        raise ValueError("must be a number of seconds heartbeat can count")
    if abs(value * 10 - round(value * 10)) > 1e-6:
        raise ValueError("must be a whole number of tenths of a second (heartbeat counts in milliseconds)")
    # held as the tenths ha.cf gets (HeartbeatTiming.ha_cf), so that the rules compare what heartbeat
    # reads: 3 and 3.00000001 are both written "3", and are not in order
    return round(value * 10) / 10


#: seconds in whole tenths; infinities and NaN refused before anything counts with them
Tenths = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_tenths)]


class HeartbeatTiming(Frozen):
    """ha.cf timings in seconds, in tenths (0.5 is written 500ms; heartbeat's rules: keepalive <
    warntime < deadtime <= initdead/2)."""

    # a dead node declared in 2 s (four missed keepalives); docs/performance.md has the idle run
    # that shows these cause no false failover
    keepalive: Annotated[Tenths, Field(ge=0.1, le=60)] = 0.5
    warntime: Annotated[Tenths, Field(ge=0.2, le=600)] = 1
    deadtime: Annotated[Tenths, Field(ge=0.5, le=600)] = 2
    initdead: Annotated[Tenths, Field(ge=4, le=3600)] = 30

    @model_validator(mode="after")
    def _order(self) -> HeartbeatTiming:
        if not self.keepalive < self.warntime < self.deadtime:
            raise ValueError("needs keepalive < warntime < deadtime")
        if self.initdead < 2 * self.deadtime:
            raise ValueError("initdead must be at least twice deadtime (heartbeat's own rule)")
        return self

    @staticmethod
    def ha_cf(seconds: float) -> str:
        """How ha.cf writes ``seconds``: whole seconds as a number, else milliseconds (``500ms``)."""
        return str(int(seconds)) if float(seconds).is_integer() else f"{round(seconds * 1000)}ms"


class HeartbeatMedium(Frozen):
    """A second communication path between the two heartbeat nodes: ``bcast`` on another
    interface (a dedicated link between the two, as the heartbeat documentation recommends).
    heartbeat declares a node dead only when every path has been silent for ``deadtime``."""

    interface: Interface


class Heartbeat(Frozen):
    """heartbeat settings beyond its timings: the extra communication paths (``ha.cf``)."""

    media: list[HeartbeatMedium] = []


class CorosyncTiming(Frozen):
    """corosync totem timings in milliseconds (consensus must exceed token; default 1.2 x token)."""

    # a lost node noticed in about 1.1 s (token + consensus): for a pair on one LAN (corosync
    # runs at real-time priority). docs/performance.md has the run without faults: no false
    # failover, two near misses in 10 minutes; under review. Where the network or the hosts
    # pause (VMs that migrate), raise it.
    token: Annotated[int, Field(ge=200, le=60000)] = 500
    consensus: Annotated[int | None, Field(ge=240, le=72000)] = None

    @model_validator(mode="after")
    def _order(self) -> CorosyncTiming:
        if self.consensus is not None and self.consensus <= self.token:
            raise ValueError("consensus must be larger than token (corosync's rule; default 1.2 x token)")
        return self

    @property
    def effective_consensus(self) -> int:
        return self.consensus if self.consensus is not None else int(self.token * 1.2)


class Timing(Frozen):
    heartbeat: HeartbeatTiming = HeartbeatTiming()
    corosync: CorosyncTiming = CorosyncTiming()


class FenceDevice(Frozen):
    """A fencing device: which agent, which nodes it can power off, and its parameters.

    Parameters named in ``secret_params`` are read from the secrets file
    (``fencing.<name>.<param>``), never from the inventory.
    """

    name: Name
    agent: FenceAgent
    nodes: Annotated[list[Name], Field(min_length=1)]
    params: dict[Ident, SafeValue] = {}
    secret_params: list[Ident] = []



class SemiSync(Frozen):
    enabled: bool = False
    timeout_ms: Annotated[int, Field(ge=100, le=600000)] = 10000
    wait_point: Literal["AFTER_SYNC", "AFTER_COMMIT"] = "AFTER_SYNC"


class Tls(Frozen):
    """Replication over TLS; certificate files are paths on each node."""

    enabled: bool = False
    ca: AbsPath | None = None
    cert: AbsPath | None = None
    key: AbsPath | None = None

    @model_validator(mode="after")
    def _files(self) -> Tls:
        if self.enabled and not (self.ca and self.cert and self.key):
            raise ValueError("tls.enabled needs ca, cert and key")
        return self


#: accounts MariaDB itself has or reserves (Debian's root and mysql log in through the unix socket;
#: hakit's agents use root's), compared ignoring case although MariaDB compares user names exactly:
#: an account that differs from one of these only by case is a mistake, never a need
SYSTEM_ACCOUNTS = ("root", "mysql", "mariadb.sys", "public", "none")
#: MariaDB's system schemas (information_schema and performance_schema are case-insensitive;
#: mysql and sys are where lower_case_table_names is set)
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


def _not_system_account(value: str) -> str:
    if value.lower() in SYSTEM_ACCOUNTS:
        raise ValueError("must not be root, mysql or another account MariaDB reserves (mariadb.sys, public, none; "
                         "in any case): hakit sets the password of its users, and root's socket login is the one "
                         "hakit's agents use")
    return value


def _not_system_schema(value: str) -> str:
    if value.lower() in SYSTEM_SCHEMAS:
        raise ValueError("must not be a system schema (mysql, information_schema, performance_schema or sys, in any "
                         "case): the monitoring and replication logins may read all of hakit_schema")
    return value


MysqlUser = Annotated[Ident, AfterValidator(_not_system_account)]
Schema = Annotated[Ident, AfterValidator(_not_system_schema)]


class MySQL(Frozen):
    """The database part: users, databases, replication options."""

    port: Port = 3306
    datadir: AbsPath = "/var/lib/mysql"
    socket: SocketPath = "/run/mysqld/mysqld.sock"
    config_path: CnfPath = "/etc/mysql/mariadb.conf.d/60-hakit.cnf"
    #: the MariaDB users hakit creates: distinct (ignoring case), none of MariaDB's own
    replication_user: MysqlUser = "hakit_repl"
    admin_user: MysqlUser = "hakit_admin"
    monitoring_user: MysqlUser = "opsview"
    hakit_schema: Schema = "hakit"
    databases: Annotated[list[Ident], Field(min_length=1)] = ["opsview", "runtime"]
    bulk_databases: list[Ident] = []
    semi_sync: SemiSync = SemiSync()
    tls: Tls = Tls()
    binlog_expire_days: Annotated[int, Field(ge=1, le=99)] = 7

    @model_validator(mode="after")
    def _bulk_subset(self) -> MySQL:
        unknown = [db for db in self.bulk_databases if db not in self.databases]
        if unknown:
            raise ValueError(f"bulk_databases must be listed in databases too (not listed: {', '.join(unknown)})")
        if len(set(self.databases)) != len(self.databases):
            raise ValueError("databases lists a name twice")
        folded: dict[str, str] = {}
        for db in self.databases:
            if db.lower() in folded:
                raise ValueError(f"databases lists {folded[db.lower()]} and {db}, one name in two cases (MariaDB "
                                 f"takes them for one database where lower_case_table_names is set)")
            folded[db.lower()] = db
        reserved = {*SYSTEM_SCHEMAS, self.hakit_schema.lower()}
        clash = sorted(db for db in self.databases if db.lower() in reserved)
        if clash:
            raise ValueError(f"databases must not name system or hakit schemas ({', '.join(clash)})")
        return self


class Monitoring(Frozen):
    """The monitoring master (Nagios 4 / Opsview style) run on the active node only."""

    service: Name = "nagios4"
    daemon: AbsPath = "/usr/sbin/nagios4"
    config: AbsPath = "/etc/nagios4/nagios.cfg"
    fragment: CfgPath = "/etc/nagios4/conf.d/hakit.cfg"
    user: Ident = "nagios"
    group: Ident = "nagios"
    status_file: AbsPath = "/var/lib/nagios4/status.dat"
    master_host_name: Name = "monitoring-master"
    #: paths that must be identical on both nodes (on shared storage, or kept in sync)
    shared_paths: list[SharedPath] = ["/etc/nagios4", "/var/lib/nagios4"]
    #: ``hakit check`` warns when the standby's copy of the shipped monitoring state (issue 25)
    #: lacks a change older than this (seconds), or when the active's shipper has not confirmed
    #: its row for a minute more than this (it confirms at least once a minute while it works)
    state_warning_seconds: Annotated[int, Field(ge=1, le=86400)] = 30


class Drbd(Frozen):
    """A DRBD resource (protocol C) mirroring the monitoring files between the two nodes."""

    resource: Annotated[Name, AfterValidator(_drbd_resource)] = "r0"
    device: DrbdDevice = "/dev/drbd0"
    disk: DrbdPath = "/dev/vdb"
    port: Port = 7789
    mount: AbsPath = "/srv/hakit"
    fstype: Literal["ext4", "xfs"] = "ext4"
    cram_hmac_alg: Literal["sha1", "sha256", "sha512"] = "sha256"
    #: resync-rate in MiB/s (written "100M"); drbd-utils refuses more than 8192M
    rate_mb: Annotated[int, Field(ge=1, le=8192)] = 100


class SharedStorage(Frozen):
    """One shared disk (iSCSI, FC) mounted only on the active."""

    device: AbsPath
    mount: AbsPath = "/srv/hakit"
    fstype: Literal["ext4", "xfs", "gfs2", "ocfs2"] = "ext4"


class QuorumDevice(Frozen):
    """A third vote without a third node (Pacemaker only): corosync's quorum device, the
    ``corosync-qnetd`` daemon on a small host outside the pair (a poller, a collector), that the
    nodes' ``corosync-qdevice`` ask. In a split, the side it votes for keeps quorum; the other
    side stops its resources at once instead of racing to fence."""

    #: the witness host's address (it runs corosync-qnetd; never a node of the cluster)
    host: IPv4
    port: Port = 5403
    #: ``auto``: ``ffsplit`` (two nodes: exactly one side of a 50:50 split) or ``lms`` (four
    #: nodes: the last man standing keeps quorum)
    algorithm: Literal["auto", "ffsplit", "lms"] = "auto"
    #: TLS between the nodes and the witness (certificates made by hakit): on, off or required
    tls: Literal["on", "off", "required"] = "on"
    #: addresses each node pings before it asks for the vote (corosync-qdevice's heuristics):
    #: a node that does not reach them is not given the vote; empty: the inventory's ping_nodes
    heuristics: list[IPv4] = []
    #: how hakit reaches the witness over SSH (its certificates, its corosync-qnetd): the host
    #: key checked against ssh.known_hosts, the key ssh.identity_file
    ssh_user: str = "root"
    ssh_port: Port = 22
    #: ms: how often corosync-qdevice polls votequorum (its heartbeat to the witness is 0.8 of
    #: it; qnetd accepts 1000 and up), and the most a membership change waits for the device's
    #: vote. When a node dies, the witness gives the survivor its vote only once it has dropped
    #: the dead node's connection: 1.5 heartbeats after its last message (2.4 s with 2000, 1.5 s
    #: with 1250, against the 1.1 s corosync takes to see the node gone). corosync's defaults
    #: (10000, 30000) left the survivor without quorum for 6 s on the lab
    timeout_ms: Annotated[int, Field(ge=1250, le=120000)] = 1250
    sync_timeout_ms: Annotated[int, Field(ge=1250, le=120000)] = 3000

    def algorithm_for(self, nodes: int) -> str:
        return self.algorithm if self.algorithm != "auto" else ("ffsplit" if nodes == 2 else "lms")


class SyncItem(Frozen):
    """A file or folder pushed from the active to the standby by ``hakit sync``."""

    path: SyncPath
    exclude: list[Annotated[str, _pattern(r"[A-Za-z0-9._*?+@-]{1,128}",
                                          "must be a file name pattern of letters, digits and '._*?+@-'")]] = []


class Ssh(Frozen):
    """SSH: how hakit reaches the nodes, and which keys the nodes share."""

    known_hosts: str = "known_hosts"  #: relative to the inventory's folder, or absolute
    identity_file: str | None = None  #: default: ansible_ssh_private_key_file or ssh-agent/~/.ssh
    connect_timeout: Annotated[float, Field(gt=0, le=120, allow_inf_nan=False)] = 5.0
    monitoring_user: Ident = "nagios"
    share_user_key: bool = True
    share_host_keys: bool = True

    @model_validator(mode="after")
    def _paths(self) -> Ssh:
        for value in (self.known_hosts, self.identity_file):
            if value is not None and not re.fullmatch(r"[A-Za-z0-9._+@/~-]{1,255}", value):
                raise ValueError("known_hosts and identity_file must be paths of letters, digits and '._+@/~-'")
        return self


Hook = Annotated[list[HookArg], Field(min_length=1)]


class Metrics(Frozen):
    """Each node's metrics and health endpoints (``hakit agent metrics``, started by init)."""

    #: the HTTP port of /metrics, /active, /standby and /health; 0: no HTTP endpoint
    port: Annotated[int, Field(ge=0, le=65535)] = 9749
    #: the address it listens on (default: the node's own, ansible_host)
    address: IPv4 | None = None
    #: a Prometheus textfile written with the same metrics (node_exporter's textfile collector)
    textfile: AbsPath | None = None
    #: how often the textfile is written (seconds)
    interval_seconds: Annotated[int, Field(ge=1, le=3600)] = 15


class Mail(Frozen):
    """Notifications by mail, sent by each node through an SMTP server (no login, no TLS: a
    local relay, as Nagios's own mail notifications use)."""

    to: Annotated[list[Annotated[str, _pattern(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}",
                                               "must be a mail address")]], Field(min_length=1)]
    sender: Annotated[str, _pattern(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}",
                                    "must be a mail address")] = "hakit@localhost"
    smtp_host: Annotated[str, _pattern(r"[A-Za-z0-9.-]{1,253}", "must be a host name or an address")] = "localhost"
    smtp_port: Port = 25


class Webhook(Frozen):
    """Notifications as a JSON POST (Slack-, Teams- or Alertmanager-style receivers)."""

    url: Annotated[str, _pattern(r"https?://[^\s\x00]{1,2000}", "must be an http:// or https:// URL")]


class Notify(Frozen):
    """Who is told of a role change or a degraded node, automatic ones included: each node's
    ``hakit agent metrics`` notices its own changes, Pacemaker's alerts its node and fencing
    events, and hakit sends from the node (never through the monitoring master, which may be
    what failed)."""

    #: a command run with the event in its environment (HAKIT_EVENT, ...) and as JSON on stdin
    command: Hook | None = None
    mail: Mail | None = None
    webhook: Webhook | None = None
    #: seconds each channel gets per event
    timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 10

    @property
    def any(self) -> bool:
        """Whether any channel is set (else nothing is told, and nothing is rendered for it)."""
        return bool(self.command or self.mail or self.webhook)


class Hooks(Frozen):
    """Commands (argument lists, never run through a shell) around each operation."""

    pre_takeover: list[Hook] = []
    post_takeover: list[Hook] = []
    pre_switchover: list[Hook] = []
    post_switchover: list[Hook] = []
    pre_resync: list[Hook] = []
    post_resync: list[Hook] = []
    timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 60


class Pacemaker(Frozen):
    stickiness: Annotated[int, Field(ge=1, le=1000000)] = 1000
    migration_threshold: Annotated[int, Field(ge=1, le=1000)] = 1
    no_quorum_policy: Literal["stop", "freeze", "ignore"] = "stop"
    #: seconds by which fencing the node that runs the resources is delayed (Pacemaker's
    #: priority-fencing-delay): in a split the active fences the standby first and survives. It
    #: must exceed the time the fence devices take to power a node off; a crashed active is
    #: fenced (and failed over) this much later. 0 turns it off.
    priority_fencing_delay: Annotated[int, Field(ge=0, le=120)] = 5
    #: milliseconds the controller waits after an event before it runs the scheduler (Pacemaker's
    #: transition-delay). Pacemaker's controller, when the scheduler's read of the CIB returns
    #: while an update of its own is still on its way (after a node loss, the DC's join updates;
    #: after a fencing, the node's new state), sleeps a whole second and reads again; a short
    #: delay lets those updates land first. 0 turns it off (Pacemaker's default).
    transition_delay_ms: Annotated[int, Field(ge=0, le=10000)] = 100
    #: seconds the ping resource's attribute waits before it is written (its ``dampen``): a
    #: router that answers again within it moves nothing. A node that has just joined has no
    #: attribute, and the group's location rule bans it, until its first ping has reported and
    #: this has passed: every start of the cluster and every rejoin waits for it.
    ping_dampen_seconds: Annotated[int, Field(ge=0, le=3600)] = 5
    #: every resource operation's timeout times this (1: hakit's timeouts as they are): for hosts
    #: that run an operation several times slower than a server (the VM tier's emulated guests,
    #: where DRBD's 20 s monitor and the database role's 30 s one timed out, and Pacemaker
    #: recovered a healthy group). A timeout only bounds a hung operation: a longer one finds
    #: a hang later, it delays nothing that answers
    op_timeout_factor: Annotated[float, Field(ge=1, le=10, allow_inf_nan=False)] = 1.0


class Failover(Frozen):
    relay_wait_seconds: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 30.0
    anti_flap_seconds: Annotated[int, Field(ge=0, le=86400)] = 600
    lag_warning_seconds: Annotated[int, Field(ge=0, le=86400)] = 10
    lag_critical_seconds: Annotated[int, Field(ge=0, le=86400)] = 60
    #: a standby that lags more than this (seconds) is not promoted by the stack, nor by a takeover
    #: without --force: it lacks writes the active acknowledged. 0: no bound on the lag
    max_lag_seconds: Annotated[int, Field(ge=0, le=86400)] = 60

    @model_validator(mode="after")
    def _thresholds(self) -> Failover:
        if self.lag_critical_seconds < self.lag_warning_seconds:
            raise ValueError("lag_critical_seconds must be at least lag_warning_seconds")
        return self


class Settings(Frozen):
    """Everything under ``all.vars.hakit``."""

    cluster_name: Name
    topology: Literal["two-node", "four-node"]
    stack: Literal["pacemaker", "heartbeat"]
    storage: Storage = Storage()
    vips: dict[PairName, Vip]
    timing: Timing = Timing()
    ping_nodes: list[IPv4] = []
    fencing: list[FenceDevice] = []
    heartbeat: Heartbeat = Heartbeat()
    mysql: MySQL = MySQL()
    monitoring: Monitoring = Monitoring()
    drbd: Drbd | None = None
    shared_storage: SharedStorage | None = None
    #: corosync's quorum device (a witness running corosync-qnetd); None: none
    quorum_device: QuorumDevice | None = None
    sync: list[SyncItem] = []
    ssh: Ssh = Ssh()
    hooks: Hooks = Hooks()
    metrics: Metrics = Metrics()
    notify: Notify = Notify()
    pacemaker: Pacemaker = Pacemaker()
    failover: Failover = Failover()
    #: hakit on the nodes: the resource agents and the Nagios check run it
    node_hakit: AbsPath = "/usr/local/bin/hakit"
    secrets_file: Annotated[str, _pattern(r"[A-Za-z0-9._+@/-]{1,255}",
                                          "must be a path of letters, digits and '._+@/-'")] = "hakit-secrets.yml"


class HostVars(Frozen):
    """The host variables hakit reads. Other ``ansible_*`` and non-hakit variables pass through."""

    model_config = ConfigDict(frozen=True, extra="allow", strict=True)

    ansible_host: IPv4
    ansible_port: Port = 22
    ansible_user: Annotated[str, _pattern(r"[a-z_][a-z0-9_-]{0,31}", "must be a user name")] = "root"
    ansible_ssh_private_key_file: Annotated[str, _pattern(r"[A-Za-z0-9._+@/~-]{1,255}",
                                                          "must be a path of letters, digits and '._+@/~-'")] \
        | None = None
    hakit_priority: Annotated[int, Field(ge=0, le=1000000)] = 100
    hakit_server_id: Annotated[int | None, Field(ge=1, le=4294967295)] = None
    hakit_drbd_disk: DrbdPath | None = None


# --------------------------------------------------------------------------- the whole


Role = Literal["db", "app"]


class Node(Frozen):
    """One server of a pair."""

    name: Name
    address: IPv4
    ssh_port: Port = 22
    ssh_user: str = "root"
    ssh_key: str | None = None
    priority: int = 100
    server_id: int
    offset: int  #: auto_increment_offset: 1 or 2 (its place in its pair)
    drbd_disk: str | None = None


class Pair(Frozen):
    """Two nodes that fail over to each other, with their VIP and what they carry."""

    name: PairName
    roles: frozenset[Role]
    nodes: tuple[Node, Node]
    vip: Vip

    @property
    def carries_db(self) -> bool:
        return "db" in self.roles

    @property
    def carries_app(self) -> bool:
        return "app" in self.roles

    @property
    def node_names(self) -> tuple[str, str]:
        return (self.nodes[0].name, self.nodes[1].name)

    def peer_of(self, name: str) -> Node:
        first, second = self.nodes
        if name == first.name:
            return second
        if name == second.name:
            return first
        raise KeyError(name)


class Inventory(Frozen):
    """A loaded, validated inventory: the settings, the pairs, and where it came from."""

    path: str  #: the inventory file (or folder, read by Ansible's loader)
    base_dir: str  #: its folder; relative paths in it are resolved from here
    settings: Settings
    pairs: tuple[Pair, ...]
    #: the inventory as one mapping, when Ansible's loader composed it from several files
    #: (group_vars, host_vars, INI): what the nodes' copy is written from; None: the file itself
    composed: dict[str, Any] | None = Field(default=None, repr=False)

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(node for pair in self.pairs for node in pair.nodes)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def pair_of(self, name: str) -> Pair:
        for pair in self.pairs:
            if name in pair.node_names:
                return pair
        raise KeyError(name)

    @property
    def db_pair(self) -> Pair:
        return next(p for p in self.pairs if p.carries_db)

    @property
    def app_pair(self) -> Pair:
        return next(p for p in self.pairs if p.carries_app)
