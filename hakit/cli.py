"""The ``hakit`` command line (DESIGN.md "The CLI contract").

Thin: every command loads the inventory, calls one library function and prints its result.
Exit codes: 0 done, 1 failed (re-run resumes), 2 bad usage or input, 3 refused for safety.
User mistakes never end in a traceback.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hakit import __version__
from hakit.errors import ExitCode, HakitError, printable


def redact_seen(text: str) -> str:
    """``text`` without any secret this process has loaded (none before hakit.inventory.secrets is imported:
    the import stays lazy, so ``--help`` and the agents start fast)."""
    secrets = sys.modules.get("hakit.inventory.secrets")
    return secrets.redact_seen(text) if secrets is not None else text


def _shown(text: str) -> str:
    """What hakit prints of a message: no secret this process has seen (an error quoted from
    another tool might carry one, and Ansible logs hakit's output), no terminal control."""
    return printable(redact_seen(text))
if TYPE_CHECKING:
    from hakit.inventory.model import Inventory

DEFAULT_INVENTORY = "inventory.yml"


class Context:
    """What every command gets: where the inventory is, and how loud to be."""

    #: the context of the command running now (main() reads its result for --result-json)
    current: Context | None = None

    def __init__(self, inventory: str | None, verbosity: int, result_json: bool = False):
        self.inventory_path = inventory
        self.verbosity = verbosity
        self.result_json = result_json
        self.command: str | None = None
        #: what the command changed (set by the commands that change things) and its last word
        self.changed = False
        self.message = ""

    def result(self, changed: bool, message: str) -> None:
        """Record the command's outcome (for --result-json) and print its message."""
        self.changed, self.message = changed, message
        self.say(message)

    def inventory(self) -> Inventory:
        from hakit.inventory.loader import load_inventory  # not at the top: the agents start without it

        path = self.inventory_path or os.environ.get("HAKIT_INVENTORY") or DEFAULT_INVENTORY
        return load_inventory(path)

    def say(self, message: str, level: int = 0) -> None:
        if self.verbosity >= level:
            click.echo(_shown(message))


def _inventory_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # an empty -i is a mistake (an unset variable in a script), not a wish for ./inventory.yml;
    # an empty $HAKIT_INVENTORY counts as unset, as shells treat it
    if value == "" and ctx.get_parameter_source(param.name or "") is not click.core.ParameterSource.ENVIRONMENT:
        raise click.BadParameter(f"is empty: name the inventory file (without -i hakit reads $HAKIT_INVENTORY, "
                                 f"else ./{DEFAULT_INVENTORY})")
    return value or None


inventory_option = click.option(
    "-i", "--inventory", "inventory", metavar="INVENTORY", envvar="HAKIT_INVENTORY", callback=_inventory_name,
    help=f"The inventory file (default: $HAKIT_INVENTORY, else ./{DEFAULT_INVENTORY}).")


def _with_inventory(func):
    """Accept ``-i`` after the command name too (``hakit render -i INV``), as DESIGN.md writes it,
    and the global flags (``-q``, ``-v``, ``--result-json``) there too: ``hakit status -v``."""

    @functools.wraps(func)
    def wrapper(obj: Context, inventory: str | None, late_quiet: bool = False, late_verbose: int = 0,
                late_result_json: bool = False, **kwargs):
        if inventory is not None:
            obj.inventory_path = inventory
        if late_quiet:
            obj.verbosity = -1
        elif late_verbose:
            obj.verbosity = max(obj.verbosity, 0) + late_verbose
        obj.result_json = obj.result_json or late_result_json
        return func(obj, **kwargs)

    wrapper.__click_params__ = list(getattr(func, "__click_params__", []))
    for option in _LATE_GLOBALS:
        option(wrapper)
    return click.pass_obj(inventory_option(wrapper))


#: the group's global flags, accepted after the command name too (shown in the group's help)
_LATE_GLOBALS = (
    click.option("-q", "--quiet", "late_quiet", is_flag=True, hidden=True),
    click.option("-v", "--verbose", "late_verbose", count=True, hidden=True),
    click.option("--result-json", "late_result_json", is_flag=True, hidden=True),
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@inventory_option
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and results.")
@click.option("-v", "--verbose", count=True, help="Print more (repeat for more).")
@click.option("--result-json", "result_json", is_flag=True,
              help="End with one JSON line on stdout: command, changed, exit_code, message (for automation).")
@click.version_option(__version__, prog_name="hakit")
@click.pass_context
def main_group(ctx: click.Context, inventory: str | None, quiet: bool, verbose: int, result_json: bool) -> None:
    """hakit: active/passive high availability for a monitoring master and its databases.

    Exit codes: 0 done; 1 failed (state consistent, re-run resumes); 2 bad usage or bad input;
    3 refused for safety (the message says why and what would allow it).
    """
    ctx.obj = Context.current = Context(inventory, -1 if quiet else verbose, result_json)
    ctx.obj.command = ctx.invoked_subcommand


def _out_folder(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    if value == "":
        raise click.BadParameter("is empty: name the folder to write into (an empty name is not the current folder; "
                                 "write -o . for that)")
    return None if value is None else Path(value)


@main_group.command()
@_with_inventory
@click.option("-o", "--out", "out", type=click.Path(file_okay=False), callback=_out_folder,
              help="Folder to write into: one sub-folder per node, laid out by target path. Only what hakit "
                   "wrote there before is replaced (listed in OUT/.hakit-rendered).")
@click.option("--check", is_flag=True, help="Only check that the inventory (and the secrets file, when it "
                                            "exists) renders; write nothing, not even the secrets file.")
@click.option("--diff", is_flag=True, help="Show what hakit init would change on the nodes: each file whose content "
                                           "or mode differs from the node's copy, as a diff, secrets shown as ***; "
                                           "write nothing (reads the nodes over SSH).")
def render(ctx: Context, out: Path | None, check: bool, diff: bool) -> None:
    """Render every artefact of the inventory into OUT (one folder per node).

    Creates the secrets file (mode 0600) next to the inventory when it does not exist yet.
    Output is byte-identical for the same inventory and secrets. Replaces only the node folders
    an earlier render wrote (OUT/.hakit-rendered lists them), and those only once every new file
    is written: a render that fails leaves the previous one whole.
    """
    from hakit.errors import InputError
    from hakit.files import remove_empty_folders
    from hakit.inventory.secrets import (
        create_secrets,
        creation_problem,
        ensure_secrets,
        placeholder_problems,
        secrets_path,
    )
    from hakit.render import render as rendering
    from hakit.render.artefact import check_tree, write_tree

    if diff:
        if out is not None or check:
            raise InputError("render: --diff writes nothing: give it without -o or --check")
        _render_diff(ctx)
        return
    if check == (out is not None):
        raise InputError("render: give either -o OUT (write the files) or --check (write nothing)")
    inv = ctx.inventory()
    path = secrets_path(inv)
    existed = os.path.lexists(path)
    # bad input writes nothing: render in memory first (fresh secrets when there is no file yet),
    # check that the secrets file and the output folder can be written, then write
    sec = ensure_secrets(inv, create=False)
    artefacts = rendering.render_all(inv, sec)
    problem = None if existed else creation_problem(inv)
    if problem:
        raise InputError(problem)
    if check:
        ctx.result(False, f"render: {inv.path} renders {len(artefacts)} files for {len(inv.nodes)} nodes")
        return
    assert out is not None
    _check_out(out)
    _check_secrets_outside(inv, out, sorted({art.node for art in artefacts}))
    check_tree(artefacts, out)
    made: list[Path] = []
    if not existed:
        made = create_secrets(inv, sec)
        ctx.say(f"created secrets file {path} (mode 0600)")
    try:
        written = write_tree(artefacts, out, managed=True)
    except BaseException as exc:
        if not existed:  # the secrets of a render that failed were never used: take them back
            path.unlink(missing_ok=True)
            remove_empty_folders(made)
        if isinstance(exc, OSError):
            raise InputError(f"-o {out}: cannot write the files there ({exc.strerror or exc})") from None
        raise
    ctx.say(f"rendered {len(written)} files for {len(inv.nodes)} nodes into {out}")
    for written_path in written:
        ctx.say(f"  {written_path}", level=1)
    placeholders = [p.field for p in placeholder_problems(inv, sec)]
    if placeholders:
        ctx.say(f"note: set the fencing secrets {', '.join(placeholders)} in {path} (init and validate refuse "
                f"the placeholder)")


def _render_diff(ctx: Context) -> None:
    """``render --diff``: every node's files against what init would write there."""
    from hakit.agents.registry import wrappers
    from hakit.connect import real_world
    from hakit.inventory.secrets import ensure_secrets
    from hakit.pair.init import InitRun, current_files, node_files
    from hakit.render import render as rendering
    from hakit.render.diff import file_diffs

    inv = ctx.inventory()
    secrets = ensure_secrets(inv, create=False)
    world = real_world(inv, secrets)
    try:
        run = InitRun(inv, secrets, world.runners, rendering.render_all(inv, secrets),
                      agent_files=wrappers(inv.settings.node_hakit))
        arts: list = []
        held: dict[tuple[str, str], tuple[bytes, int] | None] = {}
        for node in inv.nodes:
            mine = node_files(run, node.name)
            arts += mine
            held.update({(node.name, path): value
                         for path, value in current_files(world.runners[node.name], mine).items()})
    finally:
        world.close()
    found = file_diffs(arts, lambda node, path: held[(node, path)], secrets.all_values())
    for item in found:
        click.echo(item.text)
    # nothing was changed: the message says what would be
    ctx.result(False, f"render: {len(found)} files would change on the nodes" if found
               else "render: the nodes hold what init would write")


#: PATH_MAX and NAME_MAX of Linux, in bytes (PATH_MAX counts the terminating NUL)
PATH_MAX, NAME_MAX = 4096, 255
#: folders render never writes into (nor into a link to one): the system's own
SYSTEM_FOLDERS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/run", "/sbin", "/sys", "/usr", "/var")


def _system_folders() -> set[str]:
    from hakit.inventory import model

    names = set(SYSTEM_FOLDERS) | set(getattr(model, "SYSTEM_FOLDERS", ()))  # the sync lists' list too
    try:
        names |= {f"/{name}" for name in os.listdir("/") if name.startswith("lib")}  # lib32, lib64, libx32
    except OSError:
        pass
    return names | {os.path.realpath(name) for name in names}


def _check_out(out: Path) -> None:
    """Refuse (exit 2) an output folder that cannot or must not be written: a name too long, a
    system folder, a file on the way, no write permission. The write itself is all or nothing
    (:func:`hakit.render.artefact.write_tree`)."""
    from hakit.errors import InputError

    shown = str(out) if len(str(out)) <= 80 else f"{str(out)[:60]}..."
    for part in out.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise InputError(f"-o {shown}: the name {part[:40]}... is longer than {NAME_MAX} bytes")
    try:
        absolute = os.path.abspath(out)
    except OSError as exc:  # the current folder is gone
        raise InputError(f"-o {shown}: {exc.strerror or exc}") from None
    size = len(os.fsencode(absolute))
    if size >= PATH_MAX:
        raise InputError(f"-o {shown}: the path is {size} bytes long with the current folder in front of it; a path "
                         f"is shorter than {PATH_MAX} bytes (PATH_MAX)")
    system = _system_folders()
    for candidate in ("/" + absolute.lstrip("/"), os.path.realpath(absolute)):
        if candidate in system or candidate.startswith(("/proc/", "/sys/")):
            raise InputError(f"-o {shown}: {candidate} is a system folder; render into a folder of its own")
    try:
        if out.exists() and not out.is_dir():
            raise InputError(f"-o {shown}: is not a folder")
        folder = Path(absolute)
        while not os.path.lexists(folder) and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise InputError(f"-o {shown}: {folder} is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"-o {shown}: the folder {folder} is not writable")
    except OSError as exc:  # a loop of links
        raise InputError(f"-o {shown}: {exc.strerror or exc}") from None


def _check_secrets_outside(inv: Inventory, out: Path, tops: list[str]) -> None:
    """Refuse a secrets file inside a folder that render -o replaces whole: the next render (or
    this one) would delete it, and the passwords with it."""
    from hakit.errors import InputError, Problem
    from hakit.inventory.secrets import SECRETS_FIELD, secrets_path

    path = secrets_path(inv)
    for top in tops:
        folder = out / top
        for inner, outer in ((os.path.abspath(path), os.path.abspath(folder)),
                             (os.path.realpath(path), os.path.realpath(folder))):
            if inner == outer or inner.startswith(outer.rstrip("/") + "/"):
                raise InputError(Problem(inv.path, SECRETS_FIELD,
                                         f"the secrets file {path} is inside {folder}, a folder that render -o {out} "
                                         f"replaces whole: it would be deleted with the passwords it holds; keep it "
                                         f"outside the node folders"))


@main_group.command()
@_with_inventory
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one document with every check (check, node, path, ok, detail).")
def validate(ctx: Context, output: str) -> None:
    """Check the inventory and run every rendered artefact through the real tool that reads it.

    Renders into a temporary folder; writes nothing next to the inventory.
    """
    from hakit import validate as validation
    from hakit.inventory.secrets import ensure_secrets, placeholder_problems, secrets_path
    from hakit.status.document import SCHEMA_VERSION
    from hakit.validate.sandbox import CheckResult

    inv = ctx.inventory()
    if output == "text":
        ctx.say(f"inventory {inv.path}: OK ({inv.settings.topology}, {inv.settings.stack}, "
                f"{len(inv.nodes)} nodes)")
    secrets = ensure_secrets(inv, create=False)
    results = validation.validate_all(inv, secrets)
    if os.path.lexists(secrets_path(inv)):  # a fresh file's placeholders are for the operator to fill
        results += [CheckResult("secrets", "_cluster", p.file, False, f"{p.field}: {p.message}")
                    for p in placeholder_problems(inv, secrets)]
    failed = [r for r in results if not r.ok]
    message = (f"validate: {len(failed)} of {len(results)} checks failed" if failed
               else f"validate: all {len(results)} checks passed")
    if output == "json":
        click.echo(json.dumps({"schema_version": SCHEMA_VERSION, "inventory": str(inv.path), "ok": not failed,
                               "checks": [{"check": r.check, "node": r.node, "path": r.path, "ok": r.ok,
                                           "detail": redact_seen(r.detail)} for r in results]},
                              indent=2, sort_keys=True))
    else:
        for result in results:
            ctx.say(str(result)) if result.ok else click.echo(str(result), err=True)
        if not failed:
            ctx.say(f"all {len(results)} checks passed")
    ctx.message = message  # the --result-json line's
    if failed:
        raise click.exceptions.Exit(int(ExitCode.BAD_INPUT))


@main_group.command()
@_with_inventory
@click.option("-o", "--output", type=click.Choice(["table", "wide", "json"]), default="table", show_default=True,
              help="table: fits 100 columns (node, role, writable, replication, lag, generation, flags; the GTIDs "
                   "below it, whole); wide: every column; json: the status document (docs/operations.md).")
@click.option("--json", "as_json", is_flag=True, help="The same as -o json.")
@click.option("--watch", is_flag=True, help="Observe again every --every seconds until Ctrl-C (with -o json: one "
                                            "document per line).")
@click.option("--every", type=click.FloatRange(0.5, 3600), default=2.0, show_default=True, metavar="SECONDS",
              help="How often --watch observes.")
def status(ctx: Context, output: str, as_json: bool, watch: bool, every: float) -> None:
    """Show the pair: per node role, writable, replication, lag, generation, GTID, VIP, monitoring.

    Exit 0 when healthy, 1 otherwise (degraded, split-brain, ...), 2 on bad input; with --watch,
    the last observation's.
    """
    import json
    import time

    from rich.console import Console

    from hakit.connect import real_world
    from hakit.failover.observe import observe_operation, spread_floor
    from hakit.failover.snapshot import derive_state
    from hakit.failover.state import journal_for
    from hakit.inventory.secrets import load_secrets, secrets_path
    from hakit.status.check import unfenced
    from hakit.status.document import status_document
    from hakit.status.view import print_status

    output = "json" if as_json else output
    inv = ctx.inventory()
    secrets = load_secrets(secrets_path(inv), inv)
    world = real_world(inv, secrets)

    def observed() -> tuple[dict[str, Any], bool]:
        snap = observe_operation(inv, world, journal_for(inv, secrets), shipped=True)
        # what this machine knows, every node knows: another admin machine (or the same one with
        # another folder) reads the generation floor from the nodes, not from this one's .hakit/
        spread_floor(world, snap)
        state = derive_state(snap)
        document = status_document(snap, state, anti_flap_seconds=inv.settings.failover.anti_flap_seconds,
                                   tls=inv.settings.mysql.tls.enabled)
        document["unfenced"] = list(unfenced(inv))
        return document, state.healthy

    healthy = False
    try:
        while True:
            document, healthy = observed()
            if output == "json":
                click.echo(json.dumps(document, sort_keys=True) if watch else
                           json.dumps(document, indent=2, sort_keys=True))
            else:
                console = None
                if watch:
                    console = Console(highlight=False)
                    console.clear()
                print_status(inv, document, console, wide=output == "wide")
                if console is not None:
                    console.print(f"[dim]{time.strftime('%H:%M:%S')}: observed again every {every:g}s; "
                                  f"Ctrl-C ends[/dim]")
            if not watch:
                break
            time.sleep(every)
    except KeyboardInterrupt:
        if not watch:
            raise
    finally:
        world.close()
    if not healthy:
        raise click.exceptions.Exit(int(ExitCode.FAILED))


class _PluginCommand(click.Command):
    """A command run by a monitoring system: a usage error is UNKNOWN (exit 3) with one line on
    stdout, as the Monitoring Plugins guidelines want, not click's usage text and exit 2."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            from hakit.status.check import UNKNOWN, unknown

            click.echo(unknown(f"usage: {exc.format_message()} (hakit check --help)").line)
            raise click.exceptions.Exit(UNKNOWN) from None


#: seconds: ``hakit check``'s default overall deadline (Nagios kills a check at its
#: service_check_timeout, 60 s by default)
CHECK_TIMEOUT = 30


@main_group.command(cls=_PluginCommand)
@_with_inventory
@click.option("-w", "--warning", metavar="RANGE", default=None,
              help="The standby's lag (seconds) above which it is a WARNING: N, 0:N or ~:N "
                   "(default: the inventory's failover.lag_warning_seconds).")
@click.option("-c", "--critical", metavar="RANGE", default=None,
              help="The lag above which it is CRITICAL (default: failover.lag_critical_seconds); never above "
                   "failover.max_lag_seconds, past which the standby is not promoted.")
@click.option("-t", "--timeout", type=click.IntRange(1, 3600), default=CHECK_TIMEOUT, show_default=True,
              metavar="SECONDS", help="The check answers within this, UNKNOWN when it could not finish.")
@click.version_option(__version__, "-V", "--version", prog_name="hakit check")
def check(ctx: Context, warning: str | None, critical: str | None, timeout: int) -> None:
    """Nagios plugin: one status line with perfdata; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

    Follows the Monitoring Plugins guidelines: a usage or internal error is UNKNOWN, the
    thresholds are ranges (-w/-c), an unknown value is U, and -t bounds the whole check."""
    from hakit.status.check import UNKNOWN, unknown
    from hakit.status.check import deadline as check_deadline

    deadline = check_deadline(timeout).start()
    try:
        result = _check_verdict(ctx, deadline, warning, critical)
    except Exception as exc:  # noqa: BLE001 - a plugin's every internal error is UNKNOWN, said in one line
        result = unknown(f"internal error ({type(exc).__name__}): {redact_seen(str(exc))}")
    if not deadline.answer(result.line):  # the deadline answered (and is ending the process)
        raise click.exceptions.Exit(UNKNOWN)
    raise click.exceptions.Exit(result.code)


def _check_verdict(ctx: Context, deadline, warning: str | None, critical: str | None):
    from hakit.failover.observe import observe, with_stack_holds
    from hakit.failover.snapshot import derive_state
    from hakit.status.check import unfenced, unknown, verdict
    from hakit.status.plugin import lag_ranges

    try:
        deadline.doing = "reading the inventory"
        inv = ctx.inventory()
        lag = lag_ranges(inv.settings.failover, warning, critical)
        deadline.doing = "connecting to the nodes"
        world = _check_world(inv)
    except HakitError as exc:  # plugin guidelines: bad input is UNKNOWN, not a shell error
        return unknown(str(exc))
    except ValueError as exc:  # a -w/-c that is not a range the lag can use
        return unknown(f"usage: {exc}")
    try:
        deadline.doing = "observing the nodes"
        # from an admin machine (SSH): the stack's holds too, a group left unmanaged or pinned
        snap = with_stack_holds(inv, world, observe(inv, world, shipped=True))
    finally:
        world.close()
    return verdict(snap, derive_state(snap), inv.settings.failover, inv.settings.mysql.semi_sync.enabled,
                   tls_wanted=inv.settings.mysql.tls.enabled, unfenced=unfenced(inv),
                   state_warning_seconds=inv.settings.monitoring.state_warning_seconds, lag=lag)


def _check_world(inv: Inventory):
    """Over SSH with the secrets when this user can read them (an admin machine), else from the
    node as the monitoring user with ``/etc/hakit/check.yml`` (what Nagios runs on the active)."""
    import socket

    import yaml

    from hakit.connect import node_world, real_world
    from hakit.errors import InputError
    from hakit.inventory.node_paths import CHECK_CREDENTIALS
    from hakit.inventory.secrets import load_secrets, secrets_path

    path = secrets_path(inv)
    if os.access(path, os.R_OK):
        return real_world(inv, load_secrets(path, inv))
    if os.access(CHECK_CREDENTIALS, os.R_OK):
        try:
            password = yaml.safe_load(Path(CHECK_CREDENTIALS).read_text())["monitoring_db_password"]
        except (yaml.YAMLError, KeyError, TypeError):
            raise InputError(f"{CHECK_CREDENTIALS}: must hold monitoring_db_password (hakit init writes it)") from None
        me = socket.gethostname().split(".")[0]
        return node_world(inv, str(password), me if me in {n.name for n in inv.nodes} else None)
    raise InputError(f"cannot read the secrets file {path} nor {CHECK_CREDENTIALS}: run as root on an admin "
                     f"machine, or on a node after hakit init")


@main_group.command()
@_with_inventory
@click.option("--dry-run", is_flag=True, help="Print the steps and touch nothing.")
def init(ctx: Context, dry_run: bool) -> None:
    """Bring an installed pair to healthy: configs, users, seeding, replication, resources, keys.

    Idempotent: a second run changes nothing and says so. Creates the secrets file (0600) when
    missing. Exit 1 when a step fails (re-run to resume), 3 when it refuses for safety.
    """
    from hakit.agents.registry import wrappers
    from hakit.connect import real_world
    from hakit.errors import InputError, Problem
    from hakit.inventory.secrets import ensure_secrets, placeholder_problems, secrets_path
    from hakit.pair.init import InitRun, run_init
    from hakit.render import render as rendering

    inv = ctx.inventory()
    existed = os.path.lexists(secrets_path(inv))
    secrets = ensure_secrets(inv, create=not dry_run)
    unset = placeholder_problems(inv, secrets)
    if unset and (existed or not dry_run):
        # fencing configured with a made-up password would not fence: refused before any node
        raise InputError(unset if existed else
                         [*unset, Problem(str(secrets_path(inv)), "", "created now (mode 0600): set these in it, "
                                                                      "then run hakit init again")])
    if unset:  # a dry run without a secrets file: what the real run will ask for
        ctx.say(f"note: init creates the secrets file {secrets_path(inv)}, then refuses until "
                f"{', '.join(p.field for p in unset)} are set in it")
    world = real_world(inv, secrets)
    run = InitRun(inv, secrets, world.runners, rendering.render_all(inv, secrets),
                  say=lambda text: ctx.say(text), agent_files=wrappers(inv.settings.node_hakit), witness=world.witness)
    try:
        changed = run_init(run, dry_run=dry_run)
    finally:
        world.close()
    if dry_run:
        ctx.result(False, "init: dry run, nothing was changed")
    else:
        ctx.result(bool(changed), f"init: {len(changed)} changes" if changed
                   else "init: nothing to change, the pair is as configured")


@main_group.command(name="sync")
@_with_inventory
@click.option("--dry-run", is_flag=True, help="Print what differs and copy nothing.")
def sync_command(ctx: Context, dry_run: bool) -> None:
    """Push the inventory's sync files and folders from the active to the standby (only what differs)."""
    from hakit.pair.decide import sync_direction, sync_report
    from hakit.pair.sync import sync
    from hakit.remote.probes import holds_address
    from hakit.remote.ssh import runner_for

    inv = ctx.inventory()
    items = list(inv.settings.sync)
    if not items:
        ctx.result(False, "sync: the inventory has no sync list")
        return
    pair = inv.app_pair
    runners = {n: runner_for(inv, n) for n in pair.node_names}
    try:
        holders = [n for n in pair.node_names if holds_address(runners[n], pair.vip.address)]
        way = sync_direction(pair.node_names, holders, pair.vip.address)
        plan = sync(runners[way.source], runners[way.target], items, dry_run=dry_run)
    finally:
        for runner in runners.values():
            runner.close()
    report = sync_report(plan.copy, plan.remove, way, dry_run=dry_run)
    for line in report.lines:
        ctx.say(line, level=0 if dry_run else 1)
    ctx.result(report.changed, report.message)


def _operation(ctx: Context, operation: str, dry_run: bool, yes: bool, **fields: Any) -> None:
    """Observe, plan, confirm, execute one failover operation (takeover, switchover, resync):
    ``fields`` are the rest of its :class:`hakit.failover.planners.Request`.

    The nodes' connections open as soon as the input is checked, in the background: the
    planner's imports run meanwhile (for a takeover, time before the VIP moves)."""
    from hakit.connect import real_world
    from hakit.errors import InputError
    from hakit.inventory.secrets import load_secrets, secrets_path

    inv = ctx.inventory()
    names = inv.db_pair.node_names
    node, keep_errant = fields.get("node"), fields.get("keep_errant")
    if node is not None and node not in names:
        raise InputError(f"--node {node}: not a node of the database pair ({', '.join(names)})")
    if keep_errant is not None:
        kept = Path(keep_errant)
        try:
            if kept.exists() or kept.is_symlink():
                raise InputError(f"--keep-errant {kept}: the file exists; hakit will not overwrite it")
            if not kept.parent.is_dir() or not os.access(kept.parent, os.W_OK):
                raise InputError(f"--keep-errant {kept}: the folder {kept.parent} does not exist or is not writable")
        except OSError as exc:  # a name too long, a loop of links
            raise InputError(f"--keep-errant {kept}: {exc.strerror or exc}") from None
    secrets = load_secrets(secrets_path(inv), inv)
    world = real_world(inv, secrets)
    world.preconnect()
    try:
        _run_operation(ctx, inv, secrets, world, operation, dry_run, yes, fields)
    finally:
        world.close()


def _run_operation(ctx: Context, inv, secrets, world, operation: str, dry_run: bool, yes: bool,
                   fields: dict[str, Any]) -> None:
    from hakit.errors import InputError
    from hakit.failover.planners import Request
    from hakit.failover.run import run_operation
    from hakit.remote.transfer import NullProgress, RichProgress

    request = Request(operation, **fields)  # type: ignore[arg-type]

    def confirm(plan) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise InputError(f"{plan.operation} changes the cluster: confirm with --yes (or run it from a "
                             f"terminal); --dry-run shows the plan")
        click.echo(plan.describe())
        return click.confirm("Proceed?", default=False)

    progress = NullProgress() if ctx.verbosity < 0 else RichProgress()
    outcome = run_operation(inv, secrets, world, request, dry_run=dry_run, confirm=confirm,
                            say=lambda text: ctx.say(text), progress=progress)
    for name, seconds in outcome.timings.items():
        ctx.say(f"  {seconds:7.3f}s  {name}", level=1)
    ctx.changed = bool(outcome.done)
    ctx.message = (f"{request.operation}: dry run, nothing was changed" if dry_run else
                   f"{request.operation}: {len(outcome.done)} steps done" if outcome.done else
                   f"{request.operation}: nothing to do")


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    # FloatRange lets NaN through (every comparison with it is false)
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds")
    return value


wait_option = click.option("--wait", "wait", type=click.FloatRange(0.1, 3600), default=None, metavar="SECONDS",
                           callback=_finite,
                           help="Bound on waiting for replication (default: failover.relay_wait_seconds).")


@main_group.command()
@_with_inventory
@click.option("--node", help="The node to promote (default: the standby of the pair).")
@click.option("--force", is_flag=True, help="Promote even while the old active is reachable and writable "
                                            "(it is made read-only first) or its relay log is not applied.")
@click.option("--dry-run", is_flag=True, help="Print the plan with its reasons and touch nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@wait_option
def takeover(ctx: Context, node: str | None, force: bool, dry_run: bool, yes: bool, wait: float | None) -> None:
    """Unplanned promotion: make the standby the writable database; the VIP and monitoring master follow.

    Refused (exit 3) while the old active is reachable and writable, unless --force.
    """
    _operation(ctx, "takeover", dry_run, yes, node=node, force=force, wait=wait)


@main_group.command()
@_with_inventory
@click.option("--node", help="The node to make active (default: the standby).")
@click.option("--dry-run", is_flag=True, help="Print the plan with its reasons and touch nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@wait_option
def switchover(ctx: Context, node: str | None, dry_run: bool, yes: bool, wait: float | None) -> None:
    """Planned swap with zero lost writes; rolls back to the old active if a step fails."""
    _operation(ctx, "switchover", dry_run, yes, node=node, wait=wait)


@main_group.command()
@_with_inventory
@click.option("--node", help="The node to rebuild (default: the node that is not the active).")
@click.option("--strategy", type=click.Choice(["auto", "rejoin", "dump", "backup"]), default="auto",
              show_default=True, help="rejoin: fetch only what is missing; dump: the seed runbook's dump; "
                                      "backup: physical copy with mariabackup; auto: rejoin when there are no "
                                      "errant transactions, else a copy.")
@click.option("--keep-errant", "keep_errant", type=click.Path(dir_okay=False), default=None,
              help="Save the node's errant transactions to this new file (mode 0600) before discarding them.")
@click.option("--dry-run", is_flag=True, help="Print the plan with its reasons and touch nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@wait_option
def resync(ctx: Context, node: str | None, strategy: str, keep_errant: str | None, dry_run: bool, yes: bool,
           wait: float | None) -> None:
    """Rebuild the repaired node from the active and replicate both ways; never touches the active's data.

    Says how many errant transactions of the node it discards before it acts.
    """
    _operation(ctx, "resync", dry_run, yes, node=node, strategy=strategy, keep_errant=keep_errant, wait=wait)


@main_group.command()
@_with_inventory
@click.argument("mode", type=click.Choice(["on", "off"]))
def maintenance(ctx: Context, mode: str) -> None:
    """Maintenance mode: while on, nothing fails over (for repairs); shown in status and check.

    Pacemaker: the cluster's maintenance-mode (resources unmanaged, left where they are);
    heartbeat: stopped on the nodes that could take the resources over. hakit's agents do not
    promote, takeover and switchover refuse. Idempotent.
    """
    from hakit.connect import real_world
    from hakit.inventory.secrets import load_secrets, secrets_path
    from hakit.pair.maintenance import set_maintenance

    inv = ctx.inventory()
    world = real_world(inv, load_secrets(secrets_path(inv), inv))
    try:
        changed = set_maintenance(inv, world, mode == "on", say=lambda text: ctx.say(text))
    finally:
        world.close()
    for line in changed:
        ctx.say(f"  {line}", level=1)
    ctx.result(bool(changed), f"maintenance {mode}: " + ("nothing fails over until hakit maintenance off"
                                                         if mode == "on" else "the stack fails over again"))


@click.command(name="lab", context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
               add_help_option=False)
def _no_lab() -> None:
    """The namespace lab (in a checkout of hakit only)."""
    from hakit.errors import InputError

    raise InputError("hakit lab: the namespace lab is not part of this installation (the wheel that nodes and admin "
                     "machines install leaves it out): run it from a checkout of hakit, after ./scripts/setup")


def _register_subcommands() -> None:
    from hakit.agents.cli import agent_group

    lab: click.Command
    try:
        from hakit.lab.cli import lab
    except ModuleNotFoundError as exc:  # an installed wheel: the lab comes with a checkout
        if exc.name not in ("hakit.lab", "hakit.lab.cli"):
            raise
        lab = _no_lab
    main_group.add_command(lab)
    main_group.add_command(agent_group)


_register_subcommands()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: maps every hakit error to its exit code."""
    Context.current = None
    for stream in (sys.stdout, sys.stderr):
        # a name from a non-UTF-8 argument is printed escaped, never a UnicodeEncodeError
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass
    code = _main(argv)
    ctx = Context.current
    if ctx is not None and ctx.result_json:
        from hakit.status.document import SCHEMA_VERSION as JSON_SCHEMA_VERSION

        sys.stdout.flush()
        click.echo(json.dumps({"command": ctx.command, "changed": ctx.changed, "exit_code": code,
                               "message": redact_seen(ctx.message), "schema_version": JSON_SCHEMA_VERSION},
                              sort_keys=True))
    return code


def _main(argv: list[str] | None) -> int:
    try:
        # standalone_mode=False: click returns the code of a raised Exit instead of exiting
        code = main_group.main(args=argv, prog_name="hakit", standalone_mode=False)
    except HakitError as exc:
        click.echo(f"hakit: {_shown(str(exc))}", err=True)
        _failed(f"hakit: {redact_seen(str(exc))}")
        return int(exc.exit_code)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:  # usage errors: exit 2
        exc.show()
        _failed(exc.format_message())
        return int(ExitCode.BAD_INPUT)
    except click.exceptions.Abort:
        click.echo("hakit: aborted", err=True)
        return int(ExitCode.FAILED)
    except KeyboardInterrupt:
        click.echo("hakit: interrupted; re-run the same command to resume", err=True)
        return 130
    return code if isinstance(code, int) else int(ExitCode.OK)


def _failed(message: str) -> None:
    if Context.current is not None:
        Context.current.message = message


if __name__ == "__main__":
    sys.exit(main())
