"""The bounded self-fence on a real MariaDB (hakit.agents.fence_self, issue 21).

``FLUSH TABLES WITH READ LOCK`` waits behind a running write statement, and behind a commit
that waits for a semi-synchronous acknowledgement (until ``rpl_semi_sync_master_timeout``,
after which the commit is confirmed to its client, asynchronously). Either one would keep an
isolated active writable, and the second would hand a client an OK that a resync later
discards. The self-fence must end both within its bound: a read lock that waits at most
``lock_wait``, then SIGKILL; and the waiting client must never get its OK.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pymysql
import pytest
from mariadbkit import throwaway_mariadb

from hakit.agents.fence_self import LocalServer, make_not_writable

pytestmark = pytest.mark.integration

LOCK_WAIT = 1.0


def _server(db) -> tuple[LocalServer, int]:
    pid = int(Path(db.query("SELECT @@pid_file AS f")[0]["f"]).read_text().split()[0])

    def pids() -> frozenset[int]:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return frozenset()
        return frozenset() if state in ("Z", "X") else frozenset({pid})

    return LocalServer(db.unix_socket, pids=pids), pid


class Client(threading.Thread):
    """One statement from an application's connection; what came back (OK or the error)."""

    def __init__(self, sock: str, statements: list[str]):
        super().__init__(daemon=True)
        self.sock, self.statements = sock, statements
        self.outcome: str | None = None

    def run(self) -> None:
        try:
            conn = pymysql.connect(unix_socket=self.sock, user="root", autocommit=True, read_timeout=120)
            with conn.cursor() as cur:
                for statement in self.statements:
                    cur.execute(statement)
            self.outcome = "OK"
        except pymysql.MySQLError as exc:
            self.outcome = f"error {exc.args[0]}"


def _prepare(db) -> None:
    db.query("CREATE DATABASE app")
    db.query("CREATE TABLE app.t (id INT PRIMARY KEY, n INT) ENGINE=InnoDB")
    db.query("INSERT INTO app.t VALUES (1, 0)")


def _wait_running(db, words: str) -> None:
    for _ in range(100):
        rows = db.query("SELECT state, info FROM information_schema.processlist WHERE info LIKE %s",
                        (f"%{words}%",))
        if any(r["info"] and "processlist" not in r["info"] for r in rows):
            return
        time.sleep(0.05)
    pytest.fail(f"the statement ({words}) did not start")


def test_a_long_write_statement_does_not_hold_the_self_fence(tmp_path_factory):
    with throwaway_mariadb(tmp_path_factory, "fence-long") as db:
        _prepare(db)
        server, pid = _server(db)
        client = Client(db.unix_socket, ["UPDATE app.t SET n = n + 1 + SLEEP(60) WHERE id = 1"])
        client.start()
        _wait_running(db, "SLEEP(60)")
        said: list[str] = []
        started = time.monotonic()
        outcome = make_not_writable(server, deadline=10, lock_wait=LOCK_WAIT, say=said.append)
        took = time.monotonic() - started
        client.join(timeout=10)
        assert outcome.proven, said
        assert outcome.steps == ["set_read_only", "kill"], said
        assert took < LOCK_WAIT + 5, took  # the bound, with room for a loaded machine
        assert not os.path.exists(f"/proc/{pid}") or server.pids() == frozenset()
        assert client.outcome is not None and client.outcome != "OK"


def test_a_commit_waiting_for_a_semi_sync_acknowledgement_is_never_confirmed(tmp_path_factory):
    # no replica will ever acknowledge, and the server waits for one for 60 s: the production
    # situation of an isolated active (the lab's short timeout hid it)
    with throwaway_mariadb(tmp_path_factory, "fence-semisync", "--log-bin=bin", "--server-id=1") as db:
        _prepare(db)
        db.query("SET GLOBAL rpl_semi_sync_master_timeout = 60000")
        db.query("SET GLOBAL rpl_semi_sync_master_wait_no_slave = ON")
        db.query("SET GLOBAL rpl_semi_sync_master_enabled = ON")
        assert db.query("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'")[0]["Value"] == "ON"
        server, pid = _server(db)
        client = Client(db.unix_socket, ["INSERT INTO app.t VALUES (2, 2)"])
        client.start()
        for _ in range(100):
            waiting = int(db.query("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_wait_sessions'")[0]["Value"])
            if waiting:
                break
            time.sleep(0.05)
        assert waiting == 1, "the commit is not waiting for an acknowledgement"
        said: list[str] = []
        outcome = make_not_writable(server, deadline=10, lock_wait=LOCK_WAIT, say=said.append)
        client.join(timeout=10)
        assert outcome.proven and outcome.steps == ["set_read_only", "kill"], said
        # the client never got an OK for the commit a resync would discard (invariant 10)
        assert client.outcome is not None and client.outcome != "OK", client.outcome
