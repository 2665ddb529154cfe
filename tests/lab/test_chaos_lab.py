"""A short seeded fault campaign per stack (``hakit lab chaos``), as CI runs it.

The faults that real data centres see and that once left two writable nodes (issue 21):
Pacemaker seed 2 (the active's database hung, a peer-only partition, a clean stack stop under
a long write statement), heartbeat seed 3 (a peer-only partition, the standby's database
killed, the active's database hung), each recovered the way an operator would and audited
after every step (one writable node at every sample, a node that does not answer counting as
writable; generations, the VIP, acknowledged writes, equal tables, no resource active twice).
The first fault model's kinds (node and mysqld kills, link cuts, stack stops, interrupted
operations) are played by lab tests of their own (test_automatic_lab, test_failover_lab,
test_pacemaker_lab, test_heartbeat_lab);
a long campaign of every kind is ``hakit lab chaos --faults 100`` (docs/reliability.md).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from labkit import _MADE, need_root
from hakit.lab import lab as labmod
from hakit.lab.chaos import draw
from hakit.lab.driver import HAKIT

pytestmark = pytest.mark.lab

CAMPAIGNS = [("pacemaker", 2, ("hang", "peer-partition", "long-write-stop")),
             ("heartbeat", 3, ("hang", "peer-partition", "one-way", "kill-mysqld-standby"))]


@pytest.mark.parametrize("stack, seed, kinds", CAMPAIGNS, ids=[s for s, _, _ in CAMPAIGNS])
def test_a_short_campaign_breaks_no_invariant(stack: str, seed: int, kinds: tuple[str, ...], tmp_path: Path) -> None:
    need_root()
    folder = tmp_path / "lab"
    report_path = tmp_path / "report.json"
    _MADE.append(str(folder))  # removed at exit whatever happens (the command removes it too)
    try:
        done = subprocess.run([HAKIT, "lab", "chaos", "--dir", str(folder), "--stack", stack, "--faults", "3",
                               "--seed", str(seed), "--kinds", ",".join(kinds), "--report", str(report_path)],
                              capture_output=True, text=True, timeout=1500)
    finally:
        labmod.down(str(folder))
    assert report_path.exists(), done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["ok"] and report["violations"] == [] and report["errors"] == []
    # every fault was played, the ones the seed draws, in its order
    assert [s["fault"] for s in report["steps"]] == [f.kind for f in draw(seed, 3, kinds)]
    assert all(s["recovery_seconds"] is not None for s in report["steps"])
    # the audits ran: the sampler read the nodes continuously, and each kind of check was made
    checks = report["checks"]
    assert checks["one writable node"] > 100
    rules = ["generation never decreases", "VIP on exactly one node", "the VIP follows the writable node",
             "acknowledged writes kept", "tables equal after resync"]
    if any(f.kind.startswith("interrupt-") for f in draw(seed, 3, kinds)):
        rules.append("operations converge")
    assert all(checks.get(rule, 0) > 0 for rule in rules), checks
    if stack == "pacemaker":
        assert checks.get("no resource active twice", 0) > 0
