"""Hostile input, second round (issue 23): the inventory model's rules.

Each case is a value the first round's model accepted (or crashed on) and the real tool, or the
pair, could not live with. Each starts from a shipped example, breaks one thing and states the
problem(s) the operator must see: the dotted field path, the rule in plain words, and the line
of the file it points at (found in the written text, independently of the loader). Every
refusal is an InputError (exit 2); ``hakit check`` answers UNKNOWN (3) with the same rule.
"""

from __future__ import annotations

import io
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from test_inventory import DB_HOSTS, HK, HOSTS, Bad, F, H, L, P, key, set_, steps
from unitkit import EXAMPLES

from hakit.cli import main
from hakit.errors import InputError
from hakit.inventory.loader import load_inventory, parse_inventory

# --------------------------------------------------------------------------- the rules' messages

FINITE = "must be a finite number"
HB_ORDER = "needs keepalive < warntime < deadtime"
SYSTEM_ACCOUNT = ("must not be root, mysql or another account MariaDB reserves (mariadb.sys, public, none; in any "
                  "case): hakit sets the password of its users, and root's socket login is the one hakit's agents "
                  "use")
USERS_APART = ("each MariaDB user hakit creates needs a name of its own (one account would get two passwords, and "
               "the last would win)")
SYSTEM_SCHEMA = ("must not be a system schema (mysql, information_schema, performance_schema or sys, in any case): "
                 "the monitoring and replication logins may read all of hakit_schema")
DRBD_PATH = ("must be at most 128 characters of letters, digits and '/._-': drbdadm reads no other characters in "
             "a path ('+' and '@' end it), nor a longer word")
DRBD_MINOR = ("must be /dev/drbdN with a minor number N from 0 to 1048575: drbdadm takes the minor from the "
              "device's name")
DRBD_RESOURCE = ("must not be 'all' (drbdadm's word for every resource) or a word of drbd.conf such as common, "
                 "global, resource, on, net, disk, device, volume, yes, no")
SOCKET = "must be at most 107 characters: the path of a unix socket has room for 107 bytes (sun_path)"
CONFIG_PATH = ("must be a .cnf file directly in a folder MariaDB reads its fragments from (/etc/mysql/mariadb.conf.d, "
               "/etc/mysql/conf.d or /etc/my.cnf.d): MariaDB never reads a fragment elsewhere, and with it "
               "read_only=ON")
FRAGMENT = ("must be a .cfg file in a folder of its own below /etc, /opt or /usr/local (such as "
            "/etc/nagios4/conf.d/hakit.cfg), outside hakit's own /etc/hakit: Nagios reads only .cfg files")


def unreachable(address: str, kind: str) -> str:
    return f"must be an address a host can be reached at: {address} is {kind}"


def overlaps(what: str) -> str:
    return f"overlaps {what}"


def sync_refused(path: str, why: str) -> str:
    return f"{path} {why}: hakit sync makes the standby's copy the active's, deleting what only the standby has"


def shared_refused(path: str, why: str) -> str:
    return f"{path} {why}: a shared path is moved onto the storage the active mounts, and replaced by a link"


SYSTEM_FOLDER = "is a system folder"


def case(id: str, base: str, mutate, *expect: tuple[str, str, L | None]) -> Bad:
    return Bad(id, base, mutate, list(expect))


CASES: list[Bad] = [
    # ---- 1: numeric extremes in every numeric field: a rule, never OverflowError/ValueError text
    *[case(f"heartbeat-{name}-{label}", H, set_(HK + ("timing", "heartbeat", name), value),
           (f"all.vars.hakit.timing.heartbeat.{name}", FINITE, key(name)))
      for name in ("keepalive", "warntime", "deadtime", "initdead")
      for label, value in (("inf", float("inf")), ("minus-inf", float("-inf")), ("nan", float("nan")))],
    case("heartbeat-1e308", H, set_(HK + ("timing", "heartbeat", "deadtime"), 1.0e+308),
         ("all.vars.hakit.timing.heartbeat.deadtime", "must be a number of seconds heartbeat can count",
          key("deadtime"))),
    case("heartbeat-minus-1e308", H, set_(HK + ("timing", "heartbeat", "initdead"), -1.0e+308),
         ("all.vars.hakit.timing.heartbeat.initdead", "must be a number of seconds heartbeat can count",
          key("initdead"))),
    case("relay-wait-nan", P, set_(HK + ("failover", "relay_wait_seconds"), float("nan")),
         ("all.vars.hakit.failover.relay_wait_seconds", FINITE, key("relay_wait_seconds"))),
    case("relay-wait-inf", P, set_(HK + ("failover", "relay_wait_seconds"), float("inf")),
         ("all.vars.hakit.failover.relay_wait_seconds", FINITE, key("relay_wait_seconds"))),
    case("connect-timeout-nan", P, set_(HK + ("ssh",), {"connect_timeout": float("nan")}),
         ("all.vars.hakit.ssh.connect_timeout", FINITE, key("connect_timeout"))),
    case("connect-timeout-minus-inf", P, set_(HK + ("ssh",), {"connect_timeout": float("-inf")}),
         ("all.vars.hakit.ssh.connect_timeout", FINITE, key("connect_timeout"))),
    case("lag-warning-huge", P, set_(HK + ("failover", "lag_warning_seconds"), 10 ** 30),
         ("all.vars.hakit.failover.lag_warning_seconds", "must be less than or equal to 86400",
          key("lag_warning_seconds"))),
    case("lag-critical-huge", P, set_(HK + ("failover", "lag_critical_seconds"), 2 ** 70),
         ("all.vars.hakit.failover.lag_critical_seconds", "must be less than or equal to 86400",
          key("lag_critical_seconds"))),
    # ---- 13: heartbeat timings less than a millisecond apart are written alike: the order is the
    # order of what is written
    case("heartbeat-keepalive-equals-warntime-when-written", H,
         steps(set_(HK + ("timing", "heartbeat", "keepalive"), 3), set_(HK + ("timing", "heartbeat", "warntime"),
                                                                         3.00000001)),
         ("all.vars.hakit.timing.heartbeat", HB_ORDER, L(r"^\s*heartbeat:", nth=0))),
    # ---- 9: MySQL users
    case("monitoring-user-is-replication-user", P, set_(HK + ("mysql", "monitoring_user"), "hakit_repl"),
         ("all.vars.hakit.mysql.monitoring_user",
          f"hakit_repl is the name of mysql.replication_user too: {USERS_APART}",
          key("monitoring_user"))),
    case("admin-user-is-monitoring-user-but-for-case", P,
         steps(set_(HK + ("mysql", "monitoring_user"), "opsview"), set_(HK + ("mysql", "admin_user"), "OpsView")),
         ("all.vars.hakit.mysql.monitoring_user",
          f"opsview differs from mysql.admin_user (OpsView) only by case: {USERS_APART}", key("monitoring_user"))),
    case("admin-user-is-replication-user", H, set_(HK + ("mysql", "admin_user"), "repl"),
         ("all.vars.hakit.mysql.admin_user", f"repl is the name of mysql.replication_user too: {USERS_APART}",
          key("admin_user"))),
    case("admin-user-root", P, set_(HK + ("mysql", "admin_user"), "root"),
         ("all.vars.hakit.mysql.admin_user", SYSTEM_ACCOUNT, key("admin_user"))),
    case("monitoring-user-mysql", P, set_(HK + ("mysql", "monitoring_user"), "mysql"),
         ("all.vars.hakit.mysql.monitoring_user", SYSTEM_ACCOUNT, key("monitoring_user"))),
    case("replication-user-root-any-case", H, set_(HK + ("mysql", "replication_user"), "ROOT"),
         ("all.vars.hakit.mysql.replication_user", SYSTEM_ACCOUNT, key("replication_user"))),
    case("monitoring-user-public", P, set_(HK + ("mysql", "monitoring_user"), "PUBLIC"),
         ("all.vars.hakit.mysql.monitoring_user", SYSTEM_ACCOUNT, key("monitoring_user"))),
    # ---- 10: schemas
    *[case(f"hakit-schema-{name}", P, set_(HK + ("mysql", "hakit_schema"), name),
           ("all.vars.hakit.mysql.hakit_schema", SYSTEM_SCHEMA, key("hakit_schema")))
      for name in ("mysql", "MySQL", "sys", "SYS", "information_schema", "Performance_Schema")],
    case("database-system-schema-other-case", P, set_(HK + ("mysql", "databases"), ["opsview", "MySQL", "odw"]),
         ("all.vars.hakit.mysql", "databases must not name system or hakit schemas (MySQL)", key("mysql"))),
    case("database-information-schema-upper", P,
         set_(HK + ("mysql", "databases"), ["opsview", "INFORMATION_SCHEMA", "odw"]),
         ("all.vars.hakit.mysql", "databases must not name system or hakit schemas (INFORMATION_SCHEMA)",
          key("mysql"))),
    case("database-hakit-schema-other-case", P, set_(HK + ("mysql", "databases"), ["opsview", "HAKIT", "odw"]),
         ("all.vars.hakit.mysql", "databases must not name system or hakit schemas (HAKIT)", key("mysql"))),
    case("database-twice-in-two-cases", P, set_(HK + ("mysql", "databases"), ["opsview", "odw", "OpsView"]),
         ("all.vars.hakit.mysql", "databases lists opsview and OpsView, one name in two cases (MariaDB takes them "
          "for one database where lower_case_table_names is set)", key("mysql"))),
    # ---- 11: fencing
    case("fence-nodes-twice", P, set_(HK + ("fencing", 0, "nodes"), ["nagios1", "nagios1"]),
         ("all.vars.hakit.fencing[0].nodes[1]", "nagios1 is listed twice in this device's nodes",
          L(r"^\s*- nagios1$", nth=1))),
    case("fence-name-is-another-device-monitor-op", P, set_(HK + ("fencing", 1, "name"), "ipmi-nagios1-monitor-60s"),
         ("all.vars.hakit.fencing[1].name", "this device's CIB id fence-ipmi-nagios1-monitor-60s is also the id of "
          "the monitor operation of fencing device ipmi-nagios1; choose another name",
          L(r"name: ipmi-nagios1-monitor-60s"))),
    case("fence-name-is-another-device-location", P, set_(HK + ("fencing", 1, "name"), "ipmi-nagios1-not-on-nagios1"),
         ("all.vars.hakit.fencing[1].name", "this device's CIB id fence-ipmi-nagios1-not-on-nagios1 is also the id "
          "of the constraint that keeps fencing device ipmi-nagios1 off nagios1; choose another name",
          L(r"name: ipmi-nagios1-not-on-nagios1"))),
    case("pcmk-host-list-contradicts-nodes", P, set_(HK + ("fencing", 0, "params", "pcmk_host_list"), "nagios2"),
         ("all.vars.hakit.fencing[0].params.pcmk_host_list",
          "names nagios2 but the device's nodes are nagios1: hakit keeps a device off the node it fences by nodes, "
          "so both must name the same nodes (or leave pcmk_host_list out: hakit sets it from nodes)",
          key("pcmk_host_list"))),
    case("pcmk-host-list-more-than-nodes", P,
         set_(HK + ("fencing", 0, "params", "pcmk_host_list"), "nagios1,nagios2"),
         ("all.vars.hakit.fencing[0].params.pcmk_host_list",
          "names nagios1, nagios2 but the device's nodes are nagios1: hakit keeps a device off the node it fences "
          "by nodes, so both must name the same nodes (or leave pcmk_host_list out: hakit sets it from nodes)",
          key("pcmk_host_list"))),
    case("pcmk-host-check-none", P, set_(HK + ("fencing", 0, "params", "pcmk_host_check"), "none"),
         ("all.vars.hakit.fencing[0].params.pcmk_host_check",
          "must be static-list (or left out): hakit lists the device's nodes in pcmk_host_list; with none "
          "Pacemaker may ask the device to fence a node it is not kept off", key("pcmk_host_check"))),
    case("heartbeat-stonith-hostname-contradicts-nodes", H,
         set_(HK + ("fencing", 0, "params", "hostname"), "opsview2"),
         ("all.vars.hakit.fencing[0].params.hostname",
          "names opsview2, not one of the device's nodes (opsview1): heartbeat picks the node that runs a device "
          "by nodes, so a device that resets another node runs on the wrong one", L(r"hostname: opsview2", nth=0))),
    case("heartbeat-stonith-hostlist-names-a-stranger", H,
         set_(HK + ("fencing", 1, "params"), {"hostlist": "opsview2,opsview3:dom3", "userid": "admin"}),
         ("all.vars.hakit.fencing[1].params.hostlist",
          "names opsview3, not one of the device's nodes (opsview2): heartbeat picks the node that runs a device "
          "by nodes, so a device that resets another node runs on the wrong one", key("hostlist"))),
    # ---- 12: addresses no host can have
    *[case(f"node-address-{label}", P, set_(HOSTS + ("nagios1", "ansible_host"), address),
           ("all.children.hakit_nodes.hosts.nagios1.ansible_host", unreachable(address, kind), L(re.escape(address))))
      for label, address, kind in (
          ("unspecified", "0.0.0.0", "in 0.0.0.0/8 (this network: 0.0.0.0 means any address)"),
          ("this-network", "0.0.0.1", "in 0.0.0.0/8 (this network: 0.0.0.0 means any address)"),
          ("loopback", "127.0.0.1", "a loopback address (127.0.0.0/8: every host reaches itself there)"),
          ("multicast", "224.0.0.18", "a multicast address (224.0.0.0/4)"),
          ("reserved", "240.0.0.1", "reserved (240.0.0.0/4)"),
          ("broadcast", "255.255.255.255", "the limited broadcast address"))],
    case("vip-multicast", P, set_(HK + ("vips", "main", "address"), "239.1.1.1"),
         ("all.vars.hakit.vips.main.address", unreachable("239.1.1.1", "a multicast address (224.0.0.0/4)"),
          L(r"address: 239\.1\.1\.1"))),
    case("vip-unspecified", P, set_(HK + ("vips", "main", "address"), "0.0.0.0"),
         ("all.vars.hakit.vips.main.address",
          unreachable("0.0.0.0", "in 0.0.0.0/8 (this network: 0.0.0.0 means any address)"), L(r"address: 0\.0\.0\.0"))),
    case("ping-node-broadcast", P, set_(HK + ("ping_nodes",), ["255.255.255.255"]),
         ("all.vars.hakit.ping_nodes[0]", unreachable("255.255.255.255", "the limited broadcast address"),
          L(r"- 255\.255\.255\.255"))),
    case("ping-node-loopback", P, set_(HK + ("ping_nodes",), ["127.0.0.53"]),
         ("all.vars.hakit.ping_nodes[0]",
          unreachable("127.0.0.53", "a loopback address (127.0.0.0/8: every host reaches itself there)"),
          L(r"- 127\.0\.0\.53"))),
    case("node-address-is-subnet-broadcast", P, set_(HOSTS + ("nagios2", "ansible_host"), "198.51.100.255"),
         ("all.children.hakit_nodes.hosts.nagios2.ansible_host",
          "198.51.100.255 is the broadcast address of 198.51.100.0/24, the subnet of VIP 'main'; a node needs a "
          "host address in it", L(r"198\.51\.100\.255"))),
    case("node-address-is-subnet-network", F, set_(DB_HOSTS + ("db1", "ansible_host"), "198.51.100.0"),
         ("all.children.hakit_db.hosts.db1.ansible_host",
          "198.51.100.0 is the network address of 198.51.100.0/24, the subnet of VIP 'db'; a node needs a "
          "host address in it", L(r"198\.51\.100\.0$"))),
    case("ping-node-is-subnet-broadcast", P, set_(HK + ("ping_nodes",), ["198.51.100.255"]),
         ("all.vars.hakit.ping_nodes[0]",
          "198.51.100.255 is the broadcast address of 198.51.100.0/24, the subnet of VIP 'main'; a ping node must "
          "be a host", L(r"- 198\.51\.100\.255"))),
    # ---- 13: the real tools' limits
    case("drbd-disk-plus", H, set_(HK + ("drbd", "disk"), "/dev/vd+b"),
         ("all.vars.hakit.drbd.disk", DRBD_PATH, key("disk"))),
    case("drbd-disk-at", H, set_(HK + ("drbd", "disk"), "/dev/disk/by-id/x@y"),
         ("all.vars.hakit.drbd.disk", DRBD_PATH, key("disk"))),
    case("drbd-disk-129-characters", H, set_(HK + ("drbd", "disk"), "/dev/" + "a" * 124),
         ("all.vars.hakit.drbd.disk", DRBD_PATH, key("disk"))),
    case("host-drbd-disk-plus", H, set_(HOSTS + ("opsview1", "hakit_drbd_disk"), "/dev/vd+c"),
         ("all.children.hakit_nodes.hosts.opsview1.hakit_drbd_disk", DRBD_PATH, key("hakit_drbd_disk"))),
    case("drbd-device-without-minor", H, set_(HK + ("drbd", "device"), "/dev/drbdx"),
         ("all.vars.hakit.drbd.device", DRBD_MINOR, key("device"))),
    case("drbd-device-not-drbd", H, set_(HK + ("drbd", "device"), "/dev/sdb"),
         ("all.vars.hakit.drbd.device", DRBD_MINOR, key("device"))),
    case("drbd-device-minor-too-large", H, set_(HK + ("drbd", "device"), "/dev/drbd1048576"),
         ("all.vars.hakit.drbd.device", DRBD_MINOR, key("device"))),
    case("drbd-rate-over-8192", H, set_(HK + ("drbd", "rate_mb"), 8193),
         ("all.vars.hakit.drbd.rate_mb", "must be less than or equal to 8192", key("rate_mb"))),
    case("mysql-socket-108", P, set_(HK + ("mysql", "socket"), "/run/mysqld/" + "s" * 96),
         ("all.vars.hakit.mysql.socket", SOCKET, key("socket"))),
    case("drbd-device-is-its-disk", H, set_(HK + ("drbd", "disk"), "/dev/drbd0"),
         ("all.vars.hakit.drbd.disk", "is also drbd.device: DRBD's backing disk must be another device than the "
          "one DRBD makes", key("disk"))),
    case("host-drbd-disk-is-the-device", H, set_(HOSTS + ("opsview2", "hakit_drbd_disk"), "/dev/drbd0"),
         ("all.children.hakit_nodes.hosts.opsview2.hakit_drbd_disk", "is also drbd.device: DRBD's backing disk "
          "must be another device than the one DRBD makes", key("hakit_drbd_disk"))),
    # ---- 14: dangerous values
    *[case(f"drbd-resource-{name}", H, set_(HK + ("drbd", "resource"), name),
           ("all.vars.hakit.drbd.resource", DRBD_RESOURCE, key("resource")))
      for name in ("all", "common", "global", "resource", "on", "volume", "yes")],
    case("sync-root", P, set_(HK + ("sync", 0, "path"), "/"),
         ("all.vars.hakit.sync[0].path", sync_refused("/", SYSTEM_FOLDER), L(r"^\s*- path: /$"))),
    *[case(f"sync-system-folder{folder.replace('/', '-')}", H, set_(HK + ("sync", 1, "path"), folder),
           ("all.vars.hakit.sync[1].path", sync_refused(folder, SYSTEM_FOLDER), L(rf"^\s*- path: {folder}$")))
      for folder in ("/etc", "/usr", "/var", "/boot", "/usr/lib", "/var/lib", "/home")],
    *[case(f"sync-under{root.replace('/', '-')}", P, set_(HK + ("sync", 0, "path"), root + "/x"),
           ("all.vars.hakit.sync[0].path", sync_refused(root + "/x", f"is under {root}, which holds the running "
                                                                      f"system's state, not files"),
            L(rf"^\s*- path: {root}/x$")))
      for root in ("/proc", "/sys", "/dev", "/run")],
    case("sync-hakit-own-files", P, set_(HK + ("sync", 0, "path"), "/etc/hakit"),
         ("all.vars.hakit.sync[0].path", sync_refused("/etc/hakit", overlaps(
             "hakit's rendered files (/etc/hakit), which differ between the nodes")),
          L(r"^\s*- path: /etc/hakit$"))),
    case("sync-mysql-datadir", P, set_(HK + ("sync", 0, "path"), "/var/lib/mysql/opsview"),
         ("all.vars.hakit.sync[0].path", sync_refused("/var/lib/mysql/opsview", overlaps(
             "mysql.datadir (/var/lib/mysql), which differs between the nodes")),
          L(r"^\s*- path: /var/lib/mysql/opsview$"))),
    case("sync-mysql-config", P, set_(HK + ("sync", 0, "path"), "/etc/mysql"),
         ("all.vars.hakit.sync[0].path", sync_refused("/etc/mysql", overlaps(
             "mysql.config_path (/etc/mysql/mariadb.conf.d/60-hakit.cnf), which differs between the nodes")),
          L(r"^\s*- path: /etc/mysql$"))),
    case("shared-paths-root", H, set_(HK + ("monitoring", "shared_paths"), ["/etc/nagios4", "/"]),
         ("all.vars.hakit.monitoring.shared_paths[1]", shared_refused("/", SYSTEM_FOLDER),
          L(r"^\s*- /$"))),
    case("shared-paths-etc", H, set_(HK + ("monitoring", "shared_paths"), ["/etc"]),
         ("all.vars.hakit.monitoring.shared_paths[0]", shared_refused("/etc", SYSTEM_FOLDER), L(r"^\s*- /etc$"))),
    case("shared-paths-in-the-mount", H, set_(HK + ("monitoring", "shared_paths"), ["/srv/hakit/nagios"]),
         ("all.vars.hakit.monitoring.shared_paths[0]",
          shared_refused("/srv/hakit/nagios", overlaps("the storage's mount (/srv/hakit)")),
          L(r"^\s*- /srv/hakit/nagios$"))),
    case("sync-holds-the-mount", H, set_(HK + ("sync", 0, "path"), "/srv/hakit"),
         ("all.vars.hakit.sync[0].path", sync_refused("/srv/hakit", overlaps("the storage's mount (/srv/hakit)")),
          L(r"^\s*- path: /srv/hakit$"))),
    *[case(f"config-path{path.replace('/', '-')}", P, set_(HK + ("mysql", "config_path"), path),
           ("all.vars.hakit.mysql.config_path", CONFIG_PATH, key("config_path")))
      for path in ("/etc/passwd", "/etc/hakit", "/", "/etc/hakit/replication.sql", "/etc/mysql/mariadb.conf.d",
                   "/etc/mysql/mariadb.conf.d/sub/x.cnf", "/etc/ssl/openssl.cnf", "/etc/mysql/conf.d/x.conf")],
    *[case(f"fragment{path.replace('/', '-')}", P, set_(HK + ("monitoring", "fragment"), path),
           ("all.vars.hakit.monitoring.fragment", FRAGMENT, key("fragment")))
      for path in ("/etc/passwd", "/", "/etc/hakit/x.cfg", "/etc/x.cfg", "/boot/grub/x.cfg",
                   "/etc/mysql/mariadb.conf.d/60-hakit.cnf", "/etc/nagios4/conf.d/")],
    case("drbd-port-is-mysql-port", H, set_(HK + ("drbd", "port"), 3306),
         ("all.vars.hakit.drbd.port", "port 3306 is also mysql.port: DRBD and MariaDB each need a port of their own",
          key("port"))),
    case("drbd-port-is-ssh-port", H, set_(HOSTS + ("opsview2", "ansible_port"), 7789),
         ("all.vars.hakit.drbd.port", "port 7789 is also the SSH port of node opsview2 (ansible_port)", key("port"))),
    case("mysql-port-is-ssh-port", P, set_(HK + ("mysql", "port"), 22),
         *[("all.vars.hakit.mysql.port", f"port 22 is also the SSH port of node {n} (ansible_port)", key("port"))
           for n in ("nagios1", "nagios2")]),
]


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_rule(bad: Bad, example_data, write_inventory) -> None:
    data = example_data(bad.base)
    bad.mutate(data)
    path = write_inventory(data)
    text = path.read_text(encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_inventory(path)
    expected = [(str(path), line.find(text) if line else None, fld, msg) for fld, msg, line in bad.expect]
    got = [(p.file, p.line, p.field, p.message) for p in info.value.problems]
    assert got == expected
    assert info.value.exit_code == 2


def test_the_cases_are_distinct() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------- what still loads


@pytest.mark.parametrize("mutate", [
    set_(HK + ("timing", "heartbeat", "keepalive"), 0.3),
    steps(set_(HK + ("timing", "heartbeat", "deadtime"), 5.00000001), set_(HK + ("timing", "heartbeat", "initdead"),
                                                                         10)),  # ha.cf: 5000ms and 10
    set_(HK + ("mysql", "config_path"), "/etc/my.cnf.d/hakit.cnf"),
    set_(HK + ("mysql", "config_path"), "/etc/mysql/conf.d/zz-hakit.cnf"),
    set_(HK + ("monitoring", "fragment"), "/opt/opsview/monitoringengine/etc/conf.d/hakit.cfg"),
    set_(HK + ("monitoring", "fragment"), "/usr/local/nagios/etc/objects/hakit.cfg"),
    set_(HK + ("drbd", "device"), "/dev/drbd1048575"),
    set_(HK + ("drbd", "disk"), "/dev/disk/by-id/" + "a" * 112),  # 128 characters: drbdadm's longest word
    set_(HK + ("drbd", "rate_mb"), 8192),
    set_(HK + ("drbd", "resource"), "protocol"),  # not a word drbdadm reads in a resource's name
    set_(HK + ("mysql", "socket"), "/run/mysqld/" + "s" * 95),  # 107 characters
    set_(HK + ("mysql", "admin_user"), "Root_admin"),
    set_(HK + ("mysql", "hakit_schema"), "hakit_sys"),
    set_(HK + ("sync", 0, "path"), "/etc/nagios4/objects"),
    set_(HK + ("monitoring", "shared_paths"), ["/etc/nagios4", "/var/lib/nagios4", "/usr/local/nagios/var"]),
    set_(HK + ("ping_nodes",), ["10.0.0.0"]),  # the network address of another subnet: a host there may have it
    set_(HK + ("fencing", 0, "params", "hostname"), "opsview1"),
], ids=["tenths", "initdead-twice-deadtime-as-written", "config-rhel", "config-conf-d", "fragment-opsview",
        "fragment-usr-local", "drbd-largest-minor",
        "drbd-path-128", "drbd-rate-8192", "drbd-resource-protocol", "socket-107", "user-with-root-inside",
        "schema-with-sys-inside", "sync-deep", "shared-deep", "ping-other-network", "stonith-hostname-agrees"])
def test_values_at_the_limits_load(mutate, example_data, write_inventory) -> None:
    data = example_data(H)
    mutate(data)
    inv = load_inventory(write_inventory(data))
    assert inv.settings.cluster_name == "opsview-ha"


def test_pacemaker_fence_parameters_that_agree_with_nodes_load(example_data, write_inventory) -> None:
    data = example_data(F)
    data["all"]["vars"]["hakit"]["fencing"][0]["params"].update(pcmk_host_list="app2,app1,db2,db1",
                                                                 pcmk_host_check="static-list")
    inv = load_inventory(write_inventory(data))
    assert inv.settings.fencing[0].params["pcmk_host_check"] == "static-list"


def test_heartbeat_timings_are_what_ha_cf_writes(example_data, write_inventory) -> None:
    """A timing that is a whole number of tenths but for a rounding error is held as the tenths
    ha.cf gets, so the rules compare what heartbeat reads."""
    data = example_data(H)
    data["all"]["vars"]["hakit"]["timing"]["heartbeat"].update(keepalive=0.30000000001, warntime=2.9999999999)
    timing = load_inventory(write_inventory(data)).settings.timing.heartbeat
    assert (timing.keepalive, timing.warntime) == (0.3, 3.0)
    assert (timing.ha_cf(timing.keepalive), timing.ha_cf(timing.warntime)) == ("300ms", "3")


# --------------------------------------------------------------------------- 1: every command, one rule


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


NUMBERS = [("keepalive", ".inf", FINITE), ("warntime", "-.inf", FINITE), ("deadtime", ".nan", FINITE),
           ("initdead", "1.0e+308", "must be a number of seconds heartbeat can count")]


@pytest.mark.parametrize("fld, value, rule", NUMBERS, ids=[f"{f}={v}" for f, v, _ in NUMBERS])
@pytest.mark.parametrize("command", [["render", "--check"], ["validate"], ["status"], ["status", "--json"]])
def test_a_bad_number_is_bad_input_for_every_command(fld: str, value: str, rule: str, command: list[str],
                                                     examples_dir: Path, tmp_path: Path) -> None:
    text = (examples_dir / f"{H}.yml").read_text(encoding="utf-8")
    path = tmp_path / "site.yml"
    path.write_text(re.sub(rf"(?m)^(\s+{fld}:) .*$", rf"\1 {value}", text, count=1), encoding="utf-8")
    line = L(rf"^\s+{fld}: ").find(path.read_text(encoding="utf-8"))
    code, out, err = _run(["-i", str(path)] + command)
    assert (code, out) == (2, "")
    assert err == f"hakit: {path}:{line}: all.vars.hakit.timing.heartbeat.{fld}: {rule}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.yml"]


@pytest.mark.parametrize("fld, value, rule", NUMBERS, ids=[f"{f}={v}" for f, v, _ in NUMBERS])
def test_a_bad_number_makes_check_unknown(fld: str, value: str, rule: str, examples_dir: Path,
                                          tmp_path: Path) -> None:
    text = (examples_dir / f"{H}.yml").read_text(encoding="utf-8")
    path = tmp_path / "site.yml"
    path.write_text(re.sub(rf"(?m)^(\s+{fld}:) .*$", rf"\1 {value}", text, count=1), encoding="utf-8")
    line = L(rf"^\s+{fld}: ").find(path.read_text(encoding="utf-8"))
    code, out, err = _run(["-i", str(path), "check"])
    assert (code, err) == (3, "")
    assert out == f"HAKIT UNKNOWN - {path}:{line}: all.vars.hakit.timing.heartbeat.{fld}: {rule}\n"


# --------------------------------------------------------------------------- 15: YAML constructors


TAGGED = [
    ("!!int abc", "not valid YAML: 'abc' tagged !!int is not an integer"),
    ("!!int 0x", "not valid YAML: '0x' tagged !!int is not an integer"),
    ("!!float x", "not valid YAML: 'x' tagged !!float is not a number"),
    ("!!bool maybe", "not valid YAML: 'maybe' tagged !!bool is not a boolean"),
    ("!!timestamp 2020-13-45", "not valid YAML: '2020-13-45' tagged !!timestamp is not a date"),
    ("2020-13-45", "not valid YAML: 2020-13-45 looks like a date but is not one; quote it to keep it text"),
    ("!!binary zz", "not valid YAML: 'zz' tagged !!binary is not base64"),
    ("!foo bar", "not valid YAML: the tag !foo is unknown (hakit reads plain YAML: text, numbers, booleans, "
                 "lists and mappings)"),
    ("0x_", "not valid YAML: 0x_ looks like an integer but is not one; quote it to keep it text"),
    ("!!set [a]", "not valid YAML: a list tagged !!set is not a mapping"),
]


@pytest.mark.parametrize("value, message", TAGGED, ids=[v for v, _ in TAGGED])
def test_a_value_yaml_cannot_build_names_its_field(value: str, message: str, examples_dir: Path,
                                                   tmp_path: Path) -> None:
    text = (examples_dir / f"{H}.yml").read_text(encoding="utf-8")
    path = tmp_path / "site.yml"
    path.write_text(re.sub(r"(?m)^(\s+warntime:) .*$", rf"\1 {value}", text, count=1), encoding="utf-8")
    line = L(r"^\s+warntime: ").find(path.read_text(encoding="utf-8"))
    with pytest.raises(InputError) as info:
        load_inventory(path)
    got = [(p.file, p.line, p.field, p.message) for p in info.value.problems]
    assert got == [(str(path), line, "all.vars.hakit.timing.heartbeat.warntime", message)]
    code, out, err = _run(["-i", str(path), "render", "--check"])
    assert (code, out) == (2, "")
    assert err == f"hakit: {path}:{line}: all.vars.hakit.timing.heartbeat.warntime: {message}\n"


def test_a_bad_tag_in_a_list_item_and_a_key_names_its_place() -> None:
    text = "all:\n  vars:\n    hakit:\n      ping_nodes:\n        - 10.0.0.1\n        - !!int ten\n"
    with pytest.raises(InputError) as info:
        parse_inventory(text, "x.yml")
    assert str(info.value) == "x.yml:6: all.vars.hakit.ping_nodes[1]: not valid YAML: 'ten' tagged !!int is not " \
                              "an integer"
    with pytest.raises(InputError) as info:
        parse_inventory("all:\n  vars:\n    !!int x: 1\n", "x.yml")
    assert str(info.value) == "x.yml:3: all.vars: not valid YAML: 'x' tagged !!int is not an integer"


def test_python_tags_still_refuse_the_whole_file() -> None:
    with pytest.raises(InputError) as info:
        parse_inventory("all:\n  vars: !!python/name:os.system x\n", "x.yml")
    assert str(info.value) == ("x.yml:2: not valid YAML: could not determine a constructor for the tag "
                               "'tag:yaml.org,2002:python/name:os.system'")


# --------------------------------------------------------------------------- the lab and the examples still load


@pytest.mark.parametrize("topology", ["two-node", "four-node"])
@pytest.mark.parametrize("stack", ["pacemaker", "heartbeat"])
@pytest.mark.parametrize("timings", ["hakit", "stack-defaults"])
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_lab_inventories_load(topology: str, stack: str, timings: str, tls: bool, tmp_path: Path) -> None:
    """The lab writes its inventory with its own addresses (10.213.47.0/24 by default), fence
    device and timings: each kind still loads (plan_lab and inventory_data are pure)."""
    from hakit.lab.labinventory import inventory_data
    from hakit.lab.spec import plan_lab

    spec = plan_lab(tmp_path / "lab", topology, stack, tls=tls)
    text = yaml.safe_dump(inventory_data(spec, timings), sort_keys=False)
    inv = parse_inventory(text, "lab.yml", base_dir=str(tmp_path))
    assert len(inv.nodes) == (2 if topology == "two-node" else 4)


@pytest.mark.parametrize("name", [H, P, F])
def test_examples_load(name: str, examples_dir: Path) -> None:
    assert load_inventory(examples_dir / f"{name}.yml").settings.cluster_name



@pytest.mark.parametrize("topology", ["two-node", "four-node"])
@pytest.mark.parametrize("stack", ["pacemaker", "heartbeat"])
def test_vagrant_inventories_load(topology: str, stack: str, tmp_path: Path) -> None:
    """The Vagrant lab's inventory (192.168.56.0/24, fence_virsh per node) still loads."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "vagrant" / "make_inventory.py"
    spec = importlib.util.spec_from_file_location("hakit_vagrant_make_inventory", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plan = module.plan(topology, stack, "192.168.56.0/24", "libvirt", tmp_path / "vagrant")
    text = yaml.safe_dump(module.inventory(plan), sort_keys=False)
    inv = parse_inventory(text, "vagrant.yml", base_dir=str(tmp_path))
    assert len(inv.nodes) == (2 if topology == "two-node" else 4)


def test_a_host_map_is_read_the_way_pacemaker_reads_it():
    """pcmk_host_map: ';' (or white space) separates the mappings, ',' the ports of one node.
    The shipped four-node example had "db1:1,db2:2,app1:3,app2:4", which Pacemaker reads as
    one alias ("3,app2" -> "4"): fencing db1 would have gone to a port named "db1"."""
    from hakit.inventory.loader import host_map_aliases

    assert host_map_aliases("db1:1,db2:2,app1:3,app2:4") == {"3,app2": "4"}
    assert host_map_aliases("db1:1;db2:2,3 app1=4") == {"db1": "1", "db2": "2,3", "app1": "4"}
    assert host_map_aliases("") == {} and host_map_aliases("db1") == {}
    example = EXAMPLES / "four-node-pacemaker.yml"
    text = example.read_text()
    assert 'pcmk_host_map: "db1:1;db2:2;app1:3;app2:4"' in text
    parse_inventory(text, "four.yml")  # the example as shipped maps every node
    for bad, words in (("db1:1,db2:2,app1:3,app2:4", "(',' separates the ports of one node"),
                       ("db1:1;db2:2;app1:3", "it must map each of the device's nodes (db1, db2, app1, app2)"),
                       ("db1:1;db2:2;app1:3;app2:4;db3:5", "db3 -> 5"),
                       ("db1:;db2:2;app1:3;app2:4", "db1 -> (no port)")):
        with pytest.raises(InputError) as refused:
            parse_inventory(text.replace("db1:1;db2:2;app1:3;app2:4", bad), "four.yml")
        message = str(refused.value)
        assert "all.vars.hakit.fencing[0].params.pcmk_host_map: Pacemaker reads it as" in message, message
        assert words in message, message


def test_a_semicolon_is_refused_in_every_fence_parameter_but_the_host_map():
    example = EXAMPLES / "two-node-pacemaker.yml"
    text = example.read_text().replace("username: admin,", "username: 'ad;min',", 1)
    with pytest.raises(InputError) as refused:
        parse_inventory(text, "two.yml")
    assert "fencing[0].params.username: must not contain ';': only pcmk_host_map may" in str(refused.value)


@pytest.mark.parametrize("path", ["/etc/mysql", "/etc/mysql/conf.d", "/etc/my.cnf.d", "/etc/my.cnf"])
def test_mariadb_s_configuration_is_never_synced_wherever_hakit_s_fragment_is(path):
    """Hypothesis found it: with mysql.config_path under /etc/my.cnf.d, syncing /etc/mysql (Debian's
    MariaDB configuration, each node's own) was accepted."""
    example = EXAMPLES / "two-node-pacemaker.yml"
    text = example.read_text().replace("        - path: /etc/nagios4/objects", f"        - path: {path}")
    text = text.replace("      mysql:\n", "      mysql:\n        config_path: /etc/my.cnf.d/hakit.cnf\n", 1)
    with pytest.raises(InputError) as refused:
        parse_inventory(text, "two.yml")
    assert f"{path} overlaps " in str(refused.value) and "which differs between the nodes" in str(refused.value)
