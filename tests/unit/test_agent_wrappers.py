"""The wrappers hakit installs as OCF agents and heartbeat resource scripts, run by a real shell."""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from hakit.agents.registry import HEARTBEAT_DIR, NAMES, OCF_PROVIDER_DIR, agent, wrappers


@pytest.fixture
def installed(tmp_path):
    """The wrappers written to tmp_path, calling a stand-in hakit that records its arguments."""
    fake = tmp_path / "bin dir" / "hakit"  # a space: the command is quoted in the script
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s|" "$@" > "$(dirname "$0")/called"\n')
    fake.chmod(0o755)
    paths = {}
    for path, body in wrappers(str(fake)).items():
        target = tmp_path / os.path.basename(path)
        target.write_bytes(body)
        target.chmod(0o755)
        paths[path] = target
    return fake, paths


@pytest.mark.parametrize("name", NAMES)
def test_an_ocf_wrapper_answers_meta_data_itself_with_the_agents_own_text(installed, name):
    fake, paths = installed
    done = subprocess.run([str(paths[f"{OCF_PROVIDER_DIR}/{name}"]), "meta-data"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == agent(name).metadata()
    assert ET.fromstring(done.stdout.split("\n", 2)[2]).get("name") == name  # well-formed, after the DOCTYPE
    assert not (fake.parent / "called").exists()  # no Python started for it


@pytest.mark.parametrize("name", NAMES)
def test_every_other_action_runs_the_installed_hakit(installed, name):
    fake, paths = installed
    for path, kind in ((f"{OCF_PROVIDER_DIR}/{name}", "ocf"), (f"{HEARTBEAT_DIR}/hakit-{name}", "heartbeat")):
        done = subprocess.run([str(paths[path]), "start"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert (fake.parent / "called").read_text() == f"agent|{kind}|{name}|start|"


def test_agents_do_not_import_ssh_or_urllib():
    """Every agent start is a new Python inside a failover: SSH (paramiko, invoke) and urllib cost
    100 ms there for nothing. The agents' imports must stay free of them."""
    import sys

    code = ("import sys, hakit.agents.mariadb_role, hakit.agents.monitoring_master, hakit.agents.watch, "
            "hakit.agents.cli\n"
            "print(' '.join(m for m in ('paramiko', 'invoke', 'fabric', 'urllib.request', 'hakit.remote') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
