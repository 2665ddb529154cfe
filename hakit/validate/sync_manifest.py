"""The sync manifest: valid JSON, its schema, and its lists equal to the inventory's.
"""

from __future__ import annotations

import json

from hakit.render.artefact import Artefact
from hakit.validate.sandbox import CheckContext, CheckResult


def check_sync_manifest(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``json.loads`` and the manifest's schema; its sync list must be the inventory's."""
    try:
        doc = json.loads(art.content)
    except ValueError as exc:
        return [ctx.result("sync manifest schema", art, False, f"not JSON: {exc}")]
    problems = []

    def absolute(value: object) -> bool:
        return isinstance(value, str) and value.startswith("/") and "\n" not in value

    if not isinstance(doc, dict):
        return [ctx.result("sync manifest schema", art, False, "must be a JSON object")]
    unknown = sorted(set(doc) - {"_managed_by", "cluster_name", "shared_paths", "sync"})
    if unknown:
        problems.append(f"unknown keys: {', '.join(unknown)}")
    if doc.get("cluster_name") != ctx.inv.settings.cluster_name:
        problems.append(f"cluster_name must be {ctx.inv.settings.cluster_name!r}")
    shared = doc.get("shared_paths")
    if not isinstance(shared, dict):
        problems.append("shared_paths must be an object")
    else:
        if shared.get("storage") not in ("drbd", "shared", "sync"):
            problems.append("shared_paths.storage must be drbd, shared or sync")
        if shared.get("mount") is not None and not absolute(shared.get("mount")):
            problems.append("shared_paths.mount must be an absolute path or null")
        paths = shared.get("paths")
        if not isinstance(paths, list) or not all(
                isinstance(p, dict) and absolute(p.get("path")) and (p.get("target") is None or absolute(p["target"]))
                for p in paths):
            problems.append("shared_paths.paths must be a list of {path: absolute, target: absolute or null}")
    sync = doc.get("sync")
    if not isinstance(sync, list) or not all(
            isinstance(s, dict) and absolute(s.get("path")) and isinstance(s.get("exclude"), list)
            and all(isinstance(e, str) for e in s["exclude"]) for s in sync):
        problems.append("sync must be a list of {path: absolute, exclude: [patterns]}")
    else:
        want = [(i.path, list(i.exclude)) for i in ctx.inv.settings.sync]
        have = [(s["path"], s["exclude"]) for s in sync]
        if have != want:
            problems.append("sync differs from the inventory's sync list")
    return [ctx.result("sync manifest schema", art, not problems,
                       "valid JSON, schema and sync list match the inventory" if not problems else "\n".join(problems))]
