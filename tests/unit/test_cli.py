"""The CLI contract through ``hakit.cli.main``: exit codes, messages on stderr, nothing written on
bad input, ``--help`` everywhere, ``-i`` before or after the command."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import click
import pytest

from hakit import __version__
from hakit.cli import main, main_group


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _commands(command, prefix + (name,))
        else:
            found.append(prefix + (name,))
    return found


ALL_COMMANDS = _commands(main_group)


@pytest.fixture
def site(tmp_path: Path, examples_dir: Path):
    """``site(name)``: an example copied alone into a fresh folder; returns its path."""

    def copy(name: str = "two-node-pacemaker") -> Path:
        folder = tmp_path / "site"
        folder.mkdir(exist_ok=True)
        target = folder / f"{name}.yml"
        shutil.copy(examples_dir / f"{name}.yml", target)
        return target

    return copy


def _break(path: Path) -> str:
    """Make the inventory invalid in one known way; return the message hakit must print."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if line.strip().startswith("cluster_name:"))
    lines[number] = "      cluster_name: Bad Name\n"
    path.write_text("".join(lines), encoding="utf-8")
    return (f"hakit: {path}:{number + 1}: all.vars.hakit.cluster_name: must be a name of lowercase letters, "
            f"digits and '-', starting with a letter, at most 63 characters")


def _files(folder: Path) -> list[str]:
    """The rendered files under ``folder`` (not the marker that lists them, .hakit-rendered)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != ".hakit-rendered")


# --------------------------------------------------------------------------- usage


def test_at_least_the_documented_commands_exist() -> None:
    names = {c[0] for c in ALL_COMMANDS if c}
    assert {"render", "validate", "lab"} <= names


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=[" ".join(c) or "hakit" for c in ALL_COMMANDS])
def test_help_everywhere(command: tuple[str, ...], capsys) -> None:
    for flag in ("--help", "-h"):
        assert main([*command, flag]) == 0
        out, err = capsys.readouterr()
        assert out.startswith(f"Usage: hakit {' '.join(command)}".rstrip() + " "), out
        assert err == ""


def test_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"hakit, version {__version__}\n"


@pytest.mark.parametrize("argv, message", [
    (["no-such-command"], "Error: No such command 'no-such-command'."),
    (["--no-such-flag"], "Error: No such option '--no-such-flag'."),
    (["render"], "hakit: render: give either -o OUT (write the files) or --check (write nothing)"),
    (["render", "--check", "-o", "out"], "hakit: render: give either -o OUT (write the files) or --check"),
    (["render", "-o"], "Error: Option '-o' requires an argument."),
    (["render", "-o", "out", "extra"], "Error: Got unexpected extra argument (extra)"),
], ids=["command", "flag", "missing-option", "both-options", "missing-value", "extra-argument"])
def test_usage_errors_exit_2(argv: list[str], message: str, capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_out_must_not_be_a_file(site, tmp_path: Path, capsys) -> None:
    inventory = site()
    target = tmp_path / "a-file"
    target.write_text("x")
    assert main(["render", "-i", str(inventory), "-o", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert not (inventory.parent / "two-node-pacemaker.secrets.yml").exists()


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("command", [["render", "-o", "{out}"], ["validate"], ["status"], ["takeover", "--yes"],
                                     ["switchover", "--dry-run"], ["resync", "--strategy", "dump"]])
def test_bad_inventory_exits_2_with_the_message(command: list[str], site, tmp_path: Path, capsys) -> None:
    inventory = site()
    expected = _break(inventory)
    out_dir = tmp_path / "out"
    argv = [a.format(out=out_dir) for a in command] + ["-i", str(inventory)]
    before = _files(inventory.parent)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err == expected + "\n"
    assert "Traceback" not in out + err
    assert not out_dir.exists()
    assert _files(inventory.parent) == before  # no secrets file created


def test_check_reports_bad_input_as_unknown(site, capsys) -> None:
    """A Nagios plugin must say UNKNOWN (3) on bad input, not fail like a shell command."""
    inventory = site()
    _break(inventory)
    assert main(["check", "-i", str(inventory)]) == 3
    out = capsys.readouterr().out
    assert out.startswith("HAKIT UNKNOWN - ") and "all.vars.hakit.cluster_name" in out


def test_missing_inventory(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "none.yml"
    assert main(["-i", str(missing), "render", "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"hakit: {missing}: inventory not found\n"
    assert not (tmp_path / "out").exists()


def test_default_inventory_is_looked_up_in_the_current_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HAKIT_INVENTORY", raising=False)
    assert main(["render", "-o", "out"]) == 2
    assert capsys.readouterr().err == "hakit: inventory.yml: inventory not found\n"
    assert list(tmp_path.iterdir()) == []


def test_every_problem_is_printed(site, tmp_path: Path, capsys) -> None:
    inventory = site()
    text = inventory.read_text(encoding="utf-8")
    inventory.write_text(text.replace("stickiness: 1000", "stickiness: 0").replace("token: 1000", "token: 10"),
                         encoding="utf-8")
    assert main(["render", "-i", str(inventory), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"hakit: {inventory}:") and err[0].endswith(
        "all.vars.hakit.timing.corosync.token: must be greater than or equal to 200")
    assert err[1].startswith(f"{inventory}:") and err[1].endswith(
        "all.vars.hakit.pacemaker.stickiness: must be greater than or equal to 1")


def test_render_refuses_a_readable_secrets_file_and_writes_nothing(site, tmp_path: Path, capsys) -> None:
    inventory = site()
    secrets = inventory.parent / "two-node-pacemaker.secrets.yml"
    secrets.write_text("replication_password: x\n")
    os.chmod(secrets, 0o644)
    out_dir = tmp_path / "out"
    assert main(["render", "-i", str(inventory), "-o", str(out_dir)]) == 2
    assert capsys.readouterr().err == (f"hakit: {secrets}: secrets file has mode 0644; it must be readable by "
                                       f"its owner only (chmod 600 {secrets})\n")
    assert not out_dir.exists()


def test_render_with_bad_secrets_content_writes_nothing(site, tmp_path: Path, capsys) -> None:
    inventory = site()
    secrets = inventory.parent / "two-node-pacemaker.secrets.yml"
    secrets.write_text("replication_password: short\n")
    os.chmod(secrets, 0o600)
    out_dir = tmp_path / "out"
    assert main(["render", "-i", str(inventory), "-o", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hakit: {secrets}:1: replication_password: must be 16 to 128 letters")
    assert "Traceback" not in err
    assert not out_dir.exists()


# --------------------------------------------------------------------------- render (needs hakit/render/)


def _needs_render() -> None:
    try:
        import hakit.render.render  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"hakit.render is not importable yet: {exc}")


@pytest.mark.parametrize("placement", ["before", "after", "env"])
def test_render_inventory_option_before_or_after_the_command(placement: str, site, tmp_path: Path, capsys,
                                                             monkeypatch) -> None:
    _needs_render()
    inventory = site()
    out_dir = tmp_path / "out"
    monkeypatch.delenv("HAKIT_INVENTORY", raising=False)
    if placement == "before":
        argv = ["-i", str(inventory), "render", "-o", str(out_dir)]
    elif placement == "after":
        argv = ["render", "-o", str(out_dir), "-i", str(inventory)]
    else:
        monkeypatch.setenv("HAKIT_INVENTORY", str(inventory))
        argv = ["render", "-o", str(out_dir)]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"rendered {len(_files(out_dir))} files for 2 nodes into {out_dir}" in out
    assert {p.name for p in out_dir.iterdir()} >= {"nagios1", "nagios2"}


def test_render_creates_the_secrets_file_once_and_is_deterministic(site, tmp_path: Path, capsys) -> None:
    _needs_render()
    inventory = site("four-node-pacemaker")
    secrets = inventory.parent / "four-node-pacemaker.secrets.yml"
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["render", "-i", str(inventory), "-o", str(first)]) == 0
    out = capsys.readouterr().out
    assert f"created secrets file {secrets} (mode 0600)" in out
    assert "note: set the fencing secrets fencing.pdu.community in" in out
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    secrets_content = secrets.read_bytes()
    assert main(["-q", "render", "-i", str(inventory), "-o", str(second)]) == 0
    assert capsys.readouterr().out == ""
    assert secrets.read_bytes() == secrets_content
    assert _files(first) == _files(second)
    assert {p.name for p in first.iterdir()} >= {"db1", "db2", "app1", "app2"}
    for rel in _files(first):
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
        assert stat.S_IMODE((first / rel).stat().st_mode) == stat.S_IMODE((second / rel).stat().st_mode), rel


def test_render_never_writes_a_secret_readable_by_others(site, tmp_path: Path, capsys) -> None:
    _needs_render()
    inventory = site("two-node-heartbeat-drbd")
    out_dir = tmp_path / "out"
    assert main(["render", "-i", str(inventory), "-o", str(out_dir)]) == 0
    from hakit.inventory.loader import load_inventory
    from hakit.inventory.secrets import load_secrets, secrets_path

    sec = load_secrets(secrets_path(load_inventory(inventory)))
    for rel in _files(out_dir):
        content = (out_dir / rel).read_text(encoding="utf-8", errors="replace")
        if any(value in content for value in sec.all_values()):
            assert stat.S_IMODE((out_dir / rel).stat().st_mode) & 0o077 == 0, f"{rel} holds a secret"


@pytest.mark.parametrize("argv, message", [
    (["takeover", "--node", "nope"], "--node nope: not a node of the database pair (nagios1, nagios2)"),
    (["resync", "--node", "x;rm -rf /"], "not a node of the database pair"),
    (["resync", "--keep-errant", "{exists}"], "the file exists; hakit will not overwrite it"),
    (["resync", "--keep-errant", "{nodir}"], "does not exist or is not writable"),
    (["resync", "--strategy", "copy"], "Invalid value for '--strategy'"),
    (["switchover", "--wait", "0"], "Invalid value for '--wait'"),
], ids=["takeover-node", "resync-node", "keep-errant-exists", "keep-errant-folder", "strategy", "wait"])
def test_operation_flags_are_checked_before_any_node_is_contacted(argv, message, site, tmp_path: Path, capsys) -> None:
    inventory = site()
    exists = tmp_path / "exists.sql"
    exists.write_text("keep me")
    argv = [a.format(exists=exists, nodir=tmp_path / "no" / "such.sql") for a in argv]
    before = _files(inventory.parent)
    assert main(argv + ["-i", str(inventory)]) == 2
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in out + err
    assert _files(inventory.parent) == before  # no journal, no secrets file
    assert exists.read_text() == "keep me"


# --------------------------------------------------------------------------- automation (--result-json)


def _result_line(out: str) -> dict:
    import json

    return json.loads(out.strip().splitlines()[-1])


def test_render_check_writes_nothing_not_even_the_secrets_file(site, capsys) -> None:
    site = site()
    before = sorted(p.name for p in site.parent.iterdir())
    assert main(["--result-json", "-i", str(site), "render", "--check"]) == 0
    result = _result_line(capsys.readouterr().out)
    assert result == {"command": "render", "changed": False, "exit_code": 0, "schema_version": 1,
                      "message": f"render: {site} renders {result['message'].split(' renders ')[1]}"}
    assert "files for 2 nodes" in result["message"]
    assert sorted(p.name for p in site.parent.iterdir()) == before


def test_render_check_reports_a_bad_inventory_with_its_exit_code(site, capsys) -> None:
    site = site()
    _break(site)
    assert main(["--result-json", "-i", str(site), "render", "--check"]) == 2
    out, err = capsys.readouterr()
    result = _result_line(out)
    assert result["exit_code"] == 2 and result["changed"] is False
    assert result["message"].startswith(f"hakit: {site}") and result["message"] in err


def test_result_json_names_a_usage_error(capsys) -> None:
    assert main(["--result-json", "status", "--no-such-flag"]) == 2
    result = _result_line(capsys.readouterr().out)
    assert result["command"] == "status" and result["exit_code"] == 2
    assert "No such option" in result["message"]


def test_without_result_json_no_json_line(site, capsys) -> None:
    site = site()
    assert main(["-i", str(site), "render", "--check"]) == 0
    assert "{" not in capsys.readouterr().out


def test_a_secret_quoted_in_an_error_is_not_printed(tmp_path, capsys, monkeypatch) -> None:
    """An error from another tool may quote a secret (a failed CHANGE MASTER, a mariadb command
    line): hakit prints it as *** on the terminal and in --result-json (Ansible logs both)."""
    import json

    from hakit import cli
    from hakit.errors import OperationFailed
    from hakit.inventory.secrets import generate

    secret = generate().replication_password  # seen by this process, as a loaded file's would be

    @cli.main_group.command(name="leaky-test-command")
    def leaky() -> None:
        cli.Context.current.say(f"step output with {secret}")
        raise OperationFailed(f"mariadb: Access denied for MASTER_PASSWORD='{secret}'")

    try:
        code = cli.main(["--result-json", "leaky-test-command"])
    finally:
        cli.main_group.commands.pop("leaky-test-command")
    out, err = capsys.readouterr()
    assert code == 1
    assert secret not in out and secret not in err
    assert "MASTER_PASSWORD='***'" in err and "step output with ***" in out
    assert json.loads(out.strip().splitlines()[-1])["message"].endswith("MASTER_PASSWORD='***'")


def test_init_refuses_the_placeholder_fence_secrets_before_any_node(site, capsys, monkeypatch) -> None:
    """Issue 28 (7): init configured fencing with the password CHANGE-ME. Now it creates the
    secrets file and refuses (exit 2), naming the file and each field, until they are set."""
    import stat

    import yaml

    from hakit import connect

    reached: list[str] = []

    def real_world(inv, secrets):
        reached.append("nodes")
        raise SystemExit("stop here: the test has no nodes")

    monkeypatch.setattr(connect, "real_world", real_world)
    inventory = site()
    secrets = inventory.with_name("two-node-pacemaker.secrets.yml")
    assert main(["init", "-i", str(inventory)]) == 2
    err = capsys.readouterr().err
    assert f"{secrets}: fencing.ipmi-nagios1.password: is still the placeholder CHANGE-ME" in err
    assert "fencing.ipmi-nagios2.password" in err and "created now (mode 0600)" in err
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600 and reached == []
    assert main(["init", "-i", str(inventory)]) == 2  # still unset: refused again, nothing created
    err = capsys.readouterr().err
    assert "fencing.ipmi-nagios1.password" in err and "created now" not in err and reached == []
    data = yaml.safe_load(secrets.read_text())
    data["fencing"] = {"ipmi-nagios1": {"password": "s3cret-1"}, "ipmi-nagios2": {"password": "s3cret-2"}}
    secrets.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit, match="stop here"):
        main(["init", "-i", str(inventory)])
    assert reached == ["nodes"]


def test_validate_fails_a_secrets_file_that_still_holds_a_placeholder(site, capsys, monkeypatch) -> None:
    from hakit import validate as validation
    from hakit.inventory.loader import load_inventory
    from hakit.inventory.secrets import create_secrets, ensure_secrets

    monkeypatch.setattr(validation, "validate_all", lambda inv, secrets: [])  # the tools: tests/integration
    inventory = site()
    assert main(["validate", "-i", str(inventory)]) == 0  # no file yet: nothing to fill in
    capsys.readouterr()
    inv = load_inventory(inventory)
    create_secrets(inv, ensure_secrets(inv, create=False))
    assert main(["validate", "-i", str(inventory), "--result-json"]) == 2
    out, err = capsys.readouterr()
    assert "FAIL secrets  _cluster:" in err and "fencing.ipmi-nagios1.password: is still the placeholder" in err
    assert '"message": "validate: 2 of 2 checks failed"' in out
