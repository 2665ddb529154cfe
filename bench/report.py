"""Regenerate ``docs/performance.md`` and ``docs/performance.png`` from ``bench/results/*.json``.

The Markdown holds generated tables between markers; the text around them (the analysis) is
kept as written. ``python -m bench.report`` (no root needed).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.common import REPO, RESULTS, load_results

DOC = REPO / "docs" / "performance.md"
PLOT = REPO / "docs" / "performance.png"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
#: the targets of issue 8, in seconds (failover, switchover) or as factors (resync)
TARGETS = {"kill-node": (3.0, 6.0), "kill-mysqld": (2.0, None), "takeover": (1.0, None), "switchover": 1.0,
           "rejoin": 10.0, "reseed_speedup": 3.0, "raw_fraction": 0.5}


def _s(value: Any) -> str:
    return "–" if value is None else f"{value:.2f}"


def _mark(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return ""
    return " ✅" if value <= target else " ❌"


def machine_line(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    return (f"{m['cores']} cores, {m['memory_gib']} GiB, kernel {m['kernel']}; MariaDB {m['mariadb']}, corosync "
            f"{m['corosync']}, Pacemaker {m['pacemaker']}, heartbeat {m['heartbeat']}; hakit {m['hakit']}; "
            f"{doc['mode']} run, {doc['finished']}")


def note_lines(doc: dict[str, Any]) -> list[str]:
    """A results file may carry a note on how it was taken (say, under timings since changed)."""
    return [f"**Note:** {doc['note']}", ""] if doc.get("note") else []


def failover_table(doc: dict[str, Any]) -> list[str]:
    lines = ["### Failover time (fault → first write acknowledged through the VIP)", "",
             f"_{machine_line(doc)}; {doc['repetitions']} run(s) per fault._", "", *note_lines(doc),
             "| stack | timings | node loss median | node loss p99 | mysqld crash median | mysqld crash p99 | "
             "`hakit takeover` median | lost writes | failed runs |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    order = {"pacemaker": 0, "heartbeat": 1, "stack-defaults": 0, "hakit": 1}
    notes: list[str] = []
    for c in sorted(doc["configurations"], key=lambda c: (order.get(c["stack"], 9), order.get(c["timings"], 9))):
        node, crash, take = c["faults"]["kill-node"], c["faults"]["kill-mysqld"], c.get("takeover") or {}
        hakit_timings = c["timings"] == "hakit"
        # a configuration cut short (the run was stopped) says how many runs it has
        partial = "" if c.get("complete", True) else \
            f" (cut short: {node.get('n', 0)} + {crash.get('n', 0)} runs)"
        if c.get("mode", doc["mode"]) != doc["mode"] or c.get("finished", doc["finished"]) != doc["finished"]:
            # kept from an earlier run (another mode, or not measured again): labelled, its note below
            rf = c.get("runs_from")
            if rf:  # that run measured `hakit takeover` only; its fault runs come from another
                partial += f" (faults: {rf.get('mode', '?')} run of {str(rf.get('finished', '?'))[:10]}; " \
                           f"takeover: {c.get('mode', '?')} run of {str(c.get('finished', '?'))[:10]}; " \
                           f"{c.get('repetitions', '?')} per fault, see note)"
            else:
                partial += f" ({c.get('mode', '?')} run of {str(c.get('finished', '?'))[:10]}, " \
                           f"{c.get('repetitions', '?')} per fault{', see note' if c.get('note') else ''})"
            if c.get("note") and c["note"] != doc.get("note"):
                notes.append(f"**Note on {c['stack']}, {c['timings']}:** {c['note']}")
        elif c.get("runs_from"):
            # measured by this run, `hakit takeover` only: its fault runs come from an earlier one
            rf = c["runs_from"]
            partial += f" (faults: {rf.get('mode', '?')} run of {str(rf.get('finished', '?'))[:10]}, " \
                       f"{rf.get('repetitions', '?')} per fault; see note)"
            if c.get("note"):
                notes.append(f"**Note on {c['stack']}, {c['timings']}:** {c['note']}")
        lines.append(
            f"| {c['stack']} | {c['timings']}{partial} | {_s(node['median'])}"
            f"{_mark(node['median'], TARGETS['kill-node'][0]) if hakit_timings else ''} | {_s(node['p99'])}"
            f"{_mark(node['p99'], TARGETS['kill-node'][1]) if hakit_timings else ''} | {_s(crash['median'])}"
            f"{_mark(crash['median'], TARGETS['kill-mysqld'][0]) if hakit_timings else ''} | {_s(crash['p99'])} | "
            f"{_s(take.get('median'))}{_mark(take.get('median'), TARGETS['takeover'][0])} | {c['lost']} | "
            f"{c['failed_runs']} |")
    lines += ["", "Targets (hakit's timings): node loss ≤ 3 s median and ≤ 6 s p99, mysqld crash ≤ 2 s median, "
                  "`hakit takeover` ≤ 1 s. Seconds."]
    for note in dict.fromkeys(notes):
        lines += ["", note]
    return lines


def switchover_table(doc: dict[str, Any]) -> list[str]:
    lines = ["### Switchover window (longest gap between acknowledged writes)", "",
             f"_{machine_line(doc)}; {doc['repetitions']} switchovers per stack._", "",
             "| stack | longest gap median | longest gap p99 | command median | lost | duplicated | diverged "
             "| failed |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in doc["configurations"]:
        lines.append(f"| {c['stack']} | {_s(c['gap']['median'])}{_mark(c['gap']['median'], TARGETS['switchover'])} "
                     f"| {_s(c['gap']['p99'])} | {_s(c['command']['median'])} | {c['lost']} | {c['duplicated']} | "
                     f"{c.get('diverged', '–')} | {c['failed_runs']} |")
    lines += ["", "Target: longest gap ≤ 1 s median; lost and duplicated: 0. Seconds. The writer's table keys "
                  "on the id, so a write applied twice would show as the two nodes' tables differing once the "
                  "standby has caught up (diverged), not as a duplicate row."]
    return lines


def rpo_table(doc: dict[str, Any]) -> list[str]:
    lines = ["### Data loss on node loss (RPO)", "",
             f"_{machine_line(doc)}; {doc['repetitions']} run(s) per mode._", "",
             "| replication | acknowledged writes lost (per run) | errant transactions resync reports (per run) "
             "| the writer's rows in the saved errant transactions (per run) | every lost write among them |",
             "| --- | --- | --- | --- | --- |"]
    for m in doc["modes"]:
        limit = m.get("replication_limit")
        mode = f"{m['mode']} (stream to the standby limited to {limit})" if limit else m["mode"]
        saved = ", ".join(map(str, m["errant_writer_rows"])) if "errant_writer_rows" in m else "–"
        lines.append(f"| {mode} | {', '.join(map(str, m['lost']))} | {', '.join(map(str, m['errant_reported']))} "
                     f"| {saved} | {'yes' if m['errant_covers_lost'] else 'NO'} |")
    lines += ["", "Target: 0 lost with semi-sync AFTER_SYNC. Resync's errant transactions are the old active's "
                  "own commits the new active never received: the lost acknowledged writes, and the writes it "
                  "committed but could not acknowledge before it died."]
    return lines


def resync_table(doc: dict[str, Any]) -> list[str]:
    cut = "" if doc.get("complete", True) else "; cut short: the sizes below only"
    lines = ["### Resync speed", "", f"_{machine_line(doc)}{cut}._", "",
             "| data | rejoin | dump | backup | seed runbook (baseline) | raw copy | best reseed vs baseline | "
             "best reseed vs raw copy speed |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for size in doc["sizes"]:
        s = size["seconds"]
        best = min(s["dump"], s["backup"])
        speedup = s["baseline"] / best if best else None
        fraction = s["raw copy"] / best if best else None
        lines.append(f"| {size['megabytes']} MB ({size['datadir_bytes'] / 2**20:.0f} MiB on disk) | "
                     f"{_s(s['rejoin'])}{_mark(s['rejoin'], TARGETS['rejoin'])} | {_s(s['dump'])} | "
                     f"{_s(s['backup'])} | {_s(s['baseline'])} | {_s(s['raw copy'])} | "
                     f"{speedup:.1f}×{' ✅' if speedup >= TARGETS['reseed_speedup'] else ' ❌'} | "
                     f"{fraction:.0%}{' ✅' if fraction >= TARGETS['raw_fraction'] else ' ❌'} |")
    lines += ["", "Seconds. Targets: rejoin ≤ 10 s at any size; the best full reseed ≥ 3× faster than the baseline "
                  "(at 1 GB) and ≥ 50% of the raw copy's speed."]
    watched = [size for size in doc["sizes"] if size.get("writes")]
    if watched:
        lines += ["", "The writer through the VIP during each copy (one transaction every 5 ms on the active):", "",
                  "| data | copy | writes acknowledged | longest gap between acknowledgements | lost on the active "
                  "| missing on the rebuilt node once caught up |", "| --- | --- | ---: | ---: | ---: | ---: |"]
        for size in watched:
            for name in ("rejoin", "dump", "backup", "baseline", "raw copy"):
                seen = size["writes"].get(name)
                if seen is None:
                    continue
                missing = seen.get("missing_on_rebuilt")
                lines.append(f"| {size['megabytes']} MB | {'seed runbook (baseline)' if name == 'baseline' else name} "
                             f"| {seen['acknowledged']} | {_s(seen['longest_gap'])} s | {seen['lost']} "
                             f"| {'–' if missing is None else missing} |")
    return lines


def idle_table(doc: dict[str, Any]) -> list[str]:
    lines = ["### False failovers on a pair without faults (hakit's timings, the writer running)", "",
             f"_{machine_line(doc)}._", "",
             "| stack | timings | minutes | samples | writes | false failovers | near misses in the stack's log |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for c in doc["configurations"]:
        timings = ", ".join(f"{k} {v}" for k, v in c["timings"].items())
        misses = ", ".join(f"{k!r}: {v}" for k, v in c.get("near_misses", {}).items()) or "–"
        lines.append(f"| {c['stack']} | {timings} | {c['minutes']} | {c['samples']} "
                     f"| {c.get('writes_acknowledged', '–')} "
                     f"| {c['false_failovers']}{' ✅' if c['false_failovers'] == 0 else ' ❌'} | {misses} |")
    lines += ["", "Target: none. A false failover is any change of the active, the generation, the VIP's holder "
                  "or the pair's health without a fault. Near misses are the stacks' own warnings that a node "
                  "came close to being declared dead."]
    return lines


def _has_edits(doc: dict[str, Any]) -> bool:
    return any("edits" in c for c in doc["configurations"])


def continuity_table(doc: dict[str, Any]) -> list[str]:
    bound = doc.get("bound_seconds", 5)
    lines = ["### The monitoring state after a failover (the same view of the data)", "",
             f"_{machine_line(doc)}; {doc['repetitions']} run(s) per fault and stack; one state change every "
             f"100 ms on the active's Nagios until the fault" + (", and a configuration edit every second"
                                                                  if _has_edits(doc) else "") + "._", "",
             "| stack | storage | changes before the faults | lost | lost older than the bound | oldest lost (s) "
             "| config edits | edits not loaded (older than the bound) "
             "| spurious notifications | first check result after start, median (max) (s) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in doc["configurations"]:
        oldest = max((r["oldest_lost_seconds"] for r in c["runs"] if r["oldest_lost_seconds"] is not None),
                     default=None)
        first = c["first_check"]
        if "edits" in c:
            older = c["edits_lost_older_than_bound"]
            edits = f"{c['edits']} | {c['edits_lost']} ({older}{' ✅' if older == 0 else ' ❌'})"
        else:
            edits = "— | —"  # measured before the stream had configuration edits
        lines.append(f"| {c['stack']} | {c['storage']} | {c['changes']} | {c['lost']} | "
                     f"{c['lost_older_than_bound']}{' ✅' if c['lost_older_than_bound'] == 0 else ' ❌'} | "
                     f"{_s(oldest)} | {edits} | {c['spurious_notifications']}"
                     f"{' ✅' if c['spurious_notifications'] == 0 else ' ❌'} | {_s(first['median'])} "
                     f"({_s(first['max'])}) |")
    lines += ["", f"Targets: no change or configuration edit older than {bound:g} s lost; no notification "
                  "about an acknowledged problem or a host in downtime; the first check result within one check "
                  "interval (of the service that had it). bench/continuity.py; docs/automatic.md says what bounds it."]
    return lines


def vm_failover_table(doc: dict[str, Any]) -> list[str]:
    lines = ["### DRBD against replication on the VM tier (the seed's design against hakit's)", "",
             f"_{machine_line(doc)}; heartbeat on qemu guests under software emulation (1 vCPU each); "
             f"{doc['repetitions']} power cut(s) of the active per lab; the seconds are the emulated guests', "
             f"several times a real server's: the ratio is the result._", "",
             "| monitoring files | database: first write (median, max) (s) "
             "| monitoring master running (median, max) (s) | lost |",
             "| --- | ---: | ---: | ---: |"]
    for c in doc["configurations"]:
        db, mon = c["database"], c["monitoring"]
        lost = sum(r.get("lost") or 0 for r in c["runs"])
        partial = "" if c.get("complete", True) else " (cut short)"
        lines.append(f"| {c['storage']}{partial} | {_s(db.get('median'))} ({_s(db.get('max'))}) | "
                     f"{_s(mon.get('median'))} ({_s(mon.get('max'))}) | {lost}{' ✅' if lost == 0 else ' ❌'} |")
    lines += ["", f"DRBD / replication, medians: database {_s(doc.get('ratio_database'))}, monitoring master "
                  f"{_s(doc.get('ratio_monitoring'))}. On heartbeat the database role and the VIP come before "
                  "DRBD in the group (haresources), so DRBD cannot delay the database; the monitoring master "
                  "waits for drbddisk's promotion and the file system's mount, each a resource script the "
                  "emulated guest runs slowly. bench/vm_failover.py (`./scripts/setup-vm` first)."]
    return lines


def tables(results: dict[str, dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for name, render in (("failover", failover_table), ("idle", idle_table), ("switchover", switchover_table),
                         ("rpo", rpo_table), ("resync", resync_table), ("continuity", continuity_table),
                         ("vm_failover", vm_failover_table)):
        if name in results:
            out += render(results[name]) + [""]
        else:
            out += [f"### {name}", "", f"_not measured yet: run `bench/run {name}`._", ""]
    out += ["![failover, switchover and resync medians](performance.png)", ""]
    return out


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Bar charts of the medians (failover per stack and timings; switchover; resync)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    if "failover" in results:
        configs = results["failover"]["configurations"]
        labels = [f"{c['stack']}\n{c['timings']}" for c in configs]
        xs = range(len(configs))
        for offset, fault in ((-0.2, "kill-node"), (0.2, "kill-mysqld")):
            ax.bar([x + offset for x in xs], [c["faults"][fault]["median"] or 0 for c in configs], 0.4, label=fault)
        ax.set_xticks(list(xs), labels)
        ax.axhline(TARGETS["kill-node"][0], color="grey", linestyle="--", linewidth=1)
        ax.legend()
    ax.set_title("failover time, median (s)")
    ax = axes[1]
    if "switchover" in results:
        configs = results["switchover"]["configurations"]
        ax.bar([c["stack"] for c in configs], [c["gap"]["median"] or 0 for c in configs], color="tab:green")
        ax.axhline(TARGETS["switchover"], color="grey", linestyle="--", linewidth=1)
    ax.set_title("switchover: longest write gap, median (s)")
    ax = axes[2]
    if "resync" in results:
        sizes = results["resync"]["sizes"]
        methods = ["rejoin", "dump", "backup", "baseline", "raw copy"]
        width = 0.8 / max(1, len(sizes))
        for i, size in enumerate(sizes):
            ax.bar([m + i * width for m in range(len(methods))], [size["seconds"][k] for k in methods], width,
                   label=f"{size['megabytes']} MB")
        ax.set_xticks([m + width * (len(sizes) - 1) / 2 for m in range(len(methods))], methods)
        ax.set_yscale("log")
        ax.legend()
    ax.set_title("resync (s, log scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(results: dict[str, dict[str, Any]], doc: Path = DOC, png: Path = PLOT) -> None:
    """Replace the generated part of ``doc`` (between the markers) and redraw ``png``."""
    generated = "\n".join([BEGIN, *tables(results), END])
    text = doc.read_text() if doc.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc}: the markers {BEGIN} and {END} are missing")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(head + generated + tail)
    plot(results, png)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    write(load_results(args.results))
    print(f"report: wrote {DOC} and {PLOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
