"""What the render tests share with the integration tests that feed the rendered files to the
real tools: the fixture secrets, variants of the examples, and every topology x stack x storage."""

from __future__ import annotations

from pathlib import Path

import yaml
from unitkit import example_data

from hakit.inventory.loader import parse_inventory
from hakit.inventory.model import Inventory
from hakit.inventory.secrets import Secrets
from hakit.render.artefact import Artefact

ROOT = Path(__file__).resolve().parents[1]


def fixture_secrets() -> Secrets:
    """``tests/fixtures/secrets.yml``, loaded through the model directly: the fixture file's mode
    in a checkout is not ours to trust."""
    return Secrets.model_validate(yaml.safe_load((ROOT / "tests" / "fixtures" / "secrets.yml").read_text()))


def variant(stem: str, **changes: object) -> Inventory:
    """An example with some hakit settings replaced (dotted keys), parsed like a real inventory."""
    data = example_data(stem)
    for dotted, value in changes.items():
        target = data
        *parents, last = dotted.split("__")
        for key in parents:
            target = target.setdefault(key, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return parse_inventory(yaml.safe_dump(data, sort_keys=False), f"{stem}-variant.yml", base_dir=str(ROOT))


def by_kind(arts: list[Artefact], kind: str) -> list[Artefact]:
    found = [a for a in arts if a.kind == kind]
    assert found, f"no artefact of kind {kind}"
    return found


STORAGE = [("replication", "none"), ("replication", "drbd"), ("replication", "shared"), ("drbd", "none"),
           ("drbd", "drbd"), ("shared", "none"), ("shared", "shared")]
MATRIX = [(topology, stack, db, files) for topology in ("two-node", "four-node") for stack in ("pacemaker", "heartbeat")
          for db, files in STORAGE
          # the inventory refuses this one: both pairs cannot mount the one shared device
          if not (topology == "four-node" and db == files == "shared")]


def matrix_case(topology: str, stack: str, databases: str, files: str) -> Inventory:
    """One inventory per topology x stack x storage, built from the examples."""
    base = "two-node-pacemaker" if topology == "two-node" else "four-node-pacemaker"
    changes: dict[str, object] = {"all__vars__hakit__stack": stack,
                                  "all__vars__hakit__storage": {"databases": databases, "files": files},
                                  "all__vars__hakit__drbd": {"resource": "r0", "mount": "/srv/hakit"},
                                  "all__vars__hakit__shared_storage": {"device": "/dev/sdz", "mount": "/srv/hakit"}}
    if databases != "replication":
        changes["all__vars__hakit__mysql"] = {"datadir": "/srv/hakit/mysql"}
    if stack == "heartbeat":
        nodes = ["nagios1", "nagios2"] if topology == "two-node" else ["db1", "db2", "app1", "app2"]
        changes["all__vars__hakit__fencing"] = heartbeat_fencing(nodes)
    return variant(base, **changes)


def heartbeat_fencing(nodes: list[str]) -> list[dict]:
    """One stonith device for every node (heartbeat with block storage needs one)."""
    return [{"name": "ssh", "agent": "external/ssh", "nodes": nodes, "params": {"hostlist": ",".join(nodes)}}]
