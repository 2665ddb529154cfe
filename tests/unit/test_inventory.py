"""The inventory: every validation rule, each with its exact message, file, line and field.

Each bad case starts from one of the shipped examples, breaks one thing and states the
problem(s) the operator must see: the dotted field path, the rule in plain words, and the line
of the file it points at (found in the written text, independently of the loader).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hakit.errors import InputError, Problem
from hakit.inventory.loader import load_inventory, parse_inventory

P, H, F = "two-node-pacemaker", "two-node-heartbeat-drbd", "four-node-pacemaker"
HK = ("all", "vars", "hakit")
HOSTS = ("all", "children", "hakit_nodes", "hosts")
DB_HOSTS = ("all", "children", "hakit_db", "hosts")
APP_HOSTS = ("all", "children", "hakit_app", "hosts")

NAME_RULE = ("must be a name of lowercase letters, digits and '-', starting with a letter, "
             "at most 63 characters")
IDENT_RULE = ("must be an identifier of letters, digits and '_', not starting with a digit, "
              "at most 32 characters")
PATH_RULE = "must be an absolute path of letters, digits and '._+@-/' (no spaces or quotes)"
INTERFACE_RULE = "must be a network interface name (letters, digits, '_.-', at most 15 characters)"
SAFE_RULE = "must be at most 255 letters, digits or '._:;/@,+=%-' (no spaces, quotes, braces, '$' or newlines)"
EXCLUDE_RULE = "must be a file name pattern of letters, digits and '._*?+@-'"
HOOK_RULE = "must be one line of at most 1024 characters"
SECRETS_FILE_RULE = "must be a path of letters, digits and '._+@/-'"
SSH_RULE = "known_hosts and identity_file must be paths of letters, digits and '._+@/~-'"
USER_RULE = "must be a user name"
IPV4_RULE = "must be an IPv4 address such as '10.0.0.1'"
FENCE_AGENT_RULE = ("must be a fence agent name such as 'fence_ipmilan', or a heartbeat stonith plugin "
                    "such as 'external/ipmi'")
SETTINGS_KEYS = ("cluster_name, drbd, failover, fencing, heartbeat, hooks, metrics, monitoring, mysql, node_hakit, "
                 "notify, "
                 "pacemaker, ping_nodes, quorum_device, "
                 "secrets_file, shared_storage, ssh, stack, storage, sync, timing, topology, vips")
STONITH = "hakit never runs Pacemaker with stonith disabled"


# --------------------------------------------------------------------------- helpers


def _parent(data: Any, path: tuple) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def set_(path: tuple, value: Any) -> Callable[[Any], None]:
    def apply(data: Any) -> None:
        _parent(data, path)[path[-1]] = copy.deepcopy(value)
    return apply


def delete(path: tuple) -> Callable[[Any], None]:
    def apply(data: Any) -> None:
        del _parent(data, path)[path[-1]]
    return apply


def rename(path: tuple, new_key: Any) -> Callable[[Any], None]:
    """Rename a mapping key in place, keeping its position (so its line stays the same)."""
    def apply(data: Any) -> None:
        parent = _parent(data, path)
        items = [(new_key if k == path[-1] else k, v) for k, v in parent.items()]
        parent.clear()
        parent.update(items)
    return apply


def steps(*mutations: Callable[[Any], None]) -> Callable[[Any], None]:
    def apply(data: Any) -> None:
        for mutate in mutations:
            mutate(data)
    return apply


@dataclass(frozen=True)
class L:
    """A line of the written file: the line matching ``regex`` (the ``nth`` one when several
    do; else it must be the only one), plus ``plus``."""

    regex: str
    plus: int = 0
    nth: int | None = None

    def find(self, text: str) -> int:
        hits = [i + 1 for i, line in enumerate(text.splitlines()) if re.search(self.regex, line)]
        if self.nth is None:
            assert len(hits) == 1, f"test bug: {self.regex!r} must match one line (lines {hits})"
            return hits[0] + self.plus
        assert len(hits) > self.nth, f"test bug: {self.regex!r} matches {len(hits)} lines"
        return hits[self.nth] + self.plus


@dataclass(frozen=True)
class Bad:
    id: str
    base: str
    mutate: Callable[[Any], None]
    expect: list[tuple[str, str, L | None]] = field(default_factory=list)  # (field, message, line)


def key(name: str) -> L:
    return L(rf"^\s*{re.escape(name)}:")


CASES: list[Bad] = [
    # unknown keys, with the keys allowed there
    Bad("unknown-key-settings", P, set_(HK + ("bogus",), 1),
        [("all.vars.hakit.bogus", f"unknown key (allowed here: {SETTINGS_KEYS})", key("bogus"))]),
    Bad("unknown-key-vip", P, set_(HK + ("vips", "main", "bogus"), 1),
        [("all.vars.hakit.vips.main.bogus", "unknown key (allowed here: address, interface, netmask)",
          key("bogus"))]),
    Bad("unknown-key-fencing", P, set_(HK + ("fencing", 0, "bogus"), 1),
        [("all.vars.hakit.fencing[0].bogus", "unknown key (allowed here: agent, name, nodes, params, secret_params)",
          key("bogus"))]),
    Bad("unknown-key-timing", H, set_(HK + ("timing", "heartbeat", "bogus"), 1),
        [("all.vars.hakit.timing.heartbeat.bogus",
          "unknown key (allowed here: deadtime, initdead, keepalive, warntime)", key("bogus"))]),
    Bad("unknown-key-sync", P, set_(HK + ("sync", 0, "bogus"), 1),
        [("all.vars.hakit.sync[0].bogus", "unknown key (allowed here: exclude, path)", key("bogus"))]),
    Bad("unknown-key-semi-sync", P, set_(HK + ("mysql", "semi_sync", "bogus"), 1),
        [("all.vars.hakit.mysql.semi_sync.bogus", "unknown key (allowed here: enabled, timeout_ms, wait_point)",
          key("bogus"))]),
    Bad("unknown-vip-name", P, set_(HK + ("vips", "zzz"), {"address": "198.51.100.30"}),
        [("all.vars.hakit.vips.zzz", "must be one of 'main', 'db' or 'app'", key("zzz"))]),
    # wrong types
    Bad("type-name-int", P, set_(HK + ("cluster_name",), 5),
        [("all.vars.hakit.cluster_name", "must be a valid string", key("cluster_name"))]),
    Bad("type-port-text", P, set_(HK + ("mysql", "port"), "abc"),
        [("all.vars.hakit.mysql.port", "must be a valid integer", key("port"))]),
    Bad("type-port-fraction", P, set_(HK + ("mysql", "port"), 1.5),
        [("all.vars.hakit.mysql.port", "must be a valid integer", key("port"))]),
    # strict types: YAML's true is not the number 1
    Bad("type-port-bool", P, set_(HK + ("mysql", "port"), True),
        [("all.vars.hakit.mysql.port", "must be a valid integer", key("port"))]),
    Bad("range-port", P, set_(HK + ("mysql", "port"), 70000),
        [("all.vars.hakit.mysql.port", "must be less than or equal to 65535", key("port"))]),
    Bad("type-list-as-text", P, set_(HK + ("mysql", "databases"), "opsview"),
        [("all.vars.hakit.mysql.databases", "must be a valid list", L(r"databases: opsview$"))]),
    Bad("type-vips-null", P, set_(HK + ("vips",), None),
        [("all.vars.hakit.vips", "must be a valid dictionary", key("vips"))]),
    Bad("type-bool", P, set_(HK + ("mysql", "semi_sync", "enabled"), "perhaps"),
        [("all.vars.hakit.mysql.semi_sync.enabled", "must be a valid boolean",
          L("enabled: perhaps"))]),
    Bad("literal-topology", P, set_(HK + ("topology",), "three-node"),
        [("all.vars.hakit.topology", "must be one of 'two-node' or 'four-node'", key("topology"))]),
    Bad("literal-stack", P, set_(HK + ("stack",), "keepalived"),
        [("all.vars.hakit.stack", "must be one of 'pacemaker' or 'heartbeat'", key("stack"))]),
    Bad("literal-wait-point", P, set_(HK + ("mysql", "semi_sync", "wait_point"), "LATER"),
        [("all.vars.hakit.mysql.semi_sync.wait_point", "must be one of 'AFTER_SYNC' or 'AFTER_COMMIT'",
          key("wait_point"))]),
    Bad("settings-not-mapping", P, set_(HK, ["cluster_name"]),
        [("all.vars.hakit", "must be a mapping of keys to values", key("hakit"))]),
    Bad("host-vars-not-mapping", P, set_(HOSTS + ("nagios1",), "198.51.100.21"),
        [("all.children.hakit_nodes.hosts.nagios1", "must be a mapping of keys to values", key("nagios1"))]),
    Bad("host-vars-a-number", P, set_(HOSTS + ("nagios1",), 1),
        [("all.children.hakit_nodes.hosts.nagios1", "must be a mapping of keys to values", key("nagios1"))]),
    Bad("host-vars-a-list", P, set_(HOSTS + ("nagios1",), ["hakit_x"]),
        [("all.children.hakit_nodes.hosts.nagios1", "must be a mapping of keys to values", key("nagios1"))]),
    Bad("host-var-type", P, set_(HOSTS + ("nagios1", "hakit_priority"), "high"),
        [("all.children.hakit_nodes.hosts.nagios1.hakit_priority",
          "must be a valid integer", L(r"hakit_priority: high"))]),
    Bad("host-address-not-ip", P, set_(HOSTS + ("nagios1", "ansible_host"), "nagios1.example.com"),
        [("all.children.hakit_nodes.hosts.nagios1.ansible_host", IPV4_RULE, L("nagios1.example.com"))]),
    # required keys
    Bad("missing-cluster-name", P, delete(HK + ("cluster_name",)),
        [("all.vars.hakit.cluster_name", "is required", key("hakit"))]),
    Bad("missing-topology", P, delete(HK + ("topology",)),
        [("all.vars.hakit.topology", "is required", key("hakit"))]),
    Bad("missing-stack", P, delete(HK + ("stack",)),
        [("all.vars.hakit.stack", "is required", key("hakit"))]),
    Bad("missing-vips", P, delete(HK + ("vips",)),
        [("all.vars.hakit.vips", "is required", key("hakit"))]),
    Bad("missing-vip-address", P, set_(HK + ("vips", "main"), {"netmask": 24}),
        [("all.vars.hakit.vips.main.address", "is required", key("main"))]),
    Bad("missing-ansible-host", P, set_(HOSTS + ("nagios1",), None),
        [("all.children.hakit_nodes.hosts.nagios1.ansible_host", "is required", key("nagios1"))]),
    Bad("missing-shared-device", F, delete(HK + ("shared_storage", "device")),
        [("all.vars.hakit.shared_storage.device", "is required", key("shared_storage"))]),
    # VIPs and addresses
    Bad("vip-missing-two-node", P, set_(HK + ("vips",), {}),
        [("all.vars.hakit.vips", "needs the VIP 'main' for topology two-node (expected keys: main)", key("vips"))]),
    Bad("vip-missing-four-node", F, delete(HK + ("vips", "app")),
        [("all.vars.hakit.vips", "needs the VIP 'app' for topology four-node (expected keys: db, app)",
          key("vips"))]),
    Bad("vip-extra", P, set_(HK + ("vips", "db"), {"address": "198.51.100.30"}),
        [("all.vars.hakit.vips.db", "topology two-node has no pair 'db' (expected keys: main)", key("db"))]),
    Bad("vip-extra-main-four-node", F, set_(HK + ("vips", "main"), {"address": "198.51.100.50"}),
        [("all.vars.hakit.vips.main", "topology four-node has no pair 'main' (expected keys: db, app)",
          key("main"))]),
    Bad("same-address", F, set_(DB_HOSTS + ("db2", "ansible_host"), "198.51.100.31"),
        [("all.children.hakit_db.hosts.db2.ansible_host",
          "address 198.51.100.31 is also the address of db1; every node needs its own", L(r"^\s+db2:", 1))]),
    Bad("vip-outside-subnet", P, set_(HK + ("vips", "main", "address"), "10.0.0.5"),
        [("all.vars.hakit.vips.main.address", f"VIP 10.0.0.5/24 is outside the subnet of node {node} "
          f"({address}); the VIP must be in the nodes' subnet", L("address: 10.0.0.5"))
         for node, address in (("nagios1", "198.51.100.21"), ("nagios2", "198.51.100.22"))]),
    Bad("vip-netmask-too-narrow", P, set_(HK + ("vips", "main", "netmask"), 31),
        [("all.vars.hakit.vips.main.address", "VIP 198.51.100.20/31 is outside the subnet of node nagios2 "
          "(198.51.100.22); the VIP must be in the nodes' subnet", L("address: 198.51.100.20"))]),
    Bad("vip-is-node-address", P, set_(HK + ("vips", "main", "address"), "198.51.100.21"),
        [("all.vars.hakit.vips.main.address",
          "VIP 198.51.100.21 is the address of node nagios1; a VIP must be an address of its own",
          L(r"^\s+address: 198.51.100.21"))]),
    Bad("vip-network-address", P, set_(HK + ("vips", "main", "address"), "198.51.100.0"),
        [("all.vars.hakit.vips.main.address", "VIP must not be the network or broadcast address of its subnet",
          L("address: 198.51.100.0"))]),
    Bad("vip-broadcast-address", P, set_(HK + ("vips", "main", "address"), "198.51.100.255"),
        [("all.vars.hakit.vips.main.address", "VIP must not be the network or broadcast address of its subnet",
          L("address: 198.51.100.255"))]),
    Bad("vip-twice", F, set_(HK + ("vips", "app", "address"), "198.51.100.30"),
        [("all.vars.hakit.vips.app.address", "VIP 198.51.100.30 is also the VIP 'db'",
          L(r"address: 198.51.100.30", nth=1))]),
    Bad("vip-not-ip", P, set_(HK + ("vips", "main", "address"), "198.51.100.300"),
        [("all.vars.hakit.vips.main.address", IPV4_RULE, L("198.51.100.300"))]),
    Bad("vip-netmask-range", P, set_(HK + ("vips", "main", "netmask"), 33),
        [("all.vars.hakit.vips.main.netmask", "must be less than or equal to 32", key("netmask"))]),
    # groups and hosts
    Bad("group-of-other-topology", P, set_(("all", "children", "hakit_db"), {"hosts": {"x": None}}),
        [("all.children.hakit_db", "group hakit_db belongs to another topology; two-node uses hakit_nodes",
          key("hakit_db"))]),
    Bad("group-of-other-topology-four", F, set_(("all", "children", "hakit_nodes"), {"hosts": {}}),
        [("all.children.hakit_nodes",
          "group hakit_nodes belongs to another topology; four-node uses hakit_db, hakit_app", key("hakit_nodes"))]),
    Bad("group-three-hosts", P, set_(HOSTS + ("nagios3",), {"ansible_host": "198.51.100.23"}),
        [("all.children.hakit_nodes", "must list exactly two hosts under 'hosts' (found 3)", key("hakit_nodes"))]),
    Bad("group-one-host", P, delete(HOSTS + ("nagios2",)),
        [("all.children.hakit_nodes", "must list exactly two hosts under 'hosts' (found 1)", key("hakit_nodes"))]),
    Bad("group-missing", F, delete(("all", "children", "hakit_app")),
        [("all.children.hakit_app", "must list exactly two hosts under 'hosts' (found 0)", key("children"))]),
    Bad("no-children", P, delete(("all", "children")),
        [("all", "must have 'children' with the group(s) hakit_nodes for topology two-node", key("all"))]),
    Bad("host-in-two-groups", F, steps(delete(APP_HOSTS + ("app2",)),
                                       set_(APP_HOSTS + ("db1",), {"ansible_host": "198.51.100.43"})),
        [("all.children.hakit_app.hosts.db1", "this host is already in another hakit group; a node belongs to one pair",
          L(r"^\s+db1:", nth=1))]),
    Bad("unknown-hakit-host-var", P, set_(HOSTS + ("nagios1", "hakit_prio"), 5),
        [("all.children.hakit_nodes.hosts.nagios1.hakit_prio",
          "unknown hakit host variable (allowed: hakit_priority, hakit_server_id, hakit_drbd_disk)",
          key("hakit_prio"))]),
    Bad("host-name-not-a-name", P, rename(HOSTS + ("nagios1",), "Nagios_1"),
        [("all.children.hakit_nodes.hosts.Nagios_1", NAME_RULE, key("Nagios_1"))]),
    Bad("server-id-clash", F, steps(set_(DB_HOSTS + ("db1", "hakit_server_id"), 7),
                                    set_(APP_HOSTS + ("app2", "hakit_server_id"), 7)),
        [("all.children.hakit_app.hosts.app2.hakit_server_id",
          "server id 7 is also used by db1; MySQL needs distinct server ids", L(r"hakit_server_id: 7", nth=1))]),
    Bad("server-id-zero", P, set_(HOSTS + ("nagios1", "hakit_server_id"), 0),
        [("all.children.hakit_nodes.hosts.nagios1.hakit_server_id", "must be greater than or equal to 1",
          key("hakit_server_id"))]),
    # storage
    Bad("drbd-without-section", H, delete(HK + ("drbd",)),
        [("all.vars.hakit.storage", "storage uses drbd, so the section 'drbd' is required", key("storage"))]),
    Bad("shared-without-section", F, delete(HK + ("shared_storage",)),
        [("all.vars.hakit.storage", "storage uses shared, so the section 'shared_storage' is required",
          key("storage"))]),
    Bad("datadir-outside-drbd-mount", H, steps(set_(HK + ("storage", "databases"), "drbd"),
                                               set_(HK + ("mysql", "datadir"), "/var/lib/mysql")),
        [("all.vars.hakit.mysql.datadir",
          "with databases on drbd storage, mysql.datadir must be under the mount /srv/hakit", key("datadir"))]),
    Bad("datadir-outside-shared-mount", F, steps(set_(HK + ("storage",), {"databases": "shared", "files": "none"}),
                                                 set_(HK + ("mysql", "datadir"), "/srv/hakitx/mysql")),
        [("all.vars.hakit.mysql.datadir",
          "with databases on shared storage, mysql.datadir must be under the mount /srv/hakit", key("datadir"))]),
    Bad("drbd-and-shared-mixed", H, steps(set_(HK + ("storage",), {"databases": "drbd", "files": "shared"}),
                                          set_(HK + ("shared_storage",), {"device": "/dev/sdb", "mount": "/srv/hakit"}),
                                          set_(HK + ("mysql", "datadir"), "/srv/hakit/mysql")),
        [("all.vars.hakit.storage", "use one of drbd or shared for both databases and files", key("storage"))]),
    Bad("four-node-one-shared-device-for-both-pairs", F, steps(set_(HK + ("storage", "databases"), "shared"),
                                                               set_(HK + ("mysql", "datadir"), "/srv/hakit/mysql")),
        [("all.vars.hakit.storage", "four-node: the database pair and the application pair cannot both mount the "
          "one shared_storage device; use replication or drbd for one of them", key("storage"))]),
    # timings
    Bad("heartbeat-order", H, set_(HK + ("timing", "heartbeat", "warntime"), 6),
        [("all.vars.hakit.timing.heartbeat", "needs keepalive < warntime < deadtime", L(r"^\s*heartbeat:", nth=0))]),
    Bad("heartbeat-keepalive-order", H, set_(HK + ("timing", "heartbeat", "keepalive"), 3),
        [("all.vars.hakit.timing.heartbeat", "needs keepalive < warntime < deadtime", L(r"^\s*heartbeat:", nth=0))]),
    Bad("heartbeat-hundredths", H, set_(HK + ("timing", "heartbeat", "keepalive"), 0.25),
        [("all.vars.hakit.timing.heartbeat.keepalive",
          "must be a whole number of tenths of a second (heartbeat counts in milliseconds)",
          key("keepalive"))]),
    # hypothesis found it: ten times 1.8e307 overflows, and the check of tenths crashed (OverflowError)
    Bad("heartbeat-overflow", H, set_(HK + ("timing", "heartbeat", "keepalive"), 1.797693134862316e+307),
        [("all.vars.hakit.timing.heartbeat.keepalive", "must be a number of seconds heartbeat can count",
          key("keepalive"))]),
    Bad("heartbeat-initdead", H, set_(HK + ("timing", "heartbeat", "initdead"), 9),
        [("all.vars.hakit.timing.heartbeat", "initdead must be at least twice deadtime (heartbeat's own rule)",
          L(r"^\s*heartbeat:", nth=0))]),
    Bad("corosync-consensus", P, set_(HK + ("timing", "corosync", "consensus"), 1000),
        [("all.vars.hakit.timing.corosync",
          "consensus must be larger than token (corosync's rule; default 1.2 x token)", key("corosync"))]),
    Bad("corosync-token-range", P, set_(HK + ("timing", "corosync", "token"), 100),
        [("all.vars.hakit.timing.corosync.token", "must be greater than or equal to 200", key("token"))]),
    # fencing
    Bad("fencing-unknown-node", P, set_(HK + ("fencing", 0, "nodes"), ["nagios1", "ghost"]),
        [("all.vars.hakit.fencing[0].nodes[1]", "ghost is not a node of this inventory (nodes: nagios1, nagios2)",
          L(r"^\s*- ghost$"))]),
    Bad("fencing-not-every-node", P, delete(HK + ("fencing", 1)),
        [("all.vars.hakit.fencing", "the pacemaker stack needs a fencing device for every node "
          f"(none for: nagios2); {STONITH}", key("fencing"))]),
    Bad("fencing-none-pacemaker", P, delete(HK + ("fencing",)),
        [("all.vars.hakit.fencing", "the pacemaker stack needs a fencing device for every node "
          f"(none for: nagios1, nagios2); {STONITH}", key("hakit"))]),
    Bad("fencing-agent-with-heartbeat", H,
        set_(HK + ("fencing",), [{"name": "ipmi", "agent": "fence_ipmilan", "nodes": ["opsview1", "opsview2"]}]),
        [("all.vars.hakit.fencing[0].agent", "the heartbeat stack uses stonith plugins (e.g. 'external/ipmi'), "
          "not fence_* agents", key("agent"))]),
    Bad("heartbeat-drbd-without-fencing", H, delete(HK + ("fencing",)),
        [("all.vars.hakit.fencing", "heartbeat with drbd storage needs a stonith device for every node (none for: "
          "opsview1, opsview2): without fencing a node that looks dead may still write to the device when its peer "
          "takes it over", key("hakit"))]),
    Bad("heartbeat-drbd-fencing-one-node", H, delete(HK + ("fencing", 1)),
        [("all.vars.hakit.fencing", "heartbeat with drbd storage needs a stonith device for every node (none for: "
          "opsview2): without fencing a node that looks dead may still write to the device when its peer takes it "
          "over", key("fencing"))]),
    Bad("heartbeat-media-on-the-vip-interface", H, set_(HK + ("heartbeat", "media"), [{"interface": "eth0"}]),
        [("all.vars.hakit.heartbeat.media[0].interface", "eth0 already carries a path: a second path needs an "
          "interface of its own (not the VIPs' interface, not twice)", L(r"^\s*- interface: eth0$"))]),
    Bad("heartbeat-media-with-pacemaker", P, set_(HK + ("heartbeat",), {"media": [{"interface": "eth1"}]}),
        [("all.vars.hakit.heartbeat.media[0].interface", "heartbeat.media is for the heartbeat stack (corosync's "
          "links are not rendered from it)", L(r"^\s*- interface: eth1$"))]),
    Bad("fencing-secret-in-params", P, set_(HK + ("fencing", 0, "params", "password"), "hunter2"),
        [("all.vars.hakit.fencing[0].params",
          "password is listed in secret_params; keep its value in the secrets file, not in the inventory",
          L(r"^\s+params:", nth=0))]),
    Bad("fencing-device-twice", P, set_(HK + ("fencing", 1, "name"), "ipmi-nagios1"),
        [("all.vars.hakit.fencing[1].name", "fencing device ipmi-nagios1 is declared twice",
          L(r"name: ipmi-nagios1", nth=1))]),
    Bad("fencing-no-nodes", P, set_(HK + ("fencing", 0, "nodes"), []),
        [("all.vars.hakit.fencing[0].nodes", "must have at least 1 item after validation, not 0",
          L(r"^\s+nodes: \[\]"))]),
    Bad("fencing-agent-name", P, set_(HK + ("fencing", 0, "agent"), "ipmi tool"),
        [("all.vars.hakit.fencing[0].agent", FENCE_AGENT_RULE, L("agent: ipmi tool"))]),
    # MySQL
    Bad("bulk-not-in-databases", P, set_(HK + ("mysql", "bulk_databases"), ["odw", "history"]),
        [("all.vars.hakit.mysql", "bulk_databases must be listed in databases too (not listed: history)",
          key("mysql"))]),
    Bad("reserved-database", P, set_(HK + ("mysql", "databases"), ["opsview", "mysql", "odw"]),
        [("all.vars.hakit.mysql", "databases must not name system or hakit schemas (mysql)", key("mysql"))]),
    Bad("reserved-hakit-schema", P, set_(HK + ("mysql", "databases"), ["opsview", "hakit", "odw", "sys"]),
        [("all.vars.hakit.mysql", "databases must not name system or hakit schemas (hakit, sys)", key("mysql"))]),
    Bad("database-twice", P, set_(HK + ("mysql", "databases"), ["opsview", "odw", "opsview"]),
        [("all.vars.hakit.mysql", "databases lists a name twice", key("mysql"))]),
    Bad("tls-without-files", P, set_(HK + ("mysql", "tls"), {"enabled": True, "ca": "/etc/mysql/ca.pem"}),
        [("all.vars.hakit.mysql.tls", "tls.enabled needs ca, cert and key", key("tls"))]),
    # ping nodes, sync, thresholds
    Bad("ping-node-is-node", P, set_(HK + ("ping_nodes",), ["198.51.100.1", "198.51.100.22"]),
        [("all.vars.hakit.ping_nodes[1]", "a ping node must be a third machine (a router, a switch), "
          "not a node or a VIP of the cluster", L(r"^\s*- 198.51.100.22$"))]),
    Bad("ping-node-is-vip", P, set_(HK + ("ping_nodes",), ["198.51.100.20"]),
        [("all.vars.hakit.ping_nodes[0]", "a ping node must be a third machine (a router, a switch), "
          "not a node or a VIP of the cluster", L(r"^\s*- 198.51.100.20$"))]),
    Bad("sync-path-twice", H, set_(HK + ("sync",), [{"path": "/etc/nagios4/objects"}, {"path": "/srv/x"},
                                                    {"path": "/etc/nagios4/objects"}]),
        [("all.vars.hakit.sync[2].path", "/etc/nagios4/objects is listed twice",
          L(r"path: /etc/nagios4/objects$", nth=1))]),
    Bad("sync-path-dotdot", P, set_(HK + ("sync", 0, "path"), "/etc/../root"),
        [("all.vars.hakit.sync[0].path", "must be a normalised absolute path (no '..' or '//')",
          L(r"path: /etc/\.\./root"))]),
    Bad("sync-path-relative", P, set_(HK + ("sync", 0, "path"), "etc/nagios4"),
        [("all.vars.hakit.sync[0].path", PATH_RULE, L(r"path: etc/nagios4"))]),
    Bad("lag-thresholds", P, set_(HK + ("failover", "lag_warning_seconds"), 120),
        [("all.vars.hakit.failover", "lag_critical_seconds must be at least lag_warning_seconds", key("failover"))]),
    # the quorum device (issue 27)
    Bad("quorum-device-on-heartbeat", H, set_(HK + ("quorum_device",), {"host": "192.0.2.50"}),
        [("all.vars.hakit.quorum_device", "a quorum device is corosync's (the pacemaker stack): heartbeat has none "
          "(docs/automatic.md says what hakit offers there)", key("quorum_device"))]),
    Bad("quorum-device-is-node", P, set_(HK + ("quorum_device",), {"host": "198.51.100.21"}),
        [("all.vars.hakit.quorum_device.host", "the witness must be a host outside the cluster, not a node or a "
          "VIP of it: its vote is what a split lacks", L(r"^\s*host: 198.51.100.21$"))]),
    Bad("quorum-heuristics-is-vip", P, set_(HK + ("quorum_device",), {"host": "192.0.2.50",
                                                                      "heuristics": ["198.51.100.20"]}),
        [("all.vars.hakit.quorum_device.heuristics[0]", "a heuristics address must be a third machine (a router), "
          "not a node or a VIP of the cluster", L(r"^\s*- 198.51.100.20$"))]),
    Bad("hook-empty-command", P, set_(HK + ("hooks", "pre_takeover"), [[]]),
        [("all.vars.hakit.hooks.pre_takeover[0]", "must have at least 1 item after validation, not 0",
          L(r"^\s*- \[\]$"))]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule(case: Bad, example_data, write_inventory) -> None:
    data = example_data(case.base)
    case.mutate(data)
    path = write_inventory(data)
    text = path.read_text(encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_inventory(path)
    expected = [(str(path), line.find(text) if line else None, fld, msg) for fld, msg, line in case.expect]
    got = [(p.file, p.line, p.field, p.message) for p in info.value.problems]
    assert got == expected
    assert str(info.value) == "\n".join(f"{f}:{ln}: {fld}: {msg}" for f, ln, fld, msg in expected)
    assert info.value.exit_code == 2


def test_the_cases_cover_distinct_rules() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(c.expect for c in CASES)


# --------------------------------------------------------------------------- values that break out of a line

PAYLOADS = {
    "newline": "a\nb",
    "double-quote": 'a"b',
    "single-quote": "a'b",
    "brace": "a{b}",
    "semicolon": "a;b",
    "subshell": "$(reboot)",
    "backtick": "`reboot`",
    "space": "a b",
    "long": "a" * 300,
}


@dataclass(frozen=True)
class Family:
    """One string field, how a payload is put into it, and the rule it must be refused with."""

    id: str
    base: str
    put: Callable[[str], Callable[[Any], None]]
    field: Callable[[str], str]
    rule: str
    line: L
    prefix: str = ""  # e.g. '/' for paths, so that only the payload breaks the rule


FAMILIES = [
    Family("cluster-name", P, lambda v: set_(HK + ("cluster_name",), v), lambda v: "all.vars.hakit.cluster_name",
           NAME_RULE, key("cluster_name")),
    Family("master-host-name", P, lambda v: set_(HK + ("monitoring", "master_host_name"), v),
           lambda v: "all.vars.hakit.monitoring.master_host_name", NAME_RULE, key("master_host_name")),
    Family("fence-device-name", P, lambda v: set_(HK + ("fencing", 0, "name"), v),
           lambda v: "all.vars.hakit.fencing[0].name", NAME_RULE, L(r"^\s*- name:", nth=0)),
    Family("drbd-resource", H, lambda v: set_(HK + ("drbd", "resource"), v),
           lambda v: "all.vars.hakit.drbd.resource", NAME_RULE, key("resource")),
    Family("host-name", P, lambda v: rename(HOSTS + ("nagios1",), v),
           lambda v: f"all.children.hakit_nodes.hosts.{v}", NAME_RULE, L(r"^\s+hosts:$", 1)),
    Family("replication-user", P, lambda v: set_(HK + ("mysql", "replication_user"), v),
           lambda v: "all.vars.hakit.mysql.replication_user", IDENT_RULE, key("replication_user")),
    Family("database-name", P, lambda v: set_(HK + ("mysql", "databases", 0), v),
           lambda v: "all.vars.hakit.mysql.databases[0]", IDENT_RULE, L(r"^\s+databases:$", 1)),
    Family("monitoring-user", P, lambda v: set_(HK + ("monitoring", "user"), v),
           lambda v: "all.vars.hakit.monitoring.user", IDENT_RULE, key("user")),
    Family("fence-param-name", P, lambda v: rename(HK + ("fencing", 0, "params", "ip"), v),
           lambda v: f"all.vars.hakit.fencing[0].params.{v}", IDENT_RULE, L(r"^\s+params:$", 1, nth=0)),
    Family("datadir", P, lambda v: set_(HK + ("mysql", "datadir"), v), lambda v: "all.vars.hakit.mysql.datadir",
           PATH_RULE, key("datadir"), "/"),
    Family("monitoring-config", P, lambda v: set_(HK + ("monitoring", "config"), v),
           lambda v: "all.vars.hakit.monitoring.config", PATH_RULE, key("config"), "/"),
    Family("sync-path", P, lambda v: set_(HK + ("sync", 0, "path"), v), lambda v: "all.vars.hakit.sync[0].path",
           PATH_RULE, L(r"^\s*- path:"), "/"),
    Family("drbd-disk", H, lambda v: set_(HK + ("drbd", "disk"), v), lambda v: "all.vars.hakit.drbd.disk",
           PATH_RULE, key("disk"), "/"),
    Family("host-drbd-disk", H, lambda v: set_(HOSTS + ("opsview1", "hakit_drbd_disk"), v),
           lambda v: "all.children.hakit_nodes.hosts.opsview1.hakit_drbd_disk", PATH_RULE, key("hakit_drbd_disk"),
           "/"),
    Family("tls-ca", P, lambda v: set_(HK + ("mysql", "tls", "ca"), v), lambda v: "all.vars.hakit.mysql.tls.ca",
           PATH_RULE, key("ca"), "/"),
    Family("vip-interface", P, lambda v: set_(HK + ("vips", "main", "interface"), v),
           lambda v: "all.vars.hakit.vips.main.interface", INTERFACE_RULE, key("interface")),
    Family("fence-param-value", P, lambda v: set_(HK + ("fencing", 0, "params", "ip"), v),
           lambda v: "all.vars.hakit.fencing[0].params.ip", SAFE_RULE, L(r"^\s+ip:", nth=0)),
    Family("sync-exclude", P, lambda v: set_(HK + ("sync", 0, "exclude"), [v]),
           lambda v: "all.vars.hakit.sync[0].exclude[0]", EXCLUDE_RULE, key("exclude"), ""),
    Family("secrets-file", P, lambda v: set_(HK + ("secrets_file",), v), lambda v: "all.vars.hakit.secrets_file",
           SECRETS_FILE_RULE, key("secrets_file")),
    Family("known-hosts", P, lambda v: set_(HK + ("ssh",), {"known_hosts": v}), lambda v: "all.vars.hakit.ssh",
           SSH_RULE, key("ssh")),
    Family("ssh-private-key-file", P, lambda v: set_(HOSTS + ("nagios1", "ansible_ssh_private_key_file"), v),
           lambda v: "all.children.hakit_nodes.hosts.nagios1.ansible_ssh_private_key_file",
           "must be a path of letters, digits and '._+@/~-'", key("ansible_ssh_private_key_file"), "/"),
    Family("ansible-user", P, lambda v: set_(HOSTS + ("nagios1", "ansible_user"), v),
           lambda v: "all.children.hakit_nodes.hosts.nagios1.ansible_user", USER_RULE, key("ansible_user")),
]


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
@pytest.mark.parametrize("family", FAMILIES, ids=[f.id for f in FAMILIES])
def test_config_breaking_value_is_refused(family: Family, payload: str, example_data, write_inventory) -> None:
    value = family.prefix + payload
    data = example_data(family.base)
    family.put(value)(data)
    path = write_inventory(data)
    text = path.read_text(encoding="utf-8")
    line = family.line.find(text)
    if family.id == "sync-exclude":
        line += 1  # the first item of the exclude list, on the line after its key
    with pytest.raises(InputError) as info:
        load_inventory(path)
    got = [(p.file, p.line, p.field, p.message) for p in info.value.problems]
    rule = family.rule
    if family.id == "fence-param-value" and payload == "a;b":
        rule = "must not contain ';': only pcmk_host_map may (it separates its mappings)"
    assert got == [(str(path), line, family.field(value), rule)]


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "x" * 1025], ids=["newline", "cr", "nul", "long"])
def test_hook_argument_must_be_one_line(value: str, example_data, write_inventory) -> None:
    data = example_data(P)
    data["all"]["vars"]["hakit"]["hooks"]["pre_takeover"] = [["/usr/local/bin/notify", value]]
    path = write_inventory(data)
    line = L(r"^\s+pre_takeover:$", 1).find(path.read_text(encoding="utf-8")) + 1
    with pytest.raises(InputError) as info:
        load_inventory(path)
    got = [(p.file, p.line, p.field, p.message) for p in info.value.problems]
    assert got == [(str(path), line, "all.vars.hakit.hooks.pre_takeover[0][1]", HOOK_RULE)]


def test_hook_arguments_keep_shell_characters_verbatim(example_data, write_inventory) -> None:
    """Hooks are argument lists run without a shell: quotes, ';' and '$(' are plain characters."""
    argv = ["/usr/local/bin/notify", "it's \"down\"; $(not run) `nor this` {}", "ünïcode"]
    data = example_data(P)
    data["all"]["vars"]["hakit"]["hooks"]["post_takeover"] = [argv]
    inv = load_inventory(write_inventory(data))
    assert inv.settings.hooks.post_takeover == [argv]


# --------------------------------------------------------------------------- the file itself


def test_duplicate_key(write_inventory, examples_dir: Path) -> None:
    text = (examples_dir / f"{P}.yml").read_text(encoding="utf-8")
    text = text.replace("      stack: pacemaker\n", "      stack: pacemaker\n      cluster_name: other\n", 1)
    path = write_inventory(text)
    with pytest.raises(InputError) as info:
        load_inventory(path)
    assert info.value.problems == [Problem(str(path), "all.vars.hakit.cluster_name", "this key appears twice; keep one",
                                           L(r"cluster_name: other").find(text))]


@pytest.mark.parametrize("text, line, problem", [
    ("all:\n  vars:\n    hakit: {cluster_name: x\n", 4, "expected ',' or '}', but got '<stream end>'"),
    ("all:\n\tvars: 1\n", 2, "found character '\\t' that cannot start any token"),
    ("all:\n  vars: *anchor\n", 2, "found undefined alias 'anchor'"),
    ("all: vars: 1\n", 1, "mapping values are not allowed here"),
    ("all: !!python/object/apply:os.system [true]\n", 1,
     "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
], ids=["unclosed-flow", "tab", "undefined-alias", "mapping-in-scalar", "python-tag"])
def test_invalid_yaml_names_the_line(text: str, line: int, problem: str, write_inventory) -> None:
    path = write_inventory(text)
    with pytest.raises(InputError) as info:
        load_inventory(path)
    assert info.value.problems == [Problem(str(path), "", f"not valid YAML: {problem}", line)]
    assert str(info.value) == f"{path}:{line}: not valid YAML: {problem}"


@pytest.mark.parametrize("char", ["\x1f", "\x07", "\ufffe"])
def test_control_character(char: str, write_inventory) -> None:
    path = write_inventory(f"all:\n  vars:\n    hakit: {{cluster_name: a{char}b}}\n")
    with pytest.raises(InputError) as info:
        load_inventory(path)
    assert info.value.problems == [Problem(str(path), "", f"not valid YAML: the character U+{ord(char):04X} is not "
                                           f"allowed (control characters must not appear in the file)", 3)]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    text = "all:\n  vars: {hakit: {cluster_name: caf\u00e9}}\n"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError) as info:
        load_inventory(path)
    offset = text.index("\u00e9")
    assert str(info.value) == f"{path}: inventory is not UTF-8 text (bad byte at offset {offset})"


def test_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "nope.yml"
    with pytest.raises(InputError) as info:
        load_inventory(path)
    assert str(info.value) == f"{path}: inventory not found"
    assert info.value.problems == [Problem(str(path), "", "inventory not found", None)]


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_inventory(tmp_path)
    assert str(info.value) == f"{tmp_path}: inventory is a folder, not a file"


NOT_INVENTORY = "must be an Ansible inventory: a mapping with the group 'all' at the top"


@pytest.mark.parametrize("text, fld, line, message", [
    ("", "", None, NOT_INVENTORY),
    ("# only a comment\n", "", None, NOT_INVENTORY),
    ("- all\n- vars\n", "", None, NOT_INVENTORY),
    ("just text\n", "", None, NOT_INVENTORY),
    ("hosts:\n  a: {}\n", "", None, NOT_INVENTORY),
    ("all: [a, b]\n", "", None, NOT_INVENTORY),
    ("all:\n  hosts: {}\n", "all.vars", 1, "must hold the hakit settings under the variable 'hakit'"),
    ("all:\n  vars:\n    other: 1\n", "all.vars", 2, "must hold the hakit settings under the variable 'hakit'"),
    ("all:\n  vars: [hakit]\n", "all.vars", 2, "must hold the hakit settings under the variable 'hakit'"),
    ("all:\n  vars:\n    hakit: null\n", "all.vars.hakit", 3, "must be a mapping of keys to values"),
], ids=["empty", "comment", "list", "scalar", "no-all", "all-list", "no-vars", "no-hakit", "vars-list",
        "hakit-null"])
def test_not_an_inventory(text: str, fld: str, line: int | None, message: str, write_inventory) -> None:
    path = write_inventory(text)
    with pytest.raises(InputError) as info:
        load_inventory(path)
    assert info.value.problems == [Problem(str(path), fld, message, line)]


def test_every_problem_is_reported_at_once(example_data, write_inventory) -> None:
    data = example_data(P)
    data["all"]["vars"]["hakit"]["mysql"]["port"] = 0
    data["all"]["vars"]["hakit"]["cluster_name"] = "Bad Name"
    path = write_inventory(data)
    with pytest.raises(InputError) as info:
        load_inventory(path)
    assert [p.field for p in info.value.problems] == ["all.vars.hakit.cluster_name", "all.vars.hakit.mysql.port"]


# --------------------------------------------------------------------------- good inventories


def _id(name: str) -> int:
    from hakit.inventory.loader import name_server_id

    return name_server_id(name)


EXPECTED_PAIRS = {
    H: [("main", {"db", "app"}, [("opsview1", "198.51.100.11", _id("opsview1"), 1, 100),
                                 ("opsview2", "198.51.100.12", _id("opsview2"), 2, 50)],
         ("198.51.100.10", 24, "eth0"))],
    P: [("main", {"db", "app"}, [("nagios1", "198.51.100.21", _id("nagios1"), 1, 100),
                                 ("nagios2", "198.51.100.22", _id("nagios2"), 2, 50)],
         ("198.51.100.20", 24, "eth0"))],
    F: [("db", {"db"}, [("db1", "198.51.100.31", _id("db1"), 1, 100), ("db2", "198.51.100.32", _id("db2"), 2, 50)],
         ("198.51.100.30", 24, "eth0")),
        ("app", {"app"}, [("app1", "198.51.100.41", _id("app1"), 1, 100),
                          ("app2", "198.51.100.42", _id("app2"), 2, 50)],
         ("198.51.100.40", 24, "eth0"))],
}


@pytest.mark.parametrize("name", [H, P, F])
def test_examples_load(name: str, examples_dir: Path) -> None:
    path = examples_dir / f"{name}.yml"
    inv = load_inventory(path)
    got = [(pair.name, set(pair.roles),
            [(n.name, n.address, n.server_id, n.offset, n.priority) for n in pair.nodes],
            (pair.vip.address, pair.vip.netmask, pair.vip.interface)) for pair in inv.pairs]
    assert got == EXPECTED_PAIRS[name]
    assert inv.path == str(path)
    assert inv.base_dir == str(examples_dir.resolve())
    assert inv.settings.secrets_file == f"{name}.secrets.yml"


def test_example_settings_are_read_not_defaulted(example_inventory) -> None:
    heartbeat = example_inventory(H).settings
    assert (heartbeat.stack, heartbeat.storage.databases, heartbeat.storage.files) == ("heartbeat", "replication",
                                                                                      "drbd")
    assert heartbeat.mysql.replication_user == "repl"
    assert heartbeat.mysql.bulk_databases == ["odw"]
    assert heartbeat.drbd is not None and heartbeat.drbd.mount == "/srv/hakit"
    assert [(s.path, s.exclude) for s in heartbeat.sync] == [("/etc/nagios4/objects", []),
                                                             ("/usr/lib/nagios/plugins", ["*.orig"])]
    pacemaker = example_inventory(P).settings
    assert [(d.name, d.agent, d.nodes, d.secret_params) for d in pacemaker.fencing] == [
        ("ipmi-nagios1", "fence_ipmilan", ["nagios1"], ["password"]),
        ("ipmi-nagios2", "fence_ipmilan", ["nagios2"], ["password"])]
    assert pacemaker.mysql.semi_sync.enabled is True
    assert pacemaker.timing.corosync.effective_consensus == 1200
    assert pacemaker.hooks.pre_takeover == [["/usr/local/bin/notify-oncall", "takeover"]]


def test_four_node_pairs(example_inventory) -> None:
    inv = example_inventory(F)
    assert inv.db_pair.name == "db" and inv.db_pair.carries_db and not inv.db_pair.carries_app
    assert inv.app_pair.name == "app" and inv.app_pair.carries_app and not inv.app_pair.carries_db
    assert inv.db_pair.peer_of("db1").name == "db2"
    assert inv.app_pair.peer_of("app2").name == "app1"
    assert inv.pair_of("app1") is inv.app_pair
    assert [n.name for n in inv.nodes] == ["db1", "db2", "app1", "app2"]
    with pytest.raises(KeyError):
        inv.db_pair.peer_of("app1")
    with pytest.raises(KeyError):
        inv.node("ghost")


def test_two_node_pair_carries_both_roles(example_inventory) -> None:
    inv = example_inventory(P)
    assert inv.db_pair is inv.app_pair


def test_ansible_and_foreign_host_vars_pass_through(example_data, write_inventory) -> None:
    data = example_data(P)
    hosts = data["all"]["children"]["hakit_nodes"]["hosts"]
    hosts["nagios1"].update(ansible_port=2222, ansible_user="deploy", ansible_become=True,
                            ansible_ssh_private_key_file="/home/deploy/.ssh/id_ed25519",
                            ansible_python_interpreter="/usr/bin/python3", nagios_role="master",
                            site={"rack": "b4"}, hakit_server_id=11, hakit_drbd_disk="/dev/sdb")
    data["all"]["children"]["collectors"] = {"hosts": {"collector1": {"ansible_host": "10.9.9.9"}}}
    data["all"]["vars"]["ntp_server"] = "pool.ntp.org"
    inv = load_inventory(write_inventory(data))
    node = inv.node("nagios1")
    assert (node.ssh_port, node.ssh_user, node.ssh_key, node.server_id, node.drbd_disk) == (
        2222, "deploy", "/home/deploy/.ssh/id_ed25519", 11, "/dev/sdb")
    assert [n.name for n in inv.nodes] == ["nagios1", "nagios2"]


def test_automatic_server_ids_follow_the_names_not_the_order_of_the_hosts(example_data, write_inventory) -> None:
    """Issue 22 (3): ids that followed the order of the hosts swapped when the hosts were
    reordered; an id from the name stays, and one set by hand is kept as it is."""
    data = example_data(F)
    data["all"]["children"]["hakit_db"]["hosts"]["db2"]["hakit_server_id"] = 3
    inv = load_inventory(write_inventory(data))
    ids = {n.name: n.server_id for n in inv.nodes}
    assert ids["db2"] == 3 and ids["db1"] == _id("db1") and ids["app1"] == _id("app1")
    assert len(set(ids.values())) == 4 and all(i > 1000 for n, i in ids.items() if n != "db2")
    hosts = data["all"]["children"]["hakit_db"]["hosts"]
    data["all"]["children"]["hakit_db"]["hosts"] = dict(reversed(list(hosts.items())))
    reordered = load_inventory(write_inventory(data))
    assert [n.name for n in reordered.db_pair.nodes] == ["db2", "db1"]
    assert {n.name: n.server_id for n in reordered.nodes} == ids


def test_vip_on_a_31_prefix_may_be_either_address(example_data, write_inventory) -> None:
    data = example_data(P)
    data["all"]["vars"]["hakit"]["vips"]["main"] = {"address": "198.51.100.20", "netmask": 24}
    hosts = data["all"]["children"]["hakit_nodes"]["hosts"]
    hosts["nagios1"]["ansible_host"] = "198.51.100.21"
    inv = load_inventory(write_inventory(data))
    assert inv.pairs[0].vip.network.prefixlen == 24


def test_the_model_is_immutable(examples_dir: Path) -> None:
    inv = load_inventory(examples_dir / f"{P}.yml")
    with pytest.raises(ValidationError):
        inv.settings.cluster_name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        inv.nodes[0].address = "10.0.0.1"  # type: ignore[misc]


def test_parse_inventory_is_pure(examples_dir: Path, tmp_path: Path) -> None:
    text = (examples_dir / f"{P}.yml").read_text(encoding="utf-8")
    before = sorted(tmp_path.iterdir())
    inv = parse_inventory(text, "memory.yml", base_dir=str(tmp_path))
    assert (inv.path, inv.base_dir) == ("memory.yml", str(tmp_path))
    assert sorted(tmp_path.iterdir()) == before
    with pytest.raises(InputError) as info:
        parse_inventory(text.replace("topology: two-node", "topology: 2"), "memory.yml")
    assert str(info.value).startswith("memory.yml:")


# --------------------------------------------------------------------------- also an Ansible inventory


def _ansible_inventory(path: Path):
    try:
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
    except ImportError:
        pytest.skip("ansible-core is not installed in this environment (pip install 'ansible-core>=2.15'); "
                    "the Ansible side of the inventory cannot be checked here")
    return InventoryManager(loader=DataLoader(), sources=[str(path)])


def _plain(value: Any) -> Any:
    """Ansible wraps values in its own str/dict subclasses; compare them as plain data."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


@pytest.mark.parametrize("name", [H, P, F])
def test_examples_are_ansible_inventories(name: str, examples_dir: Path, example_data) -> None:
    path = examples_dir / f"{name}.yml"
    manager = _ansible_inventory(path)
    inv = load_inventory(path)
    for pair in inv.pairs:
        group = {"main": "hakit_nodes", "db": "hakit_db", "app": "hakit_app"}[pair.name]
        assert sorted(h.name for h in manager.groups[group].get_hosts()) == sorted(pair.node_names)
    for node in inv.nodes:
        host = manager.get_host(node.name)
        assert host is not None, f"ansible does not see host {node.name}"
        assert str(host.get_vars()["ansible_host"]) == node.address
    hakit_var = _plain(manager.groups["all"].get_vars()["hakit"])
    assert hakit_var == example_data(name)["all"]["vars"]["hakit"]
    assert hakit_var["cluster_name"] == inv.settings.cluster_name


# --------------------------------------------------------------------------- docs/inventory.md stays true

DOCS = Path(__file__).resolve().parents[2] / "docs" / "inventory.md"
KINDS = {NAME_RULE: "name", IDENT_RULE: "identifier", PATH_RULE: "absolute path", INTERFACE_RULE: "interface",
         SAFE_RULE: "safe value", EXCLUDE_RULE: "file pattern", HOOK_RULE: "one line", SECRETS_FILE_RULE: "path",
         USER_RULE: "user name", "must be a path of letters, digits and '._+@/~-'": "key path",
         FENCE_AGENT_RULE: "fence agent"}


def key_table(model: Any, prefix: str = "") -> list[str]:
    """The rows of the key table of docs/inventory.md, made from the model itself."""
    import json
    import types
    import typing

    from annotated_types import Ge, Gt, Le, MinLen
    from pydantic import BaseModel
    from pydantic.fields import FieldInfo
    from pydantic_core import PydanticUndefined

    def rules(meta: Any) -> list[str]:
        out: list[str] = []
        for m in meta:
            if isinstance(m, Ge):
                out.append(f"≥ {m.ge}")
            elif isinstance(m, Le):
                out.append(f"≤ {m.le}")
            elif isinstance(m, Gt):
                out.append(f"> {m.gt}")
            elif isinstance(m, MinLen):
                out.append(f"at least {m.min_length}")
            elif isinstance(m, FieldInfo):
                out += rules(m.metadata)
            elif hasattr(m, "func"):
                texts = [c.cell_contents for c in (m.func.__closure__ or []) if isinstance(c.cell_contents, str)]
                if texts:
                    out.append(KINDS.get(texts[0], texts[0]))
                elif m.func.__name__ == "_ipv4":
                    out.append("IPv4")
        return out

    def inner(ann: Any) -> list[str]:
        origin, args = typing.get_origin(ann), typing.get_args(ann)
        if origin is typing.Annotated:
            return rules(args[1:]) + inner(args[0])
        return [r for a in args for r in inner(a)] if origin in (list, dict, typing.Union, types.UnionType) else []

    def type_name(ann: Any) -> str:
        origin, args = typing.get_origin(ann), typing.get_args(ann)
        if origin is typing.Annotated:
            return type_name(args[0])
        if origin is typing.Literal:
            return " \\| ".join(f"`{a}`" for a in args)
        if origin in (typing.Union, types.UnionType):
            return " or ".join(type_name(a) for a in args)
        if origin is list:
            return f"list of {type_name(args[0])}"
        if origin is dict:
            return f"mapping {type_name(args[0])} → {type_name(args[1])}"
        if ann is type(None):
            return "null"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            return "mapping"
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(ann.__name__, ann.__name__)

    def submodel(ann: Any) -> Any:
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            return ann
        return next((m for m in map(submodel, typing.get_args(ann)) if m is not None), None)

    rows = []
    for name, fld in model.model_fields.items():
        path = prefix + name
        if fld.is_required():
            default = "**required**"
        else:
            value = fld.default if fld.default is not PydanticUndefined else fld.default_factory()
            default = "(section)" if isinstance(value, BaseModel) else f"`{json.dumps(value)}`"
        rule = "; ".join(dict.fromkeys(rules(fld.metadata) + inner(fld.annotation)))
        rows.append(f"| `{path}` | {type_name(fld.annotation)} | {default} | {rule} |")
        sub = submodel(fld.annotation)
        if sub is not None:
            container = typing.get_origin(fld.annotation) or next(
                (typing.get_origin(a) for a in typing.get_args(fld.annotation) if typing.get_origin(a)), None)
            rows += key_table(sub, path + {dict: ".NAME.", list: "[]."}.get(container, "."))
    return rows


def _generated_block(name: str) -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    begin, end = f"<!-- generated:{name}:begin -->", f"<!-- generated:{name}:end -->"
    assert begin in text and end in text, f"docs/inventory.md lacks the {name} table markers"
    block = text.split(begin, 1)[1].split(end, 1)[0]
    return [line for line in block.strip().splitlines() if line.startswith("| `")]


def test_docs_list_every_settings_key() -> None:
    """docs/inventory.md's key tables are the model's (regenerate: python tests/unit/test_inventory.py)."""
    from hakit.inventory.model import HostVars, Settings

    assert _generated_block("settings") == key_table(Settings)
    assert _generated_block("hostvars") == key_table(HostVars)


if __name__ == "__main__":  # print the tables for docs/inventory.md
    from hakit.inventory.model import HostVars, Settings

    for title, model in (("settings", Settings), ("hostvars", HostVars)):
        print(f"<!-- generated:{title}:begin -->\n| key | type | default | rule |\n| --- | --- | --- | --- |")
        print("\n".join(key_table(model)))
        print(f"<!-- generated:{title}:end -->\n")
