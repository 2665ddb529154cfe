"""``hakit agent``: the entry points the cluster stacks call on a node."""

from __future__ import annotations

import os
import time

import click

from hakit.agents import ocf
from hakit.agents.registry import NAMES, agent, heartbeat_status


@click.group(name="agent")
def agent_group() -> None:
    """Resource agents (called by Pacemaker or heartbeat on the node, not by people)."""


def _lean_monitoring_stop() -> int | None:
    """The monitoring master's stop from what its start recorded, without loading the inventory
    (it is the first action of every move of the group); None when there is no record."""
    from hakit.agents.processes import recorded_monitoring, stop_monitoring, stop_shipper

    recorded = recorded_monitoring()
    if recorded is None:
        return None
    daemon, service = recorded
    stopped = stop_monitoring(daemon, service)
    stop_shipper()  # after the daemon: it ships the file Nagios saved as it exited
    if stopped:
        return ocf.OCF_SUCCESS
    ocf.exit_reason(f"{service} survived SIGKILL")
    return ocf.OCF_ERR_GENERIC


@agent_group.command(name="ocf", context_settings={"ignore_unknown_options": True})
@click.argument("name", type=click.Choice(NAMES))
@click.argument("action", required=False)
def ocf_command(name: str, action: str | None) -> None:
    """Run OCF agent NAME with ACTION (start, stop, monitor, validate-all, meta-data)."""
    os.environ.setdefault("__OCF_ACTION", action or "")
    try:
        watched = name == "mariadb-role" and action in ("start", "stop")
        if watched and action == "stop":
            from hakit.agents.processes import database_server_running, stop_watcher

            stop_watcher()  # first: it must not act on a role that is stopping
            # no server: nothing is writable here (and it starts read-only: hakit.cnf)
            code = ocf.OCF_SUCCESS if not database_server_running() else agent(name).run([action])
        elif name == "monitoring-master" and action == "stop" and (lean := _lean_monitoring_stop()) is not None:
            code = lean
        else:
            code = agent(name).run([action] if action else [])
        if watched and action == "start" and code == ocf.OCF_SUCCESS:
            from hakit.agents.context import load_context
            from hakit.agents.watch import start_watcher

            start_watcher(load_context().inv.settings.node_hakit)
    except Exception as exc:  # noqa: BLE001 - an agent must answer with an OCF code, whatever happened
        ocf.exit_reason(f"hakit agent {name} {action}: {type(exc).__name__}: {exc}")
        code = ocf.OCF_ERR_GENERIC
    raise click.exceptions.Exit(code)


@agent_group.command(name="heartbeat")
@click.argument("name", type=click.Choice(NAMES))
@click.argument("action", type=click.Choice(["start", "stop", "status", "monitor"]))
def heartbeat_command(name: str, action: str) -> None:
    """Run heartbeat resource script NAME with ACTION (start, stop, status)."""
    try:
        if action in ("status", "monitor"):
            code, word = heartbeat_status(name)
            if name == "mariadb-role" and code == 0:
                # heartbeat acquires a resource that already runs without starting it (its
                # ResourceManager asks status first): after heartbeat restarted on the active, or
                # took the group back when a partition healed, no start ran the watcher, and a
                # mysqld crash would then fail over never. The active always has its watcher.
                from hakit.agents.context import load_context
                from hakit.agents.watch import start_watcher

                start_watcher(load_context().inv.settings.node_hakit)
            if name == "monitoring-master" and code == 0:
                # the same for the monitoring state's shipper (hakit.agents.continuity)
                from hakit.agents import continuity
                from hakit.agents.context import load_context

                if continuity.running() is None:
                    continuity.start_shipper(load_context().inv.settings.node_hakit)
            click.echo(word)
        elif name == "monitoring-master" and action == "stop" and (lean := _lean_monitoring_stop()) is not None:
            code = 0 if lean == ocf.OCF_SUCCESS else 1
        elif name == "mariadb-role" and action == "stop":
            from hakit.agents.processes import database_server_running, stop_watcher

            stop_watcher()  # first: it must not act on a role that is stopping
            # no server: nothing is writable here (it starts read-only: hakit.cnf)
            code = 0 if not database_server_running() or agent(name).run([action]) == ocf.OCF_SUCCESS else 1
        else:
            code = 0 if agent(name).run([action]) == ocf.OCF_SUCCESS else 1
            if name == "mariadb-role" and action == "start":
                from hakit.agents.context import load_context

                if code == 0:
                    from hakit.agents.watch import start_watcher

                    start_watcher(load_context().inv.settings.node_hakit)
                else:
                    _spawn_hand_over(load_context().inv.settings.node_hakit)
    except Exception as exc:  # noqa: BLE001 - heartbeat reads the word and the exit code, whatever happened
        click.echo(f"failed: {type(exc).__name__}: {exc}", err=True)
        code = 1
    raise click.exceptions.Exit(code)


def _spawn_hand_over(hakit_command: str) -> None:
    """heartbeat: a failed start of the role leaves the group held and nothing running, unless
    the group is handed to the peer (see :mod:`hakit.agents.handover`)."""
    from hakit.agents.handover import AFTER, spawn
    from hakit.agents.watch import LOG

    if ocf.LAST_REASON:
        # heartbeat does not log a resource script's stderr: why the start failed goes where the
        # hand-over that follows writes (the watcher's log), for the operator who wonders
        try:
            with open(LOG, "a") as log:
                log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} the role's start failed here: {ocf.LAST_REASON}\n")
        except OSError:
            pass
    if spawn(hakit_command, LOG) is not None:
        # heartbeat logs a resource script's stderr (/var/log/ha-log)
        click.echo(f"the role did not start here: heartbeat is asked to hand the group to the peer in {AFTER:g}s "
                   f"unless that changes (hakit agent hand-over, {LOG})", err=True)


@agent_group.command(name="hand-over")
def hand_over_command() -> None:
    """heartbeat: ask heartbeat to hand the group to the peer, after this node's role failed to start."""
    from hakit.agents.context import load_context
    from hakit.agents.handover import hand_over

    hand_over(load_context())
    raise click.exceptions.Exit(0)


@agent_group.command(name="server")
@click.option("--start", "start", is_flag=True, help="Start it in the background unless one runs, and return.")
def server_command(start: bool) -> None:
    """The agent server: the agents' code loaded once, a forked worker per call of the stack
    (about 0.3 s less inside every failover). The first call that finds none starts one;
    ``hakit init`` and ``resync`` start it on the nodes. Without --start: serve in the foreground."""
    from hakit.agents import server_client as quick

    if start:
        if not quick.server_listening():
            quick.start_server()
        raise click.exceptions.Exit(0)
    from hakit.agents.server import serve

    raise click.exceptions.Exit(serve())


@agent_group.command(name="watch")
@click.option("--start", "start", is_flag=True, help="Start the watcher in the background (once) and return.")
@click.option("--stop", "stop", is_flag=True, help="Stop the background watcher and wait until it is gone.")
def watch_command(start: bool, stop: bool) -> None:
    """Watch the local database (and, on heartbeat, the network) while this node holds the role.

    The role's start and stop run the watcher; ``--start``/``--stop`` are for a switchover that
    moves the role itself (the stack then finds it already in place and runs neither)."""
    from hakit.agents.context import load_context
    from hakit.agents.processes import stop_watcher
    from hakit.agents.watch import start_watcher, watch

    if start and stop:
        raise click.UsageError("--start and --stop exclude each other")
    if stop:
        stop_watcher()
        raise click.exceptions.Exit(0)
    if start:
        start_watcher(load_context().inv.settings.node_hakit)
        raise click.exceptions.Exit(0)
    raise click.exceptions.Exit(watch(load_context()))


@agent_group.command(name="metrics")
@click.option("--start", "start", is_flag=True,
              help="(Re)start it in the background and return: hakit init does, so it serves the inventory just "
                   "installed.")
def metrics_command(start: bool) -> None:
    """This node's metrics (/metrics, Prometheus) and health endpoints (/active, /standby,
    /health) on the node's address and metrics.port, and metrics.textfile when set
    (see hakit.agents.metrics)."""
    from hakit.agents.context import load_context
    from hakit.agents.metrics import restart, serve

    ctx = load_context()
    if start:
        restart([ctx.inv.settings.node_hakit, "agent", "metrics"])
        raise click.exceptions.Exit(0)
    raise click.exceptions.Exit(serve(ctx))


@agent_group.command(name="continuity")
def continuity_command() -> None:
    """Ship the monitoring master's retention state into the pair's database while it runs here
    (the monitoring master's start runs it, its stop ends it; see hakit.agents.continuity)."""
    from hakit.agents.context import load_context
    from hakit.agents.continuity import ship

    raise click.exceptions.Exit(ship(load_context()))
