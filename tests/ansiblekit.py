"""Run hakit's playbooks the way an operator does: ansible-playbook from the project's virtualenv."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ANSIBLE_DIR = REPO / "ansible"
PLAYBOOKS = ("site.yml", "takeover.yml", "switchover.yml", "resync.yml", "status.yml", "sync.yml")
BIN = Path(sys.executable).parent
HAKIT = str(BIN / "hakit")
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class PlaybookRun:
    rc: int
    output: str

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """Per host: ok, changed, unreachable, failed (from PLAY RECAP)."""
        return {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
                for m in RECAP.finditer(self.output)}

    @property
    def changed(self) -> int:
        return sum(host["changed"] for host in self.recap.values())

    def __str__(self) -> str:  # assert with str(run): pytest cuts a repr to 240 characters
        # the failed tasks first: CI shows the start of a failure's message, the end of the log
        failed = [line for line in self.output.splitlines()
                  if line.startswith(("fatal:", "failed:")) or "FAILED!" in line or '"msg":' in line]
        first = "\n".join(failed)[:4000]
        return f"ansible-playbook exit {self.rc}\n{first}\n--- the end of the output:\n{self.output[-6000:]}"


def ansible_env(tmp: Path) -> dict[str, str]:
    """Plain output, no colour, no retry files, short-lived SSH masters, Ansible's files in ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({
        "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"), "ANSIBLE_HOME": str(tmp / "ansible-home"),
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=5s",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp / "ansible-cp"),
        "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
    })
    return env


def run_playbook(inventory: Path | str, playbook: str, *extra: str, tmp: Path, timeout: float = 600) -> PlaybookRun:
    """``ansible-playbook -i INVENTORY ansible/PLAYBOOK EXTRA...``: its exit code and output."""
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(ANSIBLE_DIR / playbook), *extra],
                          cwd=REPO, env=ansible_env(tmp), capture_output=True, text=True, timeout=timeout)
    return PlaybookRun(done.returncode, done.stdout + done.stderr)


class Site:
    """A lab and the inventory the playbooks run on."""

    def __init__(self, lab: Any, inventory: Path, extra: list[str], tmp: Path):
        self.lab, self.inventory, self.extra, self.tmp = lab, inventory, extra, tmp

    def play(self, playbook: str, *args: str) -> PlaybookRun:
        return run_playbook(self.inventory, playbook, *self.extra, *args, tmp=self.tmp)

    def status(self) -> dict:
        done = subprocess.run([HAKIT, "-i", str(self.inventory), "status", "--json"], capture_output=True, text=True,
                              timeout=120)
        assert done.stdout, done.stderr
        return json.loads(done.stdout)

    def node_run(self, node: str, command: str) -> str:
        return self.lab.host(node).check_output(command)
