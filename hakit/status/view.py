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


def print_status(inv: Inventory, doc: dict[str, Any], console: Console | None = None) -> None:
    """Print the status document as a table and a one-line verdict."""
    import sys

    # a pipe or a log gets the whole table, not one squeezed to 80 columns
    console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    table = Table(title=f"hakit {inv.settings.cluster_name} ({inv.settings.topology}, {inv.settings.stack})")
    for column in ("node", "role", "reachable", "writable", "replicating from", "IO/SQL", "lag", "GTID",
                   "generation", "VIP", "monitoring", "stack", "watcher"):
        table.add_column(column)
    for name, n in doc["nodes"].items():
        role = "active" if name == doc["active"] else ("standby" if name == doc.get("standby") else "")
        threads = f"{'Y' if n['io_running'] else 'N'}/{'Y' if n['sql_running'] else 'N'}" \
            if n["replicating_from"] else "-"
        table.add_row(name, role, _yes(n["reachable"]) if n["reachable"] else "[red]NO[/red]",
                      _yes(n["writable"], good=name == doc["active"]), n["replicating_from"] or "-", threads,
                      "-" if n["lag_seconds"] is None else f"{n['lag_seconds']}s", n["gtid"] or "-",
                      "-" if n["generation"] is None else str(n["generation"]), _yes(n["vip"]), _yes(n["monitoring"]),
                      _yes(n.get("stack_running")), _yes(n.get("watcher"), good=name == doc["active"]))
    console.print(table)
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
    tls = {name: n["tls"] for name, n in doc["nodes"].items() if "tls" in n}
    if tls:
        encrypted = [name for name, t in tls.items() if t["replication_encrypted"] and t["verifies_master"]]
        console.print(f"TLS: replication encrypted and verified on {', '.join(encrypted) or 'no node'}")
        for t in tls.values():
            for problem in t["problems"]:
                console.print(f"[yellow]TLS: {problem}[/yellow]")
    for name, n in doc["nodes"].items():
        if n["error"]:
            console.print(f"[dim]{name}: {n['error']}[/dim]")
