"""The lab's plan (pure) and its command line's answers to mistakes (no lab built)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from hakit.cli import main
from hakit.errors import InputError, SafetyRefusal
from hakit.lab.spec import plan_lab
from hakit.lab.subnet import Route, check_subnet, overlapping


def hakit(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "hakit.cli", *args]
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")


def test_two_node_plan_addresses_and_vip():
    spec = plan_lab("/srv/lab", "two-node", "pacemaker", "10.9.8.0/24")
    assert [(n.name, n.address, n.pair) for n in spec.nodes] == [("n1", "10.9.8.11", "main"),
                                                                  ("n2", "10.9.8.12", "main")]
    assert spec.vips == {"main": "10.9.8.100"} and spec.host_address == "10.9.8.1"
    assert [n.link for n in spec.nodes] == ["hkl-n1", "hkl-n2"]


def test_four_node_plan_has_a_db_and_an_app_pair():
    spec = plan_lab("/srv/lab", "four-node", "pacemaker")
    assert [(n.name, n.pair) for n in spec.nodes] == [("db1", "db"), ("db2", "db"), ("app1", "app"), ("app2", "app")]
    assert set(spec.vips) == {"db", "app"}


@pytest.mark.parametrize("subnet, rule", [("10.0.0.0/16", "needs a /24"), ("8.8.8.0/24", "private range"),
                                          ("10.0.0.1/24", "host bits"), ("nonsense", "write it like")])
def test_bad_subnets_are_refused_with_the_rule(subnet, rule):
    with pytest.raises(InputError, match=rule):
        plan_lab("/srv/lab", "two-node", "pacemaker", subnet)


def test_overlap_names_the_route_and_ignores_default_and_the_labs_own_links():
    routes = [Route("10.213.0.0/16", "eth1", "route 10.213.0.0/16 dev eth1"),
              Route("10.213.47.0/24", "hkl-br0", "route 10.213.47.0/24 dev hkl-br0"),
              Route("192.0.2.0/24", "eth0", "route 192.0.2.0/24 dev eth0")]
    assert [r.what for r in overlapping("10.213.47.0/24", routes)] == ["route 10.213.0.0/16 dev eth1"]
    assert overlapping("10.214.0.0/24", routes) == []


@pytest.mark.lab
def test_a_subnet_overlapping_this_machine_is_refused_and_nothing_is_made(root, tmp_path):
    route = json.loads(subprocess.run(["ip", "-j", "-4", "route"], capture_output=True, text=True).stdout)
    taken = next((r["dst"] for r in route if r.get("dst", "default") != "default" and r["dst"].endswith("/24")), None)
    if taken is None:
        pytest.skip("this machine has no /24 route to collide with")
    with pytest.raises(SafetyRefusal):
        check_subnet(taken)
    result = hakit("lab", "up", "--dir", str(tmp_path / "lab"), "--subnet", taken)
    assert result.returncode == 3, result.stderr
    assert f"overlaps this machine's network (route {taken}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "lab").exists()
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert "hkl-" not in links


@pytest.mark.lab
def test_without_root_the_lab_refuses_with_exit_3(root, tmp_path):
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to run as another user")
    result = hakit("lab", "up", "--dir", str(tmp_path / "lab"), user="65534")
    assert result.returncode == 3, result.stderr
    assert "needs root" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["status"], ["exec", "n1", "--", "true"], ["restart-node", "n1"]])
def test_commands_on_a_missing_lab_are_exit_2(args, tmp_path, capsys):
    if os.geteuid() != 0 and args[0] != "status":
        pytest.skip("needs root to get past the root check")
    assert main(["lab", args[0], "--dir", str(tmp_path / "none"), *args[1:]]) == 2
    err = capsys.readouterr().err
    assert "no lab in" in err and "Traceback" not in err


def test_an_unknown_fault_is_a_usage_error(capsys):
    assert main(["lab", "fault", "melt", "n1"]) == 2
    assert "'melt' is not one of" in capsys.readouterr().err


@pytest.mark.parametrize("stack", ["pacemaker", "heartbeat"])
def test_timings_profiles_give_a_loadable_inventory(stack, tmp_path):
    """--timings stack-defaults: the stacks' own membership timings, through the normal loader."""
    import yaml

    from hakit.inventory.loader import load_inventory
    from hakit.lab.labinventory import inventory_data

    spec = plan_lab(str(tmp_path / "lab"), "two-node", stack)
    for profile, token, deadtime, delay in (("hakit", 500, 2, 1), ("stack-defaults", 3000, 30, 0)):
        path = tmp_path / f"{profile}.yml"
        path.write_text(yaml.safe_dump(inventory_data(spec, profile)))
        inv = load_inventory(str(path))
        assert (inv.settings.timing.corosync.token, inv.settings.timing.heartbeat.deadtime) == (token, deadtime)
        if stack == "pacemaker":  # the lab's fence device is fast: the fence race needs 1 s, not 5
            assert inv.settings.pacemaker.priority_fencing_delay == delay
