"""Validate: run every rendered artefact through the real program that will read it.

DESIGN.md "Rendered artefacts" names the checker of each file. :func:`validate_all` renders the
inventory into a private temporary folder (mode 0700, removed afterwards, even on error) and
runs each artefact through its checker. Every checker runs the real Debian program, in a way
that cannot touch the machine it runs on:

* programs that insist on being "on the node" (corosync, drbdadm, heartbeat, crmsh) run in a
  *sandbox*: new mount, UTS, network and PID namespaces (``unshare``) with the node's hostname,
  the node's address on a dummy interface or ``lo``, private folders mounted over what they
  write, and no link to any real network. The sandbox's PID 1 is a shell; when it exits the
  kernel kills everything left in the namespace, so no daemon survives a check;
* the throwaway MariaDB server that executes the replication SQL runs with
  ``--skip-networking`` inside its own network namespace, a datadir in the private folder,
  and is shut down (killed if it must be) in a ``finally`` block;
* no secret is ever on a command line (SQL goes through stdin, files are read from the private
  folder) and every tool's output is redacted before it is shown.

The exact commands are listed in docs/validate.md. Programs are found through a
:class:`ToolRunner` so that unit tests can drive every checker with a fake.

One module per checked tool (:mod:`~hakit.validate.pacemaker`, :mod:`~hakit.validate.corosync`,
:mod:`~hakit.validate.heartbeat`, :mod:`~hakit.validate.drbd`, :mod:`~hakit.validate.mariadb`,
:mod:`~hakit.validate.nagios`, :mod:`~hakit.validate.sysctl`, :mod:`~hakit.validate.sync_manifest`),
the sandbox and the tool runner they share (:mod:`~hakit.validate.sandbox`), the table of checkers
(:mod:`~hakit.validate.driver`). This package's own namespace is their public face: the names
below are what the CLI and the tests use as ``hakit.validate.NAME``.
"""

from __future__ import annotations

from hakit.validate.corosync import check_corosync, check_corosync_authkey
from hakit.validate.drbd import check_drbd
from hakit.validate.driver import CHECKERS, checking, validate_all, validate_artefacts
from hakit.validate.heartbeat import check_authkeys, check_hacf, check_haresources
from hakit.validate.logrotate import check_logrotate
from hakit.validate.mariadb import check_mysql_cnf, check_mysql_sql
from hakit.validate.nagios import check_nagios
from hakit.validate.pacemaker import check_cib_crm, check_cib_xml, crm_agents
from hakit.validate.sandbox import (
    KIND_PROGRAMS,
    PROGRAMS,
    CheckContext,
    CheckResult,
    Process,
    Sandbox,
    SubprocessRunner,
    ToolResult,
    ToolRunner,
    find_programs,
    required_programs,
)
from hakit.validate.sync_manifest import check_sync_manifest
from hakit.validate.sysctl import check_sysctl
from hakit.validate.systemd import check_systemd_unit

# isort: split
# the rules and helpers the unit tests drive one by one, beside the checkers that use them
from hakit.validate.heartbeat import _authkeys_rules, _hacf_rules, _haresources_rules  # noqa: F401
from hakit.validate.mariadb import _help_variables, _throwaway_cnf  # noqa: F401
from hakit.validate.pacemaker import _stub_agents  # noqa: F401

__all__ = ["CheckResult", "ToolResult", "ToolRunner", "SubprocessRunner", "Process", "Sandbox", "CheckContext",
           "PROGRAMS", "KIND_PROGRAMS", "CHECKERS", "find_programs", "required_programs", "validate_artefacts",
           "validate_all", "checking", "check_cib_xml", "check_cib_crm", "check_corosync", "check_corosync_authkey",
           "check_hacf", "check_authkeys", "check_haresources", "check_drbd", "check_mysql_cnf",
           "check_mysql_sql", "check_nagios", "check_sync_manifest", "check_sysctl", "check_logrotate",
           "check_systemd_unit", "crm_agents"]
