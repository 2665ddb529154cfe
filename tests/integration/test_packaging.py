"""The wheel carries the templates: an unpacked wheel renders outside the repository, identically."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys, hakit, hakit.render.render as r
from hakit.inventory.loader import load_inventory
from hakit.inventory.secrets import Secrets
import yaml
assert not hakit.__file__.startswith(sys.argv[1]), hakit.__file__  # not the repository's copy
inv = load_inventory(sys.argv[2])
sec = Secrets.model_validate(yaml.safe_load(open(sys.argv[3])))
for a in r.render_all(inv, sec):
    sys.stdout.buffer.write(a.node.encode() + b" " + a.path.encode() + b"\\n" + a.content)
"""


def test_an_installed_wheel_renders_with_its_own_templates(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "wheel"), "-q"], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "wheel").glob("hakit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "hakit/templates/pacemaker/cib.xml.j2" in names and "hakit/templates/mysql/hakit.cnf.j2" in names
    # the namespace lab stays in the checkout: nodes and admin machines never install it
    assert [n for n in names if n.startswith("hakit/lab/")] == []
    assert any(n.startswith("hakit-") and n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    example = REPO / "examples" / "two-node-pacemaker.yml"
    secrets = REPO / "tests" / "fixtures" / "secrets.yml"

    def render(pythonpath: str, cwd: Path) -> bytes:
        proc = subprocess.run([sys.executable, "-c", PROGRAM, str(REPO / "hakit"), str(example), str(secrets)],
                              capture_output=True, cwd=cwd, env={"PYTHONPATH": pythonpath, "PATH": "/usr/bin:/bin"},
                              timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout

    from_wheel = render(str(site), tmp_path)
    no_lab = subprocess.run([sys.executable, "-c", "import sys; from hakit.cli import main; sys.exit(main())", "lab",
                             "up", "--dir", str(tmp_path / "lab")], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert no_lab.returncode == 2 and "the namespace lab is not part of this installation" in no_lab.stderr, no_lab
    assert not (tmp_path / "lab").exists()
    assert b"primitive db-role ocf:hakit:mariadb-role" in from_wheel
    reference = subprocess.run([sys.executable, "-c", PROGRAM.replace("assert not", "assert"), str(REPO / "hakit"),
                                str(example), str(secrets)], capture_output=True, cwd=REPO, timeout=120)
    assert reference.returncode == 0, reference.stderr.decode()
    assert from_wheel == reference.stdout
