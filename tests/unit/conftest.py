"""Unit tests never touch this machine's own files: the node-side paths hakit's agents write
(the generation floor, the resync marker, the watcher's log) point into each test's temporary folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _node_files_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    from hakit import flags

    here = tmp_path_factory.mktemp("node-files")
    monkeypatch.setattr(flags, "GENERATION_FLOOR", str(here / "generation-floor"))
    monkeypatch.setattr(flags, "RESYNC_MARKER", str(here / "resync-pending"))
    from hakit.agents import watch

    monkeypatch.setattr(watch, "LOG", str(here / "watch.log"))
