"""Publishing to a real WebDAV server (wsgidav) through a fault-injecting proxy."""
from __future__ import annotations

import json
from pathlib import Path

from buildctl.release import bundle as B
from tests.conftest import run_cli
from tests.publish.conftest import product_with_targets, run_publish


def bundle_files(bundle: Path) -> dict[str, bytes]:
    return {p.relative_to(bundle).as_posix(): p.read_bytes()
            for p in sorted(bundle.rglob("*")) if p.is_file()}


def server_files(root: Path) -> dict[str, bytes]:
    base = root / "demo" / "1.0"
    return {p.relative_to(base).as_posix(): p.read_bytes()
            for p in sorted(base.rglob("*")) if p.is_file()}


def publish(tmp_path, bundle, url, *extra):
    """Through the CLI, as a user runs it."""
    prod = product_with_targets(tmp_path, {"dav": {"type": "webdav", "url": url + "/releases"}})
    return run_cli("publish", str(bundle), "--product", str(prod), "--json", *extra)


def publish_fast(bundle, url):
    return run_publish(bundle, {"dav": {"type": "webdav", "url": url + "/releases"}})["targets"][0]


def puts(log, name=None):
    return [e for e in log if e["method"] == "PUT" and (name is None or e["path"].endswith(name))]


def test_publish_then_rerun_sends_nothing(tmp_path, bundle, webdav):
    r = publish(tmp_path, bundle, webdav.url)
    assert r.returncode == 0, r.stderr + r.stdout
    data = json.loads(r.stdout)
    t = data["targets"][0]
    assert t["ok"] and all(f["verified"] for f in t["files"])
    assert {f["action"] for f in t["files"]} == {"sent"}
    assert server_files(webdav.root / "releases") == bundle_files(bundle)
    sent_once = len(puts(webdav.log()))
    assert sent_once == len(bundle_files(bundle))

    again = publish(tmp_path, bundle, webdav.url)
    assert again.returncode == 0, again.stdout
    assert {f["action"] for f in json.loads(again.stdout)["targets"][0]["files"]} == {"present"}
    assert len(puts(webdav.log())) == sent_once  # nothing sent the second time


def test_faults_are_retried_and_end_state_is_exact(tmp_path, bundle, webdav):
    webdav.faults([
        {"method": "PUT", "path": r"\.uefiimg$", "action": "status", "status": 503, "count": 2},
        {"method": "PUT", "path": r"\.mender$", "action": "status", "status": 429, "count": 1,
         "headers": {"Retry-After": "1"}},
        {"method": "PUT", "path": r"sbom\.spdx\.json$", "action": "reset", "after": 1000,
         "count": 1},
        {"method": "HEAD", "path": r"manifest$", "action": "slow", "delay": 0.3, "count": 1},
        {"method": "MKCOL", "action": "status", "status": 500, "count": 1},
    ])
    t = publish_fast(bundle, webdav.url)
    assert t["ok"], t["error"]
    assert t["retries"] >= 5
    assert server_files(webdav.root / "releases") == bundle_files(bundle)
    # SHA256SUMS (the "complete" marker) went last, once, after every other file
    log = puts(webdav.log())
    assert log[-1]["path"].endswith("/SHA256SUMS")
    assert len(puts(log, "SHA256SUMS")) == 1


def test_interrupted_publish_completes_without_resending(tmp_path, bundle, webdav):
    # a server that keeps failing one file: publish fails, SHA256SUMS is not there
    webdav.faults([{"method": "PUT", "path": r"sbom\.cdx\.json$", "action": "status",
                    "status": 500, "count": 100}])
    t = publish_fast(bundle, webdav.url)
    assert not t["ok"] and "gave up" in t["error"]
    assert not (webdav.root / "releases/demo/1.0/SHA256SUMS").exists()
    first = {e["path"] for e in puts(webdav.log()) if e["status"] in (201, 204)}
    assert first
    webdav.clear()
    assert publish_fast(bundle, webdav.url)["ok"]
    second = [e["path"] for e in puts(webdav.log()) if e["status"] in (201, 204)]
    resent = first & set(second[len(first):])
    assert not resent
    assert server_files(webdav.root / "releases") == bundle_files(bundle)


def test_other_content_under_the_same_version_is_refused(tmp_path, bundle, webdav):
    target = webdav.root / "releases/demo/1.0"
    target.mkdir(parents=True)
    (target / B.SUMS).write_text("0" * 64 + "  something-else\n")
    t = publish_fast(bundle, webdav.url)
    assert not t["ok"] and "published with other content" in t["error"]
    assert puts(webdav.log()) == []


def test_dry_run_sends_nothing_and_names_no_secret(tmp_path, bundle, webdav, monkeypatch):
    prod = product_with_targets(tmp_path, {"dav": {"type": "webdav", "url": webdav.url,
                                                   "username": "ci",
                                                   "password": "env:DAV_SECRET"}})
    r = run_cli("publish", str(bundle), "--product", str(prod), "--dry-run",
                env={"DAV_SECRET": "hunter2-secret"})
    assert r.returncode == 0, r.stderr
    assert "would PUT" in r.stdout and "SHA256SUMS" in r.stdout
    assert "hunter2" not in r.stdout + r.stderr
    assert webdav.log() == []


def test_tampered_bundle_sends_nothing(tmp_path, bundle, webdav):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    victim = next(copy.glob("*/sbom.cdx.json"))
    victim.write_text(victim.read_text() + " ")
    r = publish(tmp_path, copy, webdav.url)
    assert r.returncode == 1
    assert "release verify failed" in r.stderr and "sbom.cdx.json" in r.stderr
    assert webdav.log() == []


def test_plain_http_target_puts_and_checks_with_head(bundle, webdav):
    """type http: no MKCOL, no PROPFIND (the server's directories exist), checked by HEAD."""
    for d in {p.parent.relative_to(bundle) for p in bundle.rglob("*") if p.is_file()}:
        (webdav.root / "releases/demo/1.0" / d).mkdir(parents=True, exist_ok=True)
    t = run_publish(bundle, {"web": {"type": "http", "url": webdav.url + "/releases"}})
    t = t["targets"][0]
    assert t["ok"], t["error"]
    assert all(f["verified"] for f in t["files"])
    assert server_files(webdav.root / "releases") == bundle_files(bundle)
    methods = {e["method"] for e in webdav.log()}
    assert "MKCOL" not in methods and "PROPFIND" not in methods and "HEAD" in methods
