"""The agent server: hakit's agent code loaded once per node, a forked worker per stack call.

Started in the background by the first ``hakit agent ocf|heartbeat ...`` call that finds none
(:mod:`hakit.agents.server_client`), as root, on a node. It listens on ``/run/hakit/agent.sock`` (a
directory only root can enter; a caller must be the server's own user, checked with the
socket's credentials), imports the agents' modules, and for each call forks a worker that takes
over the caller's standard input, output and error, environment, working directory and umask,
runs the same code a separate ``hakit`` process would (:func:`hakit.cli.main`), and sends back
its exit status. Each worker starts from the server's state, which never holds a connection, a
thread or anything read from the inventory: the inventory and secrets are read by each worker,
as before. What the server saves is Python's start and the imports, about 0.3 s of each call.

The server exits, and callers run their actions themselves, when hakit's code changes under it
(an upgrade): a call finds the code's stamp changed and is refused. One server per node (a
lock); the lab's node restart and a reboot end it with the node, and the next call starts one.

Workers that are not monitors log one line to ``/var/log/hakit/agent-server.log``.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hakit.agents.server_client import ACCEPTED, EXITED, GO, SOCKET, STALE

LOCK = "/run/hakit/agent.lock"
LOG = "/var/log/hakit/agent-server.log"
#: the module whose ``main(argv)`` a worker runs: the CLI, named (as a console script names its
#: entry point) rather than imported, since the CLI holds this server's own command (``hakit
#: agent server``): an import would close a circle between the two front ends
CLI = "hakit.cli"
#: what every worker would otherwise import itself
PRELOAD = (CLI, "hakit.agents.cli", "hakit.agents.registry", "hakit.agents.mariadb_role",
           "hakit.agents.monitoring_master", "hakit.agents.watch", "hakit.agents.context",
           "hakit.agents.processes", "hakit.agents.handover")
#: a request is a small JSON document (arguments, environment)
MAX_REQUEST = 256 * 1024
#: seconds a caller has to send its request once connected
REQUEST_WITHIN = 2.0
#: actions not worth a log line (every few seconds)
QUIET_ACTIONS = frozenset({"monitor", "status", "meta-data", "validate-all"})


def code_stamp(package: Path | None = None) -> str:
    """A digest of hakit's source files (names, sizes, modification times): changes with any
    upgrade or edit of the installed code."""
    root = package or Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        try:
            st = path.stat()
        except OSError:
            continue
        digest.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def run_cli(argv: list[str]) -> int:
    """Run ``hakit argv`` as a separate ``hakit`` process would (:data:`CLI`'s ``main``)."""
    return importlib.import_module(CLI).main(argv)


def peer_allowed(conn: socket.socket) -> bool:
    """Only the server's own user (root) may have it run anything."""
    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, uid, _gid = struct.unpack("3i", raw)
    return uid == os.geteuid()


def _log(line: str, log: str | None) -> None:
    if log is None:
        return
    try:
        Path(log).parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
    except OSError:
        pass


def _worker(conn: socket.socket, request: dict, fds: list[int], run: Callable[[list[str]], int],
            log: str | None) -> None:
    """The forked worker: becomes the caller's process in all that the code can see, runs, answers,
    exits. Never returns."""
    code = 1
    done = threading.Event()
    started = time.monotonic()
    argv = [str(a) for a in request.get("argv", [])]
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the code waits for its own subprocesses
        os.setpgid(0, 0)  # its own group: killed whole when the caller dies
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request.get("env", {}).items()})
        time.tzset()  # the caller's TZ, not the one the server started with (log timestamps)
        os.umask(int(request.get("umask", 0o022)))
        try:
            os.chdir(str(request.get("cwd", "/")))
        except OSError:
            os.chdir("/")
        sys.argv = ["hakit", *argv]
        import random

        random.seed()

        def die_with_caller() -> None:
            try:
                conn.recv(1)  # the caller never writes again: this returns when it is gone
            except OSError:
                pass
            if not done.is_set():
                os.killpg(0, signal.SIGKILL)

        conn.send(ACCEPTED)
        conn.settimeout(None)
        if conn.recv(1) != GO:  # the caller gave up waiting (or died) before it committed to us
            done.set()
            os._exit(1)
        threading.Thread(target=die_with_caller, daemon=True).start()
        code = run(argv)
        code = 0 if code is None else int(code)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 — a worker reports any failure as its exit status
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        done.set()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        code &= 0xFF
        if not set(argv) & QUIET_ACTIONS:
            _log(f"{' '.join(argv)}: exit {code} in {time.monotonic() - started:.3f}s (pid {os.getpid()})", log)
        try:
            conn.send(EXITED + bytes([code]))
        except OSError:
            pass
        os._exit(code)


def serve(socket_path: str = SOCKET, lock_path: str = LOCK, *, run: Callable[[list[str]], int] = run_cli,
          stamp: Callable[[], str] = code_stamp, preload: tuple[str, ...] = PRELOAD,
          log: str | None = LOG) -> int:
    """Serve until hakit's code changes (or the node goes). 0 also when another server runs."""
    folder = os.path.dirname(socket_path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another server runs
    for name in preload:
        importlib.import_module(name)
    started_stamp = stamp()
    try:
        os.unlink(socket_path)  # a dead server's (we hold the lock)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    mask = os.umask(0o077)
    try:
        listener.bind(socket_path)
    finally:
        os.umask(mask)
    listener.listen(64)
    ours = os.stat(socket_path).st_ino
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers reaped by the kernel
    _log(f"serving on {socket_path} (pid {os.getpid()})", log)
    try:
        while True:
            conn, _ = listener.accept()
            fds: list[int] = []
            try:
                if not peer_allowed(conn):
                    continue
                conn.settimeout(REQUEST_WITHIN)  # a caller that connects and sends nothing blocks no one
                try:
                    message, fds, _flags, _addr = socket.recv_fds(conn, MAX_REQUEST, 3)
                    request = json.loads(message)
                except (OSError, ValueError):
                    continue
                if len(fds) != 3 or not isinstance(request, dict):
                    continue
                if stamp() != started_stamp:
                    conn.send(STALE)
                    _log("hakit's code changed: exiting (the next call starts a new server)", log)
                    return 0
                if os.fork() == 0:
                    listener.close()
                    os.close(lock)  # the next server's lock is not a worker's business
                    _worker(conn, request, fds, run, log)
            finally:
                for fd in fds:
                    os.close(fd)
                conn.close()
    finally:
        try:
            if os.stat(socket_path).st_ino == ours:
                os.unlink(socket_path)
        except OSError:
            pass
        listener.close()
        os.close(lock)


def main() -> int:
    os.chdir("/")
    return serve()


if __name__ == "__main__":
    sys.exit(main())
