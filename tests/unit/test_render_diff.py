"""``hakit render --diff`` (issue 28, 6): what init would change on the nodes, each file's
diff against the node's copy, every secret shown as ``***``; Ansible's ``--check --diff`` shows
the same."""

from __future__ import annotations

from hakit.render.artefact import Artefact
from hakit.render.diff import file_diffs

SECRET = "s3cr3t-Passw0rd-x"


def test_new_changed_and_mode_only_files_with_secrets_redacted():
    arts = [Artefact("n1", "/etc/a.cnf", b"[mysqld]\nserver_id = 1\n", 0o644, "mysql-cnf"),
            Artefact("n1", "/etc/same", b"same\n", 0o644, "x"),
            Artefact("n1", "/etc/secrets.yml", f"admin_password: {SECRET}\nother: 2\n".encode(), 0o600, "x"),
            Artefact("n2", "/etc/mode", b"m\n", 0o600, "x"),
            Artefact("n2", "/etc/authkey", b"\xff\x00\xfe", 0o400, "x")]
    have = {("n1", "/etc/same"): (b"same\n", 0o644),
            ("n1", "/etc/secrets.yml"): (b"admin_password: old-one-xyz\nother: 1\n", 0o600),
            ("n2", "/etc/mode"): (b"m\n", 0o644),
            ("n2", "/etc/authkey"): (b"\x00\x01", 0o400)}
    found = file_diffs(arts, lambda node, path: have.get((node, path)), [SECRET, "old-one-xyz"])
    assert [(d.node, d.path, d.change) for d in found] == [
        ("n1", "/etc/a.cnf", "new"), ("n1", "/etc/secrets.yml", "content"), ("n2", "/etc/mode", "mode"),
        ("n2", "/etc/authkey", "content")]
    text = "\n".join(d.text for d in found)
    assert SECRET not in text and "old-one-xyz" not in text
    assert "-admin_password: ***" not in text  # the redacted secret line is the same on both sides
    assert "-other: 1" in text and "+other: 2" in text and "+server_id = 1" in text
    assert "mode 0644 -> 0600" in text and "(binary: content not shown)" in text


def test_nothing_differs_nothing_said():
    arts = [Artefact("n1", "/etc/x", b"x\n", 0o644, "x")]
    assert file_diffs(arts, lambda node, path: (b"x\n", 0o644), []) == []


def test_render_diff_reads_each_node_and_shows_what_init_would_change(tmp_path, monkeypatch, capsys):
    """The command: every node's files against init's, over the node's runner (a fake here);
    nothing written, not even the secrets file."""
    import hashlib
    import json
    import shutil

    from unitkit import EXAMPLES

    from hakit import connect
    from hakit.cli import main
    from hakit.failover.observe import World
    from hakit.remote.fake import FakeRunner

    site = tmp_path / "two-node-pacemaker.yml"
    shutil.copy(EXAMPLES / "two-node-pacemaker.yml", site)
    held = {"nagios1": {"/etc/hakit/inventory.yml": (b"stale: 1\n", 0o644)}, "nagios2": {}}

    def runner(name: str) -> FakeRunner:
        files = held[name]

        def hashes(argv, _input):
            from hakit.remote.port import Result

            paths = json.loads(argv[3])
            out = {p: ([hashlib.sha256(files[p][0]).hexdigest(), files[p][1]] if p in files else None) for p in paths}
            return Result(tuple(argv), 0, json.dumps(out))

        fake = FakeRunner(name)
        fake.responses[("python3", "-c")] = hashes
        fake.files.update(files)
        return fake

    monkeypatch.setattr(connect, "real_world", lambda inv, secrets: World(
        {"nagios1": runner("nagios1"), "nagios2": runner("nagios2")}, {}))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["render", "-i", str(site), "--diff", "--result-json"]) == 0
    out = capsys.readouterr().out
    assert "--- nagios1:/etc/hakit/inventory.yml (content)" in out and "-stale: 1" in out
    assert "--- nagios2:/etc/hakit/inventory.yml (new)" in out
    assert "+admin_password: ***" in out
    assert '"changed": false' in out and "files would change on the nodes" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no secrets file made
