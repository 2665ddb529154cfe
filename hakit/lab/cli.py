"""``hakit lab``: build, break and remove the namespace lab (DESIGN.md "The namespace lab").

Thin: every command calls one function of :mod:`hakit.lab.lifecycle` or :mod:`hakit.lab.faults`.
User mistakes (not root, unknown node or fault, no lab) end in a one-line message and exit
code 2 or 3, never a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click

from hakit.lab.spec import DEFAULT_SUBNET, FAULT_KINDS

DIR_OPTION = click.option("--dir", "dir", default=".lab", show_default=True, metavar="DIR",
                          type=click.Path(file_okay=False),
                          help="The lab's folder: state, inventory, keys, node data.")


@click.group()
def lab() -> None:
    """The namespace lab: real nodes (sshd, MariaDB, the cluster stack, Nagios 4) on this machine.

    Needs root. One lab per machine. Every command takes --dir (default .lab).
    """


@lab.command()
@DIR_OPTION
@click.option("--topology", type=click.Choice(["two-node", "four-node"]), default="two-node", show_default=True)
@click.option("--stack", type=click.Choice(["pacemaker", "heartbeat"]), default="pacemaker", show_default=True)
@click.option("--subnet", default=DEFAULT_SUBNET, show_default=True,
              help="Private /24 for the lab; refused when it overlaps a route or address of this machine.")
@click.option("--timings", type=click.Choice(["hakit", "stack-defaults"]), default="hakit", show_default=True,
              help="Membership timings: hakit's defaults, or the stacks' own (corosync token 3000 ms; "
                   "heartbeat deadtime 30 s), for side-by-side benchmarks.")
@click.option("--tls", is_flag=True,
              help="MariaDB replication over TLS: a throwaway CA (openssl) in DIR/tls, each database node's "
                   "certificate (its address and the VIP) and key in its /etc/mysql/tls, mysql.tls in the inventory.")
@click.option("--data-disk", type=int, default=0, metavar="MB",
              help="Each node's /var/lib/mysql on a disk of its own of MB megabytes (a sparse ext4 image "
                   "in DIR/nodes/NODE/data.img, loop-mounted inside the node), so that the full-disk fault "
                   "fills the node's disk and not the host's. 0: none.")
@click.option("--storage", type=click.Choice(["replication", "shared", "drbd"]), default="replication",
              show_default=True,
              help="Where the monitoring master's folders live: each node's own, carried through the database "
                   "(replication), or one disk both nodes see (shared: a loop device over DIR/shared-disk.img, "
                   "formatted by hakit init and mounted on the active by the stack; two-node only), or DRBD "
                   "(the VM tier only: each guest's blank third disk, brought up by hakit init).")
@click.option("--vm", is_flag=True,
              help="The VM tier: each node a qemu guest (software emulation) with Debian's kernel of its own and "
                   "systemd as PID 1, on the same lab network and inventory (docs/lab.md, 'The VM tier'). "
                   "./scripts/setup-vm installs what it needs.")
@click.option("--witness", is_flag=True,
              help="A witness for corosync's quorum device (Pacemaker): a namespace of its own at .5 with sshd, "
                   "named in the inventory (quorum_device); hakit init sets corosync-qnetd up there, its "
                   "certificates and corosync-qdevice on the nodes (docs/lab.md).")
def up(dir: str, topology: str, stack: str, subnet: str, timings: str, tls: bool, data_disk: int,
       storage: str, vm: bool, witness: bool) -> None:
    """Build the lab (an earlier lab in DIR is removed first) and write DIR/inventory.yml."""
    from hakit.lab import lifecycle as impl

    report = impl.up(dir, topology, stack, subnet, say=click.echo, timings=timings, tls=tls, data_disk=data_disk,
                     storage=storage, vm=vm, witness=witness)
    spec = report.spec
    click.echo(f"lab up: {spec.topology}, {spec.stack}, subnet {spec.subnet} (host {spec.host_address} on "
               f"the bridge) in {report.seconds:.1f} s" + ("; each node a qemu guest with systemd" if spec.vm else ""))
    for node in spec.nodes:
        click.echo(f"  {node.name:<5} {node.address:<15} pair {node.pair}: sshd, MariaDB (read_only=ON), "
                   f"{'corosync+Pacemaker' if spec.stack == 'pacemaker' else 'heartbeat'}, Nagios 4 (stopped)")
    if spec.witness_node is not None:
        click.echo(f"  {spec.witness_node.name:<5} {spec.witness_node.address:<15} the quorum device's witness: "
                   f"sshd (hakit init sets corosync-qnetd up)")
    for pair, vip in spec.vips.items():
        click.echo(f"  VIP {pair}: {vip} (not started: no resources yet)")
    click.echo("  fencing: fence_hakitlab via the host helper, stonith-enabled=true" if spec.stack == "pacemaker"
               else "  fencing: stonith_host external/hakitlab (heartbeat's STONITH) via the host helper")
    if spec.data_disk:
        click.echo(f"  data disks: each node's /var/lib/mysql on {spec.data_disk} MB of its own "
                   f"(hakit lab fault full-disk NODE fills it)")
    if spec.storage == "shared":
        click.echo(f"  shared disk: {spec.shared_image} ({report.shared_device}), blank: hakit init formats it; "
                   f"the stack mounts it on the active only, at /srv/hakit")
    if spec.tls:
        click.echo(f"  TLS: MariaDB certificates from the lab CA {Path(spec.dir) / 'tls' / 'ca.pem'} "
                   f"(hakit init sets replication up over TLS)")
    for name, seconds in report.phases:
        click.echo(f"  {seconds:5.1f} s  {name}")
    click.echo(f"inventory: {report.inventory}")
    click.echo(f"try: hakit lab status --dir {dir}; hakit lab exec --dir {dir} {spec.nodes[0].name} -- crm_mon -1"
               if spec.stack == "pacemaker" else
               f"try: hakit lab status --dir {dir}; "
               f"hakit lab exec --dir {dir} {spec.nodes[0].name} -- cl_status hbstatus")


@lab.command()
@DIR_OPTION
@click.option("--keep-files", is_flag=True, help="Keep DIR (logs, node data) for a post-mortem.")
def down(dir: str, keep_files: bool) -> None:
    """Remove the lab: every node process, link, mount, host file and (unless --keep-files) DIR."""
    from hakit.lab import lifecycle as impl

    removed = impl.down(dir, keep_files=keep_files)
    if removed:
        click.echo(f"lab down: removed {len(removed)} things: {', '.join(removed)}")
    else:
        click.echo("lab down: nothing to remove")


@lab.command()
@DIR_OPTION
def status(dir: str) -> None:
    """Nodes, init PIDs, addresses, links and daemons (observed now)."""
    from hakit.lab import lifecycle as impl

    state = impl.lab_state(dir)
    rows = impl.status(dir)
    spec = state.spec
    built = f", built in {state.build_seconds:.1f} s" if state.build_seconds else ""
    click.echo(f"lab {spec.dir}: {spec.topology}, {spec.stack}, subnet {spec.subnet}{built}")
    for row in rows:
        power = f"on (init {row.init})" if row.alive else "OFF"
        parts = [f"{name} {'up ' + ','.join(map(str, pids)) if pids else 'down'}"
                 for name, pids in row.daemons.items()]
        click.echo(f"  {row.name:<5} {row.address:<15} {power:<18} link {row.link:<6} " + "; ".join(parts))
    helpers = impl.helper_pids(spec.dir)
    from hakit.lab.fence_install import AGENT_PATH, PLUGIN_PATH

    click.echo(f"  fence helper: {'up ' + ','.join(map(str, helpers)) if helpers else 'DOWN (fencing fails)'}"
               f", agent {'installed' if AGENT_PATH.exists() else 'MISSING'}"
               + (f", heartbeat plugin {'installed' if PLUGIN_PATH.exists() else 'MISSING'}"
                  if spec.stack == "heartbeat" else ""))


@lab.command()
@DIR_OPTION
@click.argument("kind", type=click.Choice(list(FAULT_KINDS)))
@click.argument("node")
def fault(dir: str, kind: str, node: str) -> None:
    """Inject a fault: kill-node, kill-mysqld, stop-stack, partition, hang, peer-partition,
    pair-split (four nodes: NODE's pair and the other lose each other), one-way, slow-link,
    long-write, full-disk (a lab built with --data-disk); undo one: start-stack, heal (every
    network fault, and the disk; a pair-split: heal each node of the pair), resume (hang),
    free-disk."""
    from hakit.lab import faults
    from hakit.lab import lifecycle as impl

    impl.require_root()
    click.echo(faults.inject(impl.lab_state(dir), kind, node))


@lab.command("restart-node")
@DIR_OPTION
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until it rejoined the cluster.")
@click.argument("node")
def restart_node(dir: str, wait: bool, node: str) -> None:
    """Start NODE again (killed first if running), data kept; daemons started."""
    from hakit.lab import lifecycle as impl

    state = impl.lab_state(dir)
    state.spec.node(node)
    init = impl.restart_node(dir, node, wait_cluster=wait)
    click.echo(f"{node}: restarted (init {init}); sshd, MariaDB and the cluster stack started"
               + ("; rejoined the cluster" if wait else ""))


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@DIR_OPTION
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(dir: str, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside NODE (e.g. hakit lab exec n1 -- crm_mon -1); exits with its code."""
    from hakit.errors import InputError
    from hakit.lab import lifecycle as impl
    from hakit.lab.node import enter, is_alive

    impl.require_root()
    state = impl.lab_state(dir)
    state.spec.node(node)
    init = state.init_of(node)
    if not is_alive(state.spec, node, init) or init is None:
        raise InputError(f"node {node} is not running (hakit lab restart-node {node} starts it)")
    env = dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME="/root")
    proc = subprocess.run(enter(init) + ["/usr/bin/env", "-C", "/root", *command], env=env)
    sys.stdout.flush()
    raise click.exceptions.Exit(proc.returncode)


@lab.command()
@DIR_OPTION
@click.option("--stack", type=click.Choice(["pacemaker", "heartbeat"]), default="pacemaker", show_default=True)
@click.option("--faults", "count", type=click.IntRange(1, 10000), default=10, show_default=True,
              help="How many faults to play.")
@click.option("--seed", type=int, default=1, show_default=True, help="The same seed plays the same campaign.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Where the JSON report goes (default: chaos-STACK-SEED.json here).")
@click.option("--plan", "plan_only", is_flag=True, help="Print the campaign the seed draws, and run nothing.")
@click.option("--kinds", default=None, metavar="KIND,...",
              help="Draw only these kinds of fault (default: all of them; see --help).")
@click.option("--resume", is_flag=True,
              help="Go on with the campaign whose report is --report (same stack, seed, kinds and storage; "
                   "without --kinds, the report's), from the fault after the last one it played, on a fresh lab; "
                   "the report accumulates.")
@click.option("--storage", type=click.Choice(["replication", "shared"]), default="replication", show_default=True,
              help="The lab's storage (hakit lab up --storage): shared puts the monitoring master's folders on a "
                   "disk both nodes see, and the sampler checks that it is never mounted on both.")
@click.option("--witness", is_flag=True,
              help="A quorum device's witness in the lab (hakit lab up --witness, Pacemaker): the campaign also "
                   "draws the witness's faults (witness-cut, witness-one-way, witness-and-node, witness-and-split).")
@click.option("--topology", type=click.Choice(["two-node", "four-node"]), default="two-node", show_default=True,
              help="four-node (Pacemaker, with --witness): the database pair is struck as on two nodes, and the "
                   "application pair too (kill-app-active, kill-app-pair, app-pair-cut, pair-split).")
def chaos(dir: str, stack: str, count: int, seed: int, report_path: str | None, plan_only: bool,
          kinds: str | None, resume: bool, storage: str, witness: bool, topology: str) -> None:
    """A seeded fault campaign on a fresh lab in DIR, audited all along; exit 1 on any violation.

    Faults: kill-node, kill-mysqld, partition (healed), stop-stack, switchover or resync killed
    in the middle and run again; hang (SIGSTOP of the active's database), peer-partition and
    one-way (the nodes lose each other, both still reach the ping node), long-write-stop (a
    clean stack stop under a long write statement), kill-mysqld-standby, slow-link,
    interrupt-takeover (the active's database killed, hakit takeover racing the stack, killed
    and run again), full-disk (the active's data disk full for 10-40 s, on a lab whose nodes
    have disks of their own), resync-active-dies (the double fault: the active powered off
    during a resync of the standby, which must then stay read-only). With --witness: the
    witness cut off, its packets to the nodes dropped, and cut off while the active is powered
    off (the survivor, without quorum, must stay read-only until the witness is back) or while
    the nodes lose each other (neither side writable). With --topology four-node (and --witness):
    the monitoring master's node powered off, the application pair powered off, cut off, or split
    from the database pair (the database active must stay writable and take writes). Writers
    through the VIP from this machine and from inside each node.
    Checks: one writable node and the VIP on one node at every sample (a node that does not
    answer counts as writable), a node being resynced never writable, the generation, the VIP
    once settled, acknowledged writes, equal tables, no resource active twice, every operation
    converged, the monitoring state (a downtime made before each fault) kept; with --storage
    shared, the shared disk mounted on one node at every sample. The lab is removed afterwards.
    """
    import json as jsonmod

    from hakit.errors import InputError
    from hakit.lab import chaos as impl
    from hakit.lab import lifecycle as labimpl
    from hakit.lab.driver import initialised_lab

    path = Path(report_path or f"chaos-{stack}-{seed}.json")
    earlier: dict | None = None
    if resume:
        try:
            earlier = jsonmod.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise click.UsageError(f"--resume: cannot read the report {path}: {exc}") from None
    if kinds is not None:
        kinds_list = [k.strip() for k in kinds.split(",") if k.strip()]
    elif earlier is not None and isinstance(earlier.get("kinds"), list):
        # the campaign resumed draws as it drew (a kind added since: not)
        kinds_list = [str(k) for k in earlier["kinds"]]
    else:
        kinds_list = (list(impl.KINDS) + (list(impl.WITNESS_KINDS) if witness else [])
                      + (list(impl.FOUR_NODE_KINDS) if topology == "four-node" else []))
    if witness and stack != "pacemaker":
        raise click.UsageError("--witness: a quorum device is corosync's (--stack pacemaker); heartbeat has none")
    if topology == "four-node" and (stack != "pacemaker" or not witness or storage != "replication"):
        raise click.UsageError("--topology four-node: with --stack pacemaker, --witness and --storage replication "
                               "(without a witness, losing the application pair leaves the database pair two votes "
                               "of four: no quorum; docs/automatic.md)")
    if not witness and (needs := [k for k in kinds_list if k in impl.WITNESS_KINDS]):
        raise click.UsageError(f"--kinds {','.join(needs)}: the witness's faults need a lab with one (--witness)")
    if topology != "four-node" and (needs := [k for k in kinds_list if k in impl.FOUR_NODE_KINDS]):
        raise click.UsageError(f"--kinds {','.join(needs)}: the application pair's faults need four nodes "
                               f"(--topology four-node)")
    try:
        faults = impl.draw(seed, count, tuple(kinds_list))
    except InputError as exc:
        raise click.UsageError(str(exc)) from None
    if plan_only:
        for index, fault in enumerate(faults, 1):
            click.echo(f"{index:4}  {fault.kind:<21} {fault.target:<8} {fault.delay:g} s")
        return
    labimpl.require_root()
    start = 1
    if earlier is not None:
        try:
            start = impl.resume_point(earlier, stack=stack, seed=seed, kinds=kinds_list, count=count, storage=storage,
                                      witness=witness, topology=topology)
        except InputError as exc:
            raise click.UsageError(f"--resume: {exc}") from None
        if start > count:
            click.echo(f"chaos: the campaign in {path} played all {count} faults already")
            return
        click.echo(f"chaos: resuming {path} at fault {start} of {count}")
    # stopped by SIGTERM (a timeout, kill), the campaign still removes its lab on the way out
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    def save(report: dict) -> None:
        report.update(seed=seed, kinds=kinds_list)
        whole = impl.merge(earlier, report) if earlier is not None else report
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(jsonmod.dumps(whole, indent=2) + "\n")
        tmp.replace(path)  # a run killed while it writes leaves the last whole report

    # a campaign that fills a disk gets nodes with disks of their own (never the host's filled)
    disks = impl.DATA_DISK_MB if any(f.kind == "full-disk" for f in faults) else 0
    with initialised_lab(Path(dir), stack, data_disk=disks, storage=storage, witness=witness,
                         topology=topology) as driver:
        campaign = impl.Campaign(driver.dir, faults, say=click.echo)
        report = campaign.run(after_step=save, start=start)  # the report is kept up to date, step by step
        if not report["ok"]:  # before the lab goes: what explains the failure
            kept = impl.keep_logs(driver.dir, path.with_name(path.stem + "-logs"))
            click.echo(f"chaos: the nodes' logs are kept in {kept}")
    save(report)
    report = jsonmod.loads(path.read_text())
    click.echo(f"chaos: {report['played']}/{report['faults']} faults played on {stack}, seed {seed}; "
               f"{sum(report['checks'].values())} checks, {len(report['violations'])} violations"
               + (f", stopped by an error at step {report['errors'][0]}" if report["errors"] else "")
               + f"; report: {path}")
    for line in report["violations"][:20]:
        click.echo(f"  VIOLATION {line}", err=True)
    if not report["ok"]:
        raise click.exceptions.Exit(1)
