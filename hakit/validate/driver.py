"""Every artefact through its checker: the table of checkers by artefact kind, the private
folder the artefacts are written to for the checks, and :func:`validate_all`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from hakit.inventory.model import Inventory
from hakit.inventory.secrets import Secrets
from hakit.render.artefact import Artefact, write_tree
from hakit.validate.cibsecret import check_cib_secret
from hakit.validate.corosync import check_corosync, check_corosync_authkey
from hakit.validate.drbd import check_drbd
from hakit.validate.heartbeat import check_authkeys, check_hacf, check_haresources
from hakit.validate.logrotate import check_logrotate
from hakit.validate.mariadb import check_mysql_cnf, check_mysql_sql
from hakit.validate.nagios import check_nagios
from hakit.validate.pacemaker import check_cib_crm, check_cib_xml
from hakit.validate.sandbox import CheckContext, CheckResult, SubprocessRunner, ToolRunner, find_programs
from hakit.validate.sync_manifest import check_sync_manifest
from hakit.validate.sysctl import check_sysctl
from hakit.validate.systemd import check_systemd_unit

Checker = Callable[[Artefact, CheckContext], list[CheckResult]]

#: artefact kind -> its checker
CHECKERS: dict[str, Checker] = {
    "cib-xml": check_cib_xml,
    "cib-crm": check_cib_crm,
    "corosync": check_corosync,
    "corosync-authkey": check_corosync_authkey,
    "ha.cf": check_hacf,
    "authkeys": check_authkeys,
    "haresources": check_haresources,
    "drbd": check_drbd,
    "mysql-cnf": check_mysql_cnf,
    "mysql-sql": check_mysql_sql,
    "nagios": check_nagios,
    "sync-manifest": check_sync_manifest,
    "sysctl": check_sysctl,
    "logrotate": check_logrotate,
    "cib-secret": check_cib_secret,
    "systemd-unit": check_systemd_unit,
}


@contextlib.contextmanager
def checking(inv: Inventory, secrets: Secrets, artefacts: list[Artefact], tools: ToolRunner | None = None,
             kinds: set[str] | None = None) -> Iterator[CheckContext]:
    """A :class:`CheckContext` whose private folder exists for the ``with`` block only.

    The programs the checkers of ``kinds`` (default: the kinds of ``artefacts``) need are
    looked up first, so :class:`ToolMissing` comes before anything is written or run. The
    artefacts are written under a fresh folder (mode 0700) removed afterwards, even on error.
    """
    runner = tools if tools is not None else SubprocessRunner()
    wanted = kinds if kinds is not None else {a.kind for a in artefacts}
    programs = find_programs({k for k in wanted if k in CHECKERS}, runner)
    with tempfile.TemporaryDirectory(prefix="hakit-validate-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o700)
        write_tree(artefacts, workdir / "render")
        yield CheckContext(inv=inv, secrets=secrets, artefacts=list(artefacts), tools=runner, workdir=workdir,
                           programs=programs)


def validate_artefacts(inv: Inventory, secrets: Secrets, artefacts: list[Artefact],
                       tools: ToolRunner | None = None, kinds: set[str] | None = None) -> list[CheckResult]:
    """Run the checkers of ``artefacts`` (only those of ``kinds`` when given), in a fixed order."""
    selected = sorted(a for a in artefacts if kinds is None or a.kind in kinds)
    results: list[CheckResult] = []
    with checking(inv, secrets, artefacts, tools, {a.kind for a in selected}) as ctx:
        for art in selected:
            checker = CHECKERS.get(art.kind)
            if checker is None:
                results.append(CheckResult("checker", art.node, art.path, False,
                                           f"no checker for artefact kind {art.kind!r}"))
                continue
            results.extend(checker(art, ctx))
    return results


def validate_all(inv: Inventory, secrets: Secrets, tools: ToolRunner | None = None) -> list[CheckResult]:
    """Render ``inv`` and run every artefact through the real program that reads it.

    Raises :class:`ToolMissing` when a program is not installed (before any check runs).
    """
    from hakit.render.render import render_all

    return validate_artefacts(inv, secrets, render_all(inv, secrets), tools)
