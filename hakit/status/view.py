"""The human view of ``hakit status``: one table, colors on a terminal (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from hakit.inventory.model import Inventory
from hakit.status.check import UNFENCED, WATCHER_MISSING
from hakit.status.shipped import CONFIRM_EVERY, seconds_text

STATE_STYLE = {"healthy": "green", "degraded": "yellow", "split-brain": "bold red", "bootstrapping": "cyan",
               "switching": "magenta", "resyncing": "magenta"}


def _yes(value: Any, good: bool = True) -> str:
    if value is None:
        return "[dim]?[/dim]"
    if value:
        return "[green]yes[/green]" if good else "[yellow]yes[/yellow]"
    return "no"


def shipped_line(doc: dict[str, Any], warning_seconds: int) -> str | None:
    """The shipped monitoring state in one line, yellow when ``check`` warns of it
    (:func:`hakit.status.shipped.shipped_problems`); None when nothing was shipped."""
    shipped = doc.get("monitoring_state")
    if not shipped:
        return None
    age, behind, standby = shipped["active_age_seconds"], shipped["standby_behind_seconds"], shipped["standby"]
    confirmed = f"confirmed {seconds_text(age)}s ago" if age is not None else "nothing written yet"
    text = f"monitoring state: shipped by {shipped['writer']} (seq {shipped['seq']}, {confirmed})"
    warn = age is not None and age > CONFIRM_EVERY + warning_seconds
    has = f"seq {shipped['standby_seq']}" if shipped["standby_seq"] is not None else "no copy"
    if standby is not None and shipped["standby_seq"] == shipped["seq"]:
        text += f"; {standby} has it"
    elif standby is not None and behind is None:
        # its database not read, or the active's row only claimed (no time to age)
        text += f"; {standby}'s copy unknown" if shipped["standby_seq"] is None else f"; {standby} has {has}"
    elif standby is not None:
        text += f"; {standby} is at least {seconds_text(behind)}s behind ({has})"
        warn = warn or behind > warning_seconds
    return f"[yellow]{text}[/yellow]" if warn else text


#: the default table's flags, in order: (letter, the node document's field, what it means)
FLAGS = (("V", "vip", "holds the VIP"), ("M", "monitoring", "runs the monitoring master"),
         ("S", "stack_running", "runs the cluster stack"), ("W", "watcher", "runs hakit's watcher"))
#: columns of a pipe or a log (no terminal to ask): the default table fits in 100, -o wide's
#: GTIDs are never cut (folded)
PIPE_WIDTH = {"table": 100, "wide": 200}


def _flags(n: dict[str, Any]) -> str:
    """``VMSW``: a letter when it is so, ``-`` when not, ``?`` when not known (every one of an
    unreachable node's)."""
    if not n["reachable"]:
        return "?" * len(FLAGS)
    return "".join(letter if n.get(key) else "?" if n.get(key) is None else "-" for letter, key, _ in FLAGS)


def _replication(n: dict[str, Any]) -> str:
    if not n["replicating_from"]:
        return "-"
    threads = f"{'Y' if n['io_running'] else 'N'}/{'Y' if n['sql_running'] else 'N'}"
    text = f"{n['replicating_from']} {threads}"
    return text if n["io_running"] and n["sql_running"] else f"[red]{text}[/red]"


def _role(doc: dict[str, Any], name: str, n: dict[str, Any]) -> str:
    if not n["reachable"]:
        return "[red]unreachable[/red]"
    return "active" if name == doc["active"] else ("standby" if name == doc.get("standby") else "")


def node_table(inv: Inventory, doc: dict[str, Any], wide: bool = False) -> Table:
    """The nodes: by default node, role, writable, replication, lag, generation and a flags
    column (:data:`FLAGS`), about 75 columns; ``wide``: every field, the GTIDs folded, not cut."""
    table = Table(title=f"hakit {inv.settings.cluster_name} ({inv.settings.topology}, {inv.settings.stack})")
    if not wide:
        for column in ("node", "role", "writable", "replication", "lag", "gen", "flags"):
            table.add_column(column, no_wrap=True)
        for name, n in doc["nodes"].items():
            table.add_row(name, _role(doc, name, n), _yes(n["writable"], good=name == doc["active"]),
                          _replication(n), "-" if n["lag_seconds"] is None else f"{n['lag_seconds']}s",
                          "-" if n["generation"] is None else str(n["generation"]), _flags(n))
        return table
    for column in ("node", "role", "reachable", "writable", "replicating from", "IO/SQL", "lag", "GTID",
                   "generation", "VIP", "monitoring", "stack", "watcher"):
        table.add_column(column, overflow="fold")
    for name, n in doc["nodes"].items():
        role = "active" if name == doc["active"] else ("standby" if name == doc.get("standby") else "")
        threads = f"{'Y' if n['io_running'] else 'N'}/{'Y' if n['sql_running'] else 'N'}" \
            if n["replicating_from"] else "-"
        table.add_row(name, role, _yes(n["reachable"]) if n["reachable"] else "[red]NO[/red]",
                      _yes(n["writable"], good=name == doc["active"]), n["replicating_from"] or "-", threads,
                      "-" if n["lag_seconds"] is None else f"{n['lag_seconds']}s", n["gtid"] or "-",
                      "-" if n["generation"] is None else str(n["generation"]), _yes(n["vip"]), _yes(n["monitoring"]),
                      _yes(n.get("stack_running")), _yes(n.get("watcher"), good=name == doc["active"]))
    return table


def print_status(inv: Inventory, doc: dict[str, Any], console: Console | None = None, *, wide: bool = False) -> None:
    """Print the status document as a table and a one-line verdict (``wide``: every column)."""
    import sys

    if console is None:
        console = Console(highlight=False,
                          width=None if sys.stdout.isatty() else PIPE_WIDTH["wide" if wide else "table"])
    table = node_table(inv, doc, wide)
    console.print(table)
    if not wide:
        # whole, one line each, never cut: a GTID is what an operator copies
        for name, n in doc["nodes"].items():
            console.print(f"[dim]GTID[/dim] {name} {n['gtid'] or '-'}", soft_wrap=True)
        console.print("[dim]flags: " + ", ".join(f"{letter} {what}" for letter, _, what in FLAGS)
                      + " (- no, ? unknown); -o wide for every column[/dim]")
    style = STATE_STYLE.get(doc["state"], "white")
    console.print(f"state: [{style}]{doc['state']}[/{style}]  generation {doc['generation']}  "
                  f"active {doc['active'] or '-'}" + ("  [yellow]MAINTENANCE[/yellow]" if doc["maintenance"] else ""))
    console.print(f"why: {doc['reason']}")
    shipped = shipped_line(doc, inv.settings.monitoring.state_warning_seconds)
    if shipped is not None:
        console.print(shipped)
    if doc["active"] and doc["nodes"].get(doc["active"], {}).get("watcher") is False:
        console.print(f"[yellow]{WATCHER_MISSING.format(node=doc['active'])}[/yellow]")
    if doc.get("unfenced"):
        console.print(f"[yellow]{UNFENCED.format(nodes=' and '.join(doc['unfenced']))}[/yellow]")
    if "anti_flap_seconds_left" in doc and doc["anti_flap_seconds_left"] is None:
        console.print("[yellow]anti-flap: the last automatic takeover's age is unknown (its node's server does not "
                      "answer and no node has recorded it on its own clock): no automatic takeover until it is "
                      "known (hakit takeover still works)[/yellow]")
    elif doc.get("anti_flap_seconds_left"):
        console.print(f"[yellow]anti-flap: no automatic takeover for {doc['anti_flap_seconds_left']}s more "
                      f"(hakit takeover still works)[/yellow]")
    if doc.get("stack_running_on") is not None:
        console.print(f"{inv.settings.stack}: resources running on {', '.join(doc['stack_running_on']) or 'no node'}")
    if doc.get("operation"):
        console.print(f"[yellow]unfinished: {doc['operation']['name']} (target {doc['operation']['target']}); "
                      f"re-run hakit {doc['operation']['name']} to finish it[/yellow]")
    mirrored = {name: n["drbd"] for name, n in doc["nodes"].items() if n.get("drbd")}
    if mirrored:
        console.print("DRBD: " + "; ".join(f"{name} {drbd_text(d)}" for name, d in mirrored.items()))
    votes = {name: n["quorum"] for name, n in doc["nodes"].items() if n.get("quorum")}
    if votes and inv.settings.quorum_device is not None:
        console.print(f"quorum device (witness {inv.settings.quorum_device.host}): "
                      + "; ".join(f"{name} {quorum_text(q)}" for name, q in votes.items()))
    tls = {name: n["tls"] for name, n in doc["nodes"].items() if "tls" in n}
    if tls:
        encrypted = [name for name, t in tls.items() if t["replication_encrypted"] and t["verifies_master"]]
        console.print(f"TLS: replication encrypted and verified on {', '.join(encrypted) or 'no node'}")
        for t in tls.values():
            for problem in t["problems"]:
                console.print(f"[yellow]TLS: {problem}[/yellow]")
    for name, n in doc["nodes"].items():
        if n["error"]:
            said = n["error"] if n["error"].startswith(f"{name}:") else f"{name}: {n['error']}"
            console.print(f"[dim]{said}[/dim]")


def quorum_text(q: dict[str, Any]) -> str:
    """One node's votes as status prints it: ``quorate 3/3 votes, the witness voting``."""
    return (f"{'quorate' if q['quorate'] else 'NOT quorate'} {q['total_votes']}/{q['expected_votes']} votes, the "
            f"witness {'voting' if q['device_voting'] else 'NOT voting'}")


def drbd_text(d: dict[str, Any]) -> str:
    """One node's DRBD as status prints it: ``Primary/Secondary Connected UpToDate/UpToDate``."""
    if d["connection"] == "Unconfigured":
        return "not up"
    oos = f", {d['out_of_sync_kib']} KiB out of sync" if d.get("out_of_sync_kib") else ""
    return f"{d['role']}/{d['peer_role']} {d['connection']} {d['disk']}/{d['peer_disk']}{oos}"
