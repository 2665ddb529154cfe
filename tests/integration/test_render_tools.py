"""The rendered files through the real programs that read them (crm_verify, crmsh, drbdadm,
mariadbd, nagios4, corosync); each skips when its tool is missing. They run real programs (crmsh
alone takes a second or two per CIB), so they live here and not among the unit tests of
``tests/unit/test_render.py``, whose helpers they share (``tests/renderkit.py``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from renderkit import MATRIX, by_kind, fixture_secrets, matrix_case
from unitkit import EXAMPLE_NAMES, EXAMPLES, example_inventory

from hakit.inventory.model import Inventory
from hakit.inventory.secrets import Secrets
from hakit.render.render import render_all

pytestmark = pytest.mark.integration
EXAMPLE_FILES = [EXAMPLES / f"{name}.yml" for name in EXAMPLE_NAMES]


@pytest.fixture(scope="module")
def secrets() -> Secrets:
    return fixture_secrets()


def example(stem: str) -> Inventory:
    return example_inventory(stem)


def _tool(name: str) -> str:
    found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None)
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


PACEMAKER_CASES = ["two-node-pacemaker", "four-node-pacemaker"] + [
    "-".join(c) for c in MATRIX if c[1] == "pacemaker" and c[2:] != ("replication", "none")]


def _pacemaker_case(name: str) -> Inventory:
    if name in ("two-node-pacemaker", "four-node-pacemaker"):
        return example(name)
    case = next(c for c in MATRIX if "-".join(c) == name)
    return matrix_case(*case)


@pytest.mark.parametrize("case", PACEMAKER_CASES)
def test_crm_verify_accepts_the_cib(case: str, tmp_path: Path, secrets: Secrets) -> None:
    tool = _tool("crm_verify")
    xml = by_kind(render_all(_pacemaker_case(case), secrets), "cib-xml")[0]
    (tmp_path / "cib.xml").write_bytes(xml.content)
    result = subprocess.run([tool, "--xml-file", str(tmp_path / "cib.xml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", PACEMAKER_CASES)
def test_crm_script_loads_to_the_same_configuration_as_the_xml(case: str, tmp_path: Path,
                                                               secrets: Secrets) -> None:
    crm, cibadmin = _tool("crm"), _tool("cibadmin")
    arts = render_all(_pacemaker_case(case), secrets)
    (tmp_path / "cib.crm").write_bytes(by_kind(arts, "cib-crm")[0].content)
    (tmp_path / "cib.xml").write_bytes(by_kind(arts, "cib-xml")[0].content)
    empty = subprocess.run([cibadmin, "--empty"], capture_output=True, text=True, check=True).stdout
    (tmp_path / "loaded.xml").write_text(empty)
    # crmsh refuses agents it cannot find (the hakit agents arrive later; fence agents may be
    # absent here): check_frequency=never in a private HOME turns that lookup off
    home = tmp_path / "home"
    (home / ".config" / "crm").mkdir(parents=True)
    (home / ".config" / "crm" / "crm.conf").write_text("[core]\ncheck_frequency = never\n")
    env = dict(os.environ, HOME=str(home), CIB_file=str(tmp_path / "loaded.xml"))
    load = subprocess.run([crm, "configure", "load", "update", str(tmp_path / "cib.crm")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert load.returncode == 0, load.stdout + load.stderr

    def configuration(path: Path) -> ET.Element:
        conf = ET.parse(path).getroot().find("configuration")
        for parent in conf.iter():
            for child in [c for c in parent if not isinstance(c.tag, str)]:
                parent.remove(child)  # comments: crmsh attaches the script's to elements
        return conf

    def canon(element: ET.Element) -> list[tuple]:
        return sorted((e.tag, tuple(sorted(e.attrib.items()))) for e in element.iter() if isinstance(e.tag, str))

    # same elements with the same attributes (ids included); by hand, 'crm_diff --no-version
    # -o cib.xml -n loaded.xml' shows the difference readably when this fails
    assert canon(configuration(tmp_path / "loaded.xml")) == canon(configuration(tmp_path / "cib.xml"))


def test_drbdadm_parses_the_resource(tmp_path: Path, secrets: Secrets) -> None:
    tool = _tool("drbdadm")
    art = by_kind(render_all(example("two-node-heartbeat-drbd"), secrets), "drbd")[0]
    (tmp_path / "r0.res").write_bytes(art.content)
    result = subprocess.run([tool, "-c", str(tmp_path / "r0.res"), "dump"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "after-sb-0pri" in result.stdout and "cram-hmac-alg" in result.stdout


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=list(EXAMPLE_NAMES))
def test_mariadbd_reads_the_fragment(path: Path, tmp_path: Path, secrets: Secrets) -> None:
    tool = _tool("mariadbd")
    art = by_kind(render_all(example(path.stem), secrets), "mysql-cnf")[0]
    (tmp_path / "my.cnf").write_bytes(art.content)
    result = subprocess.run([tool, f"--defaults-file={tmp_path / 'my.cnf'}", "--help", "--verbose"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^read-only\s+TRUE$", result.stdout, re.M)
    assert re.search(r"^innodb-autoinc-lock-mode\s+0$", result.stdout, re.M)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=list(EXAMPLE_NAMES))
def test_nagios_verifies_the_fragment_beside_debian_objects(path: Path, secrets: Secrets) -> None:
    tool = _tool("nagios4")
    main = Path("/etc/nagios4/nagios.cfg")
    if not main.exists():
        pytest.skip("Debian's /etc/nagios4/nagios.cfg is not installed")
    # nagios4 reads the object files as the nagios user: pytest's tmp_path (0700) is too private
    tmp_path = Path(tempfile.mkdtemp(prefix="hakit-nagios-"))
    tmp_path.chmod(0o755)
    art = by_kind(render_all(example(path.stem), secrets), "nagios")[0]
    (tmp_path / "hakit.cfg").write_bytes(art.content)
    config = re.sub(r"^cfg_dir=/etc/nagios4/conf\.d$", f"cfg_file={tmp_path / 'hakit.cfg'}",
                    main.read_text(), flags=re.M)
    (tmp_path / "nagios.cfg").write_text(config)
    try:
        result = subprocess.run([tool, "-v", str(tmp_path / "nagios.cfg")], capture_output=True, text=True)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Total Errors:   0" in result.stdout


@pytest.mark.parametrize("stem", ["two-node-pacemaker", "four-node-pacemaker"])
def test_corosync_accepts_the_config(stem: str, tmp_path: Path, secrets: Secrets) -> None:
    corosync, unshare = _tool("corosync"), _tool("unshare")
    if os.geteuid() != 0:
        pytest.skip("needs root for a private mount and network namespace")
    inv = example(stem)
    arts = [a for a in render_all(inv, secrets) if a.node == inv.nodes[0].name and a.kind.startswith("corosync")]
    for art in arts:
        (tmp_path / Path(art.path).name).write_bytes(art.content)
    # corosync -t wants its key at /etc/corosync/authkey, its log folder, and a local address
    # that is one of the nodes: give it all three in private namespaces (no traffic leaves)
    script = (f"ip link set lo up && ip addr add {inv.nodes[0].address}/32 dev lo && "
              f"mount -t tmpfs tmpfs /etc/corosync && cp {tmp_path}/corosync.conf {tmp_path}/authkey /etc/corosync/ && "
              f"mount -t tmpfs tmpfs /var/log && mkdir -p /var/log/cluster && {corosync} -t; "
              f"rc=$?; cat /var/log/cluster/corosync.log; exit $rc")
    result = subprocess.run([unshare, "-m", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
