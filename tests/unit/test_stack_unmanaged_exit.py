"""stack_unmanaged reads crm_resource's exit status (Result.exited): the attribute absent, by code
alone, means managed. mypy found it read ``returncode``, which a Result does not have: an
answer whose message did not say so raised AttributeError instead (issue 24, item 5)."""

import shutil

from hakit.failover.observe import World, stack_unmanaged
from hakit.inventory.loader import load_inventory
from hakit.remote.fake import FakeRunner


def _inventory(tmp_path):
    shutil.copy("examples/two-node-pacemaker.yml", tmp_path / "inventory.yml")
    return load_inventory(tmp_path / "inventory.yml")


def test_the_attribute_absent_by_exit_status_alone_is_managed(tmp_path):
    inv = _inventory(tmp_path)
    for code in (6, 105):
        runner = FakeRunner("nagios1").on("crm_resource", exited=code, stderr="crm_resource: unset")
        assert stack_unmanaged(inv, World({"nagios1": runner}, {}), ["nagios1"]) is False


def test_another_failure_is_not_known(tmp_path):
    inv = _inventory(tmp_path)
    runner = FakeRunner("nagios1").on("crm_resource", exited=1, stderr="crm_resource: connection refused")
    assert stack_unmanaged(inv, World({"nagios1": runner}, {}), ["nagios1"]) is None
