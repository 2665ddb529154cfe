"""Pure pieces of init: the dump's GTID position and the step list."""

import pytest

from hakit.errors import OperationFailed
from hakit.gtid import Position
from hakit.init import _dump_position, plan_init
from hakit.inventory import load_inventory


def test_dump_position_at_the_top_with_the_global_lock():
    dump = b"-- MariaDB dump\n-- SET GLOBAL gtid_slave_pos='0-1-41';\nCREATE TABLE t (id INT);\n" + b"x" * 50000
    assert _dump_position(dump) == Position.parse("0-1-41")


def test_dump_position_at_the_end_with_a_single_transaction():
    dump = b"-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;\n" + b"INSERT ...;\n" * 10000 + \
        b"-- SET GLOBAL gtid_slave_pos='0-1-7,1-2-3';\n-- Dump completed\n"
    assert _dump_position(dump) == Position.parse("0-1-7,1-2-3")


def test_a_dump_without_a_position_is_refused():
    with pytest.raises(OperationFailed, match="carries no GTID position"):
        _dump_position(b"CREATE TABLE t (id INT);\n")


def test_init_steps_are_in_the_contract_order():
    plan = plan_init(load_inventory("examples/four-node-pacemaker.yml"))
    actions = [s.action for s in plan.steps]
    assert actions[0] == "preflight"
    order = ["roles", "seed", "schema", "replication", "writable", "resources", "keys", "sync"]
    assert [a for a in actions if a in order] == order
    assert actions.count("install") == 4 and actions.count("users") == 2  # users only on the db pair


def test_heartbeat_restart_is_stop_then_start_without_the_init_scripts_sleep() -> None:
    from hakit.remote import FakeRunner
    from hakit.services import service

    runner = FakeRunner().on("test", "-d", "/run/systemd/system", exited=1)
    assert service(runner, "heartbeat", "restart").ok
    assert [c for c in runner.calls if c[0] != "test"] == [("/etc/init.d/heartbeat", "stop"),
                                                            ("/etc/init.d/heartbeat", "start")]
    runner = FakeRunner().on("test", "-d", "/run/systemd/system", exited=1).on("/etc/init.d/heartbeat", "stop",
                                                                             exited=1)
    assert not service(runner, "heartbeat", "restart", warn=True).ok  # a failed stop: no start
    assert ("/etc/init.d/heartbeat", "start") not in runner.calls
