"""Identical SSH keys on both nodes of a pair, so clients of the VIP never see a new key.

The seed runbook's distributed-monitoring advice: the monitoring user's private key must be
the same on both masters (forward SSH to slaves keeps working after a failover) and the SSH
host keys too (reverse-SSH slaves connect to the VIP with strict host-key checking). hakit
copies both from the pair's active to its standby, then records the pair's host keys for the
nodes' addresses *and* the VIP in its own known_hosts: a change hakit made itself, over
connections whose keys it had verified.
"""

from __future__ import annotations

import os
from pathlib import Path

from hakit.cluster.port import InitLoad
from hakit.cluster.stack import chosen_active
from hakit.files import atomic_write
from hakit.inventory.model import Inventory, Pair
from hakit.remote.port import Runner
from hakit.remote.services import service

KEY_FILE = "id_ed25519"
#: the inodes of the sockets listening on port $1 (sshd's), on one line
SSHD_SOCKETS = 'ss -Hltne "sport = :$1" 2>/dev/null | grep -o "ino:[0-9]*" | sort -u | tr "\\n" " "'
#: after a reload: until sockets listen on port $1 again, new ones (not $2, the sockets of before,
#: which may still be open when the signal has not been handled yet); at most 10 s, and at once
#: without ss (iproute2) or when nothing listened before (socket activation, another port)
SSHD_LISTENING_AGAIN = ('command -v ss >/dev/null || exit 0; [ -n "$2" ] || exit 0; i=0; '
                        f'while [ $i -lt 100 ]; do now=$({SSHD_SOCKETS}); '
                        '[ -n "$now" ] && [ "$now" != "$2" ] && exit 0; sleep 0.1; i=$((i+1)); done; exit 1')


def share_keys(run: InitLoad) -> None:
    ssh = run.inv.settings.ssh
    chosen = chosen_active(run)
    for pair in run.inv.pairs:
        active = chosen if pair.carries_db else pair.nodes[0].name
        standby = pair.peer_of(active).name
        src, dst = run.runners[active], run.runners[standby]
        if ssh.share_user_key:
            _user_key(run, src, dst, ssh.monitoring_user, active, standby)
        if ssh.share_host_keys:
            _host_keys(run, src, dst, active, standby, pair)


def _home(runner: Runner, user: str) -> tuple[str, str, str] | None:
    entry = runner.run(["getent", "passwd", user], warn=True).stdout.strip()
    if not entry:
        return None
    fields = entry.split(":")
    return fields[5], fields[2], fields[3]


def _user_key(run: InitLoad, src: Runner, dst: Runner, user: str, active: str, standby: str) -> None:
    home = _home(src, user)
    dst_home = _home(dst, user) if home is not None else None
    if home is None or dst_home is None:
        run.note(f"user {user} is missing on {active} or {standby}: no monitoring key to share")
        return
    folder = f"{home[0]}/.ssh"
    key = f"{folder}/{KEY_FILE}"
    if not src.run(["test", "-f", key], warn=True).ok:
        src.run(["install", "-d", "-m", "0700", "-o", user, "-g", home[2], folder])
        src.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{user}@{run.inv.settings.cluster_name}",
                 "-f", key])
        src.run(["chown", f"{user}:", key, key + ".pub"])
        run.did(f"{active}: SSH key made for {user}")
    private, public = src.get(key), src.get(key + ".pub")
    dst_key = f"{dst_home[0]}/.ssh/{KEY_FILE}"
    same = dst.run(["test", "-f", dst_key], warn=True).ok and dst.get(dst_key) == private \
        and dst.get(dst_key + ".pub") == public
    if same:
        run.note(f"{user}'s SSH key identical on {active} and {standby}")
        return
    dst.run(["install", "-d", "-m", "0700", "-o", user, "-g", dst_home[2], f"{dst_home[0]}/.ssh"])
    dst.put(dst_key, private, 0o600)
    dst.put(dst_key + ".pub", public, 0o644)
    dst.run(["chown", f"{user}:", dst_key, dst_key + ".pub"])
    run.did(f"{standby}: {user}'s SSH key copied from {active}")


def _host_keys(run: InitLoad, src: Runner, dst: Runner, active: str, standby: str, pair: Pair) -> None:
    names = sorted(n for n in src.run(["sh", "-c", "cd /etc/ssh && ls ssh_host_*_key ssh_host_*_key.pub"])
                   .stdout.split())
    changed = False
    for name in names:
        content = src.get(f"/etc/ssh/{name}")
        if dst.run(["test", "-f", f"/etc/ssh/{name}"], warn=True).ok and dst.get(f"/etc/ssh/{name}") == content:
            continue
        dst.put(f"/etc/ssh/{name}", content, 0o644 if name.endswith(".pub") else 0o600)
        changed = True
    publics = [src.get(f"/etc/ssh/{n}").decode().split()[:2] for n in names if n.endswith(".pub")]
    if changed:
        port = next(n.ssh_port for n in pair.nodes if n.name == standby)
        before = dst.run(["sh", "-c", SSHD_SOCKETS, "sshd-sockets", str(port)], warn=True).stdout.strip()
        service(dst, "ssh", "reload")
        # sshd re-executes itself on a reload and refuses connections until it listens again:
        # the next command (hakit status right after init) would find the node "down"
        dst.run(["sh", "-c", SSHD_LISTENING_AGAIN, "sshd-wait", str(port), before], warn=True, timeout=30)
        run.did(f"{standby}: SSH host keys copied from {active}")
    else:
        run.note(f"SSH host keys identical on {active} and {standby}")
    hosts = [n.address for n in pair.nodes] + [pair.vip.address]
    if _record_known_hosts(run, hosts, publics):
        run.did(f"known_hosts: {', '.join(hosts)} carry the pair's host keys")


def known_hosts_path(inv: Inventory) -> Path:
    path = Path(os.path.expanduser(inv.settings.ssh.known_hosts))
    return path if path.is_absolute() else Path(inv.base_dir) / path


def _record_known_hosts(run: InitLoad, hosts: list[str], publics: list[list[str]]) -> bool:
    """The admin machine's known_hosts names ``hosts`` with ``publics`` (the pair's host keys),
    their lines where they were: on four nodes each pair's run used to move its lines to the end,
    so every init found the file changed (the other pair's lines were last)."""
    return record_known_hosts(known_hosts_path(run.inv), hosts, publics)


def record_known_hosts(path: Path, hosts: list[str], publics: list[list[str]]) -> bool:
    """:func:`_record_known_hosts` on ``path``; whether the file changed."""
    old = path.read_text() if path.exists() else ""
    lines = old.splitlines()

    def ours(line: str) -> bool:
        return bool(line.strip()) and not line.startswith("#") and bool(set(line.split()[0].split(",")) & set(hosts))

    others = [line for line in lines if not ours(line)]
    at = next((i for i, line in enumerate(lines) if ours(line)), len(lines))
    before = sum(1 for line in lines[:at] if not ours(line))  # the other lines above the first of ours
    wanted = [f"{host} {kind} {key}" for host in hosts for kind, key in publics]
    new = "\n".join(others[:before] + wanted + others[before:]) + "\n"
    if new == old:
        return False
    atomic_write(path, new.encode(), 0o644)
    return True
