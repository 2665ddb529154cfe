"""A short seeded fault campaign per stack (``hakit lab chaos``): Pacemaker's in CI
(``./scripts/test``), heartbeat's in ``./scripts/test-long`` (CI's 30 minutes are full).

Faults that real data centres see and that once left two writable nodes (issue 21), and the
operator's takeover racing the stack: Pacemaker seed 10, one fault (the active's database
killed and ``hakit takeover`` racing the stack's failover, killed half-way and run again);
heartbeat seed 7, one (the active's database hung). A full data disk and a one-way partition,
which CI played too until 2026-12-07, are the long campaign's: CI has no time for them. Each is recovered the way an
operator would and audited after every step: one writable node and the VIP on one node at
every sample (a node that does not answer counting as writable); generations, the VIP once
settled, every write acknowledged to the host's writer or to the writer inside either node,
equal tables, no resource active twice, the interrupted operation converged.

Elsewhere: the first fault model's kinds (node and mysqld kills, link cuts, stack stops,
interrupted switchover and resync) by lab tests of their own (test_automatic_lab,
test_failover_lab, test_pacemaker_lab, test_heartbeat_lab); a hung database on Pacemaker and a
peer-only partition on heartbeat by test_split_brain_lab and test_split_brain_heartbeat_lab; a
long statement during a stop or a self-fence by tests/integration/test_self_fence.py. Every
kind, slow links and the standby's crash included, is played by the long campaign
(``hakit lab chaos --faults 300``, docs/reliability.md), which is a command of its own.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from labkit import _MADE, need_root

from hakit.lab import lifecycle as labmod
from hakit.lab.chaos import draw
from hakit.lab.driver import HAKIT

pytestmark = pytest.mark.lab

#: heartbeat's (a minute) runs in ./scripts/test-long: CI's time is Pacemaker's campaign's
CAMPAIGNS = [pytest.param("pacemaker", 10, 1, ("interrupt-takeover",), id="pacemaker"),
             pytest.param("heartbeat", 7, 1, ("hang",), id="heartbeat", marks=pytest.mark.long)]


@pytest.mark.parametrize("stack, seed, faults, kinds", CAMPAIGNS)
def test_a_short_campaign_breaks_no_invariant(stack: str, seed: int, faults: int, kinds: tuple[str, ...],
                                              tmp_path: Path) -> None:
    need_root()
    folder = tmp_path / "lab"
    report_path = tmp_path / "report.json"
    _MADE.append(str(folder))  # removed at exit whatever happens (the command removes it too)
    try:
        done = subprocess.run([HAKIT, "lab", "chaos", "--dir", str(folder), "--stack", stack, "--faults", str(faults),
                               "--seed", str(seed), "--kinds", ",".join(kinds), "--report", str(report_path)],
                              capture_output=True, text=True, timeout=1500)
    finally:
        labmod.down(str(folder))
    assert report_path.exists(), done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["ok"] and report["violations"] == [] and report["errors"] == []
    # every fault was played, the ones the seed draws, in its order
    assert [s["fault"] for s in report["steps"]] == [f.kind for f in draw(seed, faults, kinds)]
    assert all(s["recovery_seconds"] is not None for s in report["steps"])
    # the audits ran: the sampler read the nodes continuously, and each kind of check was made
    checks = report["checks"]
    assert checks["one writable node"] > 40 * faults and checks["VIP on one node at every sample"] > 40 * faults
    # the host's writer and the one inside each node, after every step
    assert checks["acknowledged writes kept"] == 3 * faults
    rules = ["generation never decreases", "VIP on exactly one node", "the VIP follows the writable node",
             "acknowledged writes kept", "tables equal after resync",
             "monitoring state shipped within the bound", "monitoring state kept"]
    if any(f.kind.startswith("interrupt-") for f in draw(seed, faults, kinds)):
        rules.append("operations converge")
    if any(f.kind in ("kill-node", "kill-mysqld", "kill-mysqld-quiet", "hang", "interrupt-takeover")
           for f in draw(seed, faults, kinds)):
        rules.append("semi-sync off while nothing receives")  # a takeover over a dead server
    if any(f.kind == "full-disk" for f in draw(seed, faults, kinds)):
        rules.append("status names a full disk")
    assert all(checks.get(rule, 0) > 0 for rule in rules), checks
    if stack == "pacemaker":
        assert checks.get("no resource active twice", 0) > 0
