"""A throwaway MariaDB server for the integration tests (importable by test modules)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def throwaway_mariadb(tmp_path_factory, name: str, *options: str) -> Iterator:
    """A throwaway mariadbd on a unix socket only (no networking), with ``options``; yields a
    :class:`~hakit.mysql.pymysql_adapter.PyMySQLDatabase` of its root (socket authentication); stopped after."""
    from hakit.mysql.facts import DatabaseUnreachable
    from hakit.mysql.pymysql_adapter import PyMySQLDatabase

    if os.geteuid() != 0:
        pytest.skip("the throwaway mariadbd runs as root here (CI runs as root)")
    if not shutil.which("mariadbd") and not os.path.exists("/usr/sbin/mariadbd"):
        pytest.fail("mariadbd missing: ./scripts/setup installs mariadb-server")
    d = tmp_path_factory.mktemp(name)
    datadir, sock = d / "data", d / "mysqld.sock"
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
                    "--auth-root-authentication-method=socket", "--skip-test-db"],
                   check=True, capture_output=True, timeout=120)
    proc = subprocess.Popen(["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={datadir}", f"--socket={sock}",
                             "--skip-networking", "--user=root", *options, f"--pid-file={d}/m.pid",
                             f"--log-error={d}/error.log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = PyMySQLDatabase("sandbox", unix_socket=str(sock), user="root")
    try:
        for _ in range(300):
            try:
                db.query("SELECT 1")
                break
            except DatabaseUnreachable:
                time.sleep(0.1)
        else:
            pytest.fail("throwaway mariadbd did not start: " + (d / "error.log").read_text()[-2000:])
        yield db
    finally:
        db.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
