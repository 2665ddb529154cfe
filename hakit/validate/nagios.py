"""The monitoring master's fragment through the daemon's own verify (``nagios4 -v``), with a
main configuration of the check's own.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hakit.render.artefact import Artefact
from hakit.validate.sandbox import CheckContext, CheckResult, ToolResult, fail_detail

NAGIOS_MAIN = Path("/etc/nagios4/nagios.cfg")

NAGIOS_STOCK_OBJECTS = ("commands.cfg", "contacts.cfg", "timeperiods.cfg", "templates.cfg", "localhost.cfg")

#: main-config keys naming files Nagios writes: pointed into the private folder
_NAGIOS_WRITES = {"log_file", "object_cache_file", "precached_object_file", "status_file", "command_file",
                  "lock_file", "temp_file", "temp_path", "check_result_path", "state_retention_file",
                  "log_archive_path", "debug_file", "query_socket"}


def nagios_main_config(fragment_path: str, fragment_file: Path, folder: Path) -> str:
    """A main config for ``nagios4 -v``: this machine's stock nagios.cfg with private write paths.

    Every directive of /etc/nagios4/nagios.cfg is kept (so the stock object files, resource
    file and settings such as illegal_macro_output_chars apply, as on a node), except: the
    fragment's own folder is replaced by the rendered fragment, object files missing on this
    machine are left out, every file Nagios writes is in ``folder``, no broker module is
    loaded, no syslog, no update check, and the user is root (nagios4 drops to nagios_user
    before reading object files, which are in a folder only root can enter; -v runs nothing).
    """
    fragment_dir = os.path.dirname(fragment_path)
    source = NAGIOS_MAIN.read_text(errors="replace").splitlines() if NAGIOS_MAIN.exists() else [
        f"cfg_file=/etc/nagios4/objects/{name}" for name in NAGIOS_STOCK_OBJECTS]
    lines = []
    for raw in source:
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if key in ("cfg_file", "cfg_dir", "resource_file"):
            if value.rstrip("/") == fragment_dir or value == fragment_path or not os.path.exists(value):
                continue
        elif key in _NAGIOS_WRITES or key in ("broker_module", "nagios_user", "nagios_group", "use_syslog",
                                              "check_for_updates", "check_external_commands"):
            continue
        lines.append(line)
    w = str(folder)
    lines += [f"cfg_file={fragment_file}",
              f"log_file={w}/nagios.log", f"object_cache_file={w}/objects.cache",
              f"precached_object_file={w}/objects.precache", f"status_file={w}/status.dat",
              f"command_file={w}/nagios.cmd", f"lock_file={w}/nagios.pid", f"temp_file={w}/nagios.tmp",
              f"temp_path={w}", f"check_result_path={w}", f"state_retention_file={w}/retention.dat",
              f"log_archive_path={w}", f"debug_file={w}/nagios.debug", "use_syslog=0", "check_for_updates=0",
              "check_external_commands=0", "nagios_user=root", "nagios_group=root"]
    return "\n".join(lines) + "\n"


def check_nagios(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``nagios4 -v`` on a main config that loads the stock objects plus the fragment.

    See :func:`nagios_main_config` for the main config (named nagios.cfg, as nagios4 expects).
    """
    folder = ctx.scratch(f"nagios-{art.node}")
    cfg = folder / "nagios.cfg"
    cfg.write_text(nagios_main_config(art.path, ctx.file(art), folder))
    res = ctx.run([ctx.program("nagios4"), "-v", str(cfg)], timeout=60)
    out = res.stdout + res.stderr
    errors = [line for line in out.splitlines() if re.match(r"\s*(Error|Unable|Warning)", line)]
    warnings = [line.strip() for line in out.splitlines() if line.strip().startswith("Warning")]
    ok = res.returncode == 0 and not res.timed_out and re.search(r"Total Errors:\s+0\b", out) is not None
    if ok:
        detail = "objects verified" + (f"; {len(warnings)} warning(s): " + "; ".join(warnings) if warnings else "")
    else:
        detail = fail_detail(ToolResult(res.returncode, "", "\n".join(errors) or out, res.timed_out), "nagios4 -v")
    return [ctx.result("nagios4 -v", art, ok, detail)]
