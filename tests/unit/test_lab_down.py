"""``hakit lab down`` never removes what is not a lab's: an operator's site folder holds the same
file names (inventory, secrets file, known_hosts, the journal in .hakit)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hakit.errors import SafetyRefusal
from hakit.lab import labinventory
from hakit.lab import lifecycle as lab

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab down needs root (as in CI)")


def test_a_folder_no_lab_made_keeps_its_files(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / ".hakit").mkdir(parents=True)
    names = [labinventory.INVENTORY, labinventory.SECRETS, labinventory.KNOWN_HOSTS, labinventory.KEY,
             ".hakit/opsview.journal"]
    for name in names:
        (site / name).write_text("operator's\n")
    assert lab.down(str(site)) == []
    assert all((site / name).read_text() == "operator's\n" for name in names)


@pytest.mark.parametrize("folder", ["/", "/etc", "/tmp", "/root", "/var/"])
def test_a_system_folder_is_refused(folder: str) -> None:
    with pytest.raises(SafetyRefusal, match="system folder"):
        lab.down(folder)


def test_a_folder_a_lab_made_is_emptied(tmp_path: Path) -> None:
    # what up leaves when it failed right after writing its state: down removes it all
    from hakit.lab.spec import plan_lab
    from hakit.lab.state import LabState

    made = tmp_path / "lab"
    made.mkdir()
    LabState(spec=plan_lab(str(made), "two-node", "pacemaker"), started_at=0.0).save()
    (made / labinventory.INVENTORY).write_text("lab's\n")
    lab.down(str(made))
    assert not made.exists()
