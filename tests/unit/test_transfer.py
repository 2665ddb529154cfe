"""hakit.remote.transfer.pipe: a stream between two runners' commands, counted, never held whole."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import time

import pytest

from hakit.errors import OperationFailed
from hakit.failover import reseed
from hakit.remote.fake import FakeRunner, Stream
from hakit.remote.local import LocalRunner
from hakit.remote.port import Result, Unreachable
from hakit.remote.transfer import CHUNK, NullProgress, RecordingProgress, RichProgress, pipe


def _pipe(src, dst, **kw):
    args = {"total": None, "progress": NullProgress(), "label": "copy", "timeout": 30}
    args.update(kw)
    return pipe(src, ["mariadb-dump", "--databases", "a"], dst, ["mariadb", "--batch"], **args)


def test_bytes_arrive_intact_after_the_prefix_with_head_tail_and_progress():
    data = os.urandom(3 * CHUNK + 123)
    src = FakeRunner("n1", streams={("mariadb-dump",): data})
    dst = FakeRunner("n2")
    progress = RecordingProgress()
    result = _pipe(src, dst, total=len(data), progress=progress, label="dump a", keep_head=100, keep_tail=50,
                   prefix=b"SET SESSION sql_log_bin=0;\n")
    sink = dst.processes[0]
    assert bytes(sink.received) == b"SET SESSION sql_log_bin=0;\n" + data
    assert sink.stdin_closed and not sink.killed  # a clean end of input
    assert result.nbytes == len(data) and result.head == data[:100] and result.tail == data[-50:]
    assert progress.events[0] == ("start", "dump a", len(data)) and progress.events[-1] == ("finish", "dump a")
    assert progress.done["dump a"] == len(data)  # the prefix is not part of the count
    assert dst.calls == [("mariadb", "--batch")] and src.calls == [("mariadb-dump", "--databases", "a")]


def test_head_and_tail_of_a_short_stream_are_the_whole_stream():
    src = FakeRunner("n1", streams={("mariadb-dump",): b"tiny"})
    result = _pipe(src, FakeRunner("n2"), keep_head=20000, keep_tail=20000)
    assert result.head == b"tiny" and result.tail == b"tiny" and result.nbytes == 4


def test_a_large_stream_moves_in_many_chunks_and_is_never_read_ahead():
    dst = FakeRunner("n2")
    produced = 0
    digest = hashlib.sha256()

    def chunks():
        nonlocal produced
        block = bytes(range(256)) * 4096  # 1 MiB
        for i in range(48):
            # the pipe has written everything read so far before asking for more: it holds at
            # most one chunk, whatever the size of the stream
            assert len(dst.processes[0].received) >= produced - CHUNK
            piece = block[i:] + block[:i]
            produced += len(piece)
            digest.update(piece)
            yield piece

    src = FakeRunner("n1", streams={("mariadb-dump",): Stream(chunks())})
    progress = RecordingProgress()
    result = _pipe(src, dst, total=48 << 20, progress=progress, keep_tail=10)
    advances = [e for e in progress.events if e[0] == "advance"]
    assert result.nbytes == 48 << 20 == sum(e[1] for e in advances)
    assert len(advances) >= 48 * (1 << 20) // CHUNK  # at most CHUNK bytes per step
    assert max(e[1] for e in advances) <= CHUNK
    assert hashlib.sha256(dst.processes[0].received).digest() == digest.digest()


def test_a_failing_source_kills_the_destination_before_it_sees_the_end():
    src = FakeRunner("n1", streams={("mariadb-dump",): Stream(b"CREATE TABLE half", exited=2,
                                                              stderr="warning\nmariadb-dump: Got error: 2013\n")})
    dst = FakeRunner("n2")
    progress = RecordingProgress()
    with pytest.raises(OperationFailed) as err:
        _pipe(src, dst, progress=progress)
    message = str(err.value)
    assert message.startswith("n1: `mariadb-dump --databases a` failed after 17 bytes (exit 2)")
    assert "Got error: 2013" in message
    sink = dst.processes[0]
    assert sink.killed and not sink.stdin_closed  # never told "that was all"
    assert progress.finished == ["copy"]


def test_a_failing_destination_is_named_with_its_stderr():
    src = FakeRunner("n1", streams={("mariadb-dump",): b"x" * 1000})
    dst = FakeRunner("n2", streams={("mariadb",): Stream(exited=1, stderr="ERROR 1064 (42000) at line 3: syntax")})
    with pytest.raises(OperationFailed, match=r"^n2: `mariadb --batch` failed after 1000 bytes \(exit 1\): "
                                              r"ERROR 1064"):
        _pipe(src, dst)


def test_a_destination_that_stops_reading_stops_the_source():
    src = FakeRunner("n1", streams={("mariadb-dump",): b"y" * (5 * CHUNK)})
    dst = FakeRunner("n2", streams={("mariadb",): Stream(exited=1, stderr="ERROR 2006: server has gone away",
                                                         accept=CHUNK + 10)})
    with pytest.raises(OperationFailed, match=r"n2: `mariadb --batch` stopped reading after .* gone away"):
        _pipe(src, dst)
    assert src.processes[0].killed


def test_an_unreachable_destination_stops_the_started_source():
    src = FakeRunner("n1", streams={("mariadb-dump",): b"z"})
    with pytest.raises(Unreachable):
        _pipe(src, FakeRunner("n2", reachable=False))
    assert src.processes[0].killed


def test_strict_fake_refuses_an_unscripted_stream():
    src = FakeRunner("n1", strict=True)
    with pytest.raises(OperationFailed, match=r"n1: .* \(exit 127\): fake: no scripted stream"):
        _pipe(src, FakeRunner("n2"))


# --------------------------------------------------------------------------- real processes


def test_local_processes_stream_with_a_chatty_stderr(tmp_path):
    out = tmp_path / "out"
    # 2 MB on stderr first: unread, it would block the source before its first stdout byte
    program = ("import sys\nsys.stderr.write('e' * 2_000_000); sys.stderr.flush()\n"
               "for i in range(64): sys.stdout.buffer.write(bytes([i]) * 65536)\n")
    result = pipe(LocalRunner("n1"), [sys.executable, "-c", program], LocalRunner("n2"),
                  ["sh", "-c", 'cat > "$1"', "sh", str(out)], total=None, progress=NullProgress(), label="local",
                  timeout=60, keep_head=3, keep_tail=3, prefix=b"P")
    expected = b"".join(bytes([i]) * 65536 for i in range(64))
    assert out.read_bytes() == b"P" + expected
    assert result.nbytes == len(expected) and result.head == b"\0\0\0" and result.tail == b"???"


def test_local_destination_that_exits_early_fails_the_pipe():
    with pytest.raises(OperationFailed, match=r"n2: `sh -c 'head -c 10 >/dev/null; echo bad >&2; exit 3'` "
                                              r"(stopped reading|failed) .*\(exit 3\): bad"):
        pipe(LocalRunner("n1"), ["yes"], LocalRunner("n2"), ["sh", "-c", "head -c 10 >/dev/null; echo bad >&2; exit 3"],
             total=None, progress=NullProgress(), label="local", timeout=30)


def test_local_failing_source_reports_its_stderr(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OperationFailed, match=r"n1: `sh -c 'echo partial; echo boom >&2; exit 4'` failed after "
                                              r"8 bytes \(exit 4\): boom"):
        pipe(LocalRunner("n1"), ["sh", "-c", "echo partial; echo boom >&2; exit 4"], LocalRunner("n2"),
             ["sh", "-c", 'cat > "$1"', "sh", str(out)], total=None, progress=NullProgress(), label="l", timeout=30)


def test_a_stalled_transfer_times_out_and_stops_both_sides():
    started = time.monotonic()
    with pytest.raises(OperationFailed, match="timed out after 0.5 s"):
        pipe(LocalRunner("n1"), ["sleep", "30"], LocalRunner("n2"), ["cat"], total=None, progress=NullProgress(),
             label="stall", timeout=0.5)
    assert time.monotonic() - started < 10


def test_missing_program_is_a_command_failure():
    with pytest.raises(OperationFailed, match="n1: `/nonexistent/dump` exited 127"):
        pipe(LocalRunner("n1"), ["/nonexistent/dump"], LocalRunner("n2"), ["cat"], total=None,
             progress=NullProgress(), label="x", timeout=5)


def test_rich_progress_draws_bytes_and_closes_at_the_real_size():
    from rich.console import Console

    buffer = io.StringIO()
    bar = RichProgress(Console(file=buffer, force_terminal=True, width=120))
    bar.start("dump opsview", 1000)
    bar.advance(600)
    bar.advance(900)  # past the estimate
    task = bar._bar.tasks[0]
    assert task.completed == 1500 and task.total >= 1500
    bar.finish()
    assert "dump opsview" in buffer.getvalue() and "1.5/1.5 KiB" in buffer.getvalue()  # what moved
    bar.finish()  # twice is harmless


def test_init_seed_streams_the_dump_into_a_reset_and_emptied_standby():
    """init's seed_by_dump, through reseed.copy_by_dump and pipe, on fakes: the order of things
    on the standby and what its import reads."""
    from types import SimpleNamespace

    from hakit.inventory.model import MySQL
    from hakit.mysql.gtid import Position
    from hakit.pair.init import seed_by_dump
    from hakit.remote.port import Result

    inv = SimpleNamespace(settings=SimpleNamespace(mysql=MySQL(databases=["opsview", "runtime"])))
    dump = b"-- MariaDB dump\n-- SET GLOBAL gtid_slave_pos='0-1-41';\nCREATE TABLE t (id INT);\n" + b"-- x\n" * 9000

    def answer(args, data):
        if b"SHOW DATABASES" in data:
            return Result(args, 0, "opsview\nruntime\nmysql\n")
        if b"engine" in data:  # both hold a MyISAM table: dumped under the global read lock
            return Result(args, 0, "opsview\nruntime\n")
        return Result(args, 0, "123456\n")

    active = FakeRunner("n1", responses={("mariadb",): answer}, streams={("mariadb-dump",): dump})
    # the standby holds a database of its own the inventory does not list: it does not survive
    standby = FakeRunner("n2", responses={("mariadb",): lambda args, data: Result(
        args, 0, "opsview\nmine\nmysql\n#mysql50#lost+found\n" if b"SHOW DATABASES" in data else "")})
    said: list[str] = []
    assert seed_by_dump(inv, active, standby, said.append) == Position.parse("0-1-41")

    (dump_argv,) = [p.argv for p in active.processes]
    assert dump_argv[:1] == ("mariadb-dump",) and "--lock-all-tables" in dump_argv
    assert dump_argv[-3:] == ("--databases", "opsview", "runtime")  # every database but the server's own
    steps = list(zip(standby.calls, standby.inputs, strict=True))
    assert steps[0][1] == b"SHOW DATABASES"
    assert steps[1][1] == b"STOP SLAVE; RESET MASTER;"
    assert steps[2][1].startswith(b"SET SESSION sql_log_bin = 0;\n")
    assert steps[2][1].endswith(b"DROP DATABASE IF EXISTS `mine`;\nDROP DATABASE IF EXISTS `opsview`;\n"
                                b"DROP DATABASE IF EXISTS `runtime`;\n")  # never mysql, nor a stray folder
    assert steps[3][0] == ("mariadb", "--batch") and steps[3][1] == b"SET SESSION sql_log_bin = 0;\n" + dump
    assert standby.processes[0].stdin_closed and not standby.processes[0].killed
    assert steps[4][1] == b"SET GLOBAL gtid_slave_pos = '0-1-41'" and len(steps) == 5
    assert any("under the global read lock" in line and "0-1-41" in line for line in said)


# --------------------------------------------------------------------------- stopping the target's server


def _server_node(systemd: bool) -> FakeRunner:
    node = FakeRunner("n2", strict=True)
    node.on("test", "-d", "/run/systemd/system", exited=0 if systemd else 1)
    node.responses[("mariadb",)] = lambda argv, data: Result(argv, 0, "/run/mysqld/mysqld.pid\n"
                                                             if b"@@pid_file" in data else "")
    node.on("cat", "--", "/run/mysqld/mysqld.pid", stdout="4242\n")
    node.on("sh", "-c", reseed.WAIT_GONE)
    return node


def test_without_systemd_the_server_is_shut_down_and_waited_for_before_the_service_stop():
    node, stopped = _server_node(systemd=False), []
    assert reseed.stop_server(node, service_stop=lambda: stopped.append(list(node.calls)), wait=2.0)
    sql = [data for argv, data in zip(node.calls, node.inputs, strict=True) if argv[0] == "mariadb"]
    assert sql == [b"SELECT @@pid_file", b"SHUTDOWN"]
    waits = [argv for argv in node.calls if argv[:3] == ("sh", "-c", reseed.WAIT_GONE)]
    assert waits == [("sh", "-c", reseed.WAIT_GONE, "hakit-wait", "4242", "40")]
    assert len(stopped) == 1 and stopped[0][-1] == waits[0], "the service's stop comes after the wait"


def test_with_systemd_only_the_service_stop_runs():
    node, stopped = _server_node(systemd=True), []
    assert not reseed.stop_server(node, service_stop=lambda: stopped.append(1))
    assert stopped == [1] and not [argv for argv in node.calls if argv[0] in ("mariadb", "sh")]


def test_a_server_that_does_not_answer_is_left_to_the_service_stop():
    node, stopped = _server_node(systemd=False), []
    node.responses[("mariadb",)] = Result(("mariadb",), 1, "", "ERROR 2002 (HY000): Can't connect")
    assert not reseed.stop_server(node, service_stop=lambda: stopped.append(1))
    assert stopped == [1] and not any(data == b"SHUTDOWN" for data in node.inputs)
