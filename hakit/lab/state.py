"""The lab's state file (``DIR/state.json``): what ``up`` made, so that ``down`` undoes it.

It is a record, not the truth: ``down`` also cleans by discovery (links with the lab prefix,
node inits carrying the lab marker), so a lost or stale state file still leaves nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hakit.lab.spec import LabSpec

STATE_FILE = "state.json"


@dataclass
class LabState:
    """What exists now: the spec, each node's init PID (host view), the helper, host files."""

    spec: LabSpec
    inits: dict[str, int] = field(default_factory=dict)  #: node name -> PID of its init (tini) on the host
    helper_pid: int | None = None  #: the host-side fence helper
    host_files: list[str] = field(default_factory=list)  #: files written outside DIR (the fence agent)
    links: list[str] = field(default_factory=list)  #: host links made (bridge, veth ends)
    started_at: float = 0.0
    build_seconds: float | None = None
    shared_device: str | None = None  #: the loop device over a shared-storage lab's disk image
    witness_init: int | None = None  #: the witness's init (``up --witness``), never in ``inits``

    def init_of(self, name: str) -> int | None:
        """The init PID of node ``name``, the witness's included (None: not recorded)."""
        from hakit.lab.spec import WITNESS_NAME

        return self.witness_init if name == WITNESS_NAME else self.inits.get(name)

    def save(self) -> None:
        """Write atomically (a crash never leaves half a state file)."""
        path = Path(self.spec.dir) / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"spec": self.spec.to_json(), "inits": self.inits, "helper_pid": self.helper_pid,
                "host_files": self.host_files, "links": self.links, "started_at": self.started_at,
                "build_seconds": self.build_seconds, "shared_device": self.shared_device,
                "witness_init": self.witness_init}
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)


def load_state(dir: str | Path) -> LabState | None:
    """The state of the lab in ``dir``, or None when there is none (or it is unreadable)."""
    path = Path(dir) / STATE_FILE
    try:
        data = json.loads(path.read_text())
        return LabState(spec=LabSpec.from_json(data["spec"]), inits={k: int(v) for k, v in data["inits"].items()},
                        helper_pid=data.get("helper_pid"), host_files=list(data.get("host_files", [])),
                        links=list(data.get("links", [])), started_at=float(data.get("started_at", 0.0)),
                        build_seconds=data.get("build_seconds"), shared_device=data.get("shared_device"),
                        witness_init=data.get("witness_init"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_inits(dir: str | Path) -> dict[str, int | None]:
    """Each node's init PID while it is that node's init, else None: a node powered off keeps
    its old PID in the state file until it is restarted, and the kernel may give that PID to
    any other process meanwhile, whose namespaces a read through it would then read. The first
    four-node campaign (2026-12-07, step 8) reported the database VIP on a node powered off 21 s
    before and being restarted, the VIP then on its peer: the likely cause (the lab's PIDs wrap
    at 32768 in a minute or two). The samplers read through these."""
    from hakit.lab.node import is_alive

    state = load_state(dir)
    if state is None:
        return {}
    return {name: (init if is_alive(state.spec, name, init) else None) for name, init in state.inits.items()}


@contextlib.contextmanager
def locked(dir: str | Path) -> Iterator[None]:
    """Hold the lab's lock: one change to nodes and state at a time (CLI, fence helper)."""
    path = Path(dir) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
