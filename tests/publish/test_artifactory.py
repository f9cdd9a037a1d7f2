"""Publishing to the Artifactory test server: checksum deploy, properties, build info,
promotion only after every file verified, faults, reruns, and `releases list`."""
from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.publish.conftest import ART_TOKEN, aql, art_target, product_with_targets, run_publish


@pytest.fixture(autouse=True)
def _token(monkeypatch):
    monkeypatch.setenv("ART_TOKEN", ART_TOKEN)


def bundle_sums(bundle: Path) -> dict[str, str]:
    return {p.relative_to(bundle).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(bundle.rglob("*")) if p.is_file()}


def repo_state(server, repo: str) -> dict[str, str]:
    rows = aql(server, json.dumps({"repo": repo}).join(("items.find(", ")")))
    out = {}
    for r in rows:
        rel = f"{r['path']}/{r['name']}".removeprefix("demo/1.0/")
        assert rel not in out  # present once
        out[rel] = r["sha256"]
    return out


def deploys(log, *, with_body=None):
    out = [e for e in log if e["method"] == "PUT" and "/api/" not in e["path"]]
    if with_body is not None:
        out = [e for e in out if (e["received"] > 0) == with_body]
    return out


def test_publish_deploys_verifies_and_promotes(bundle, artifactory):
    t = run_publish(bundle, {"art": art_target(artifactory)})["targets"][0]
    assert t["ok"], t["error"]
    assert t["promoted"] == "fw-release-local"
    assert repo_state(artifactory, "fw-dev-local") == bundle_sums(bundle)
    assert repo_state(artifactory, "fw-release-local") == bundle_sums(bundle)
    # properties searchable by AQL, per board
    rows = aql(artifactory, 'items.find({"repo":"fw-release-local","@product":"demo",'
                            '"@board":"qemuarm64","name":{"$match":"*.mender"}})'
                            '.include("repo","path","name","property")')
    assert len(rows) == 1
    props = {p["key"]: p["value"] for p in rows[0]["properties"]}
    assert props["version"] == "1.0" and props["variant"] == "release"
    assert props["build.name"] == "buildctl-demo" and props["build.number"] == "1.0"
    assert props["git.revision"] and len(props["sbom.sha256"]) == 64
    # build info: one module per board, every artifact with its checksums
    req = urllib.request.Request(artifactory.url + "/artifactory/api/build/buildctl-demo/1.0",
                                 headers={"Authorization": f"Bearer {ART_TOKEN}"})
    bi = json.loads(urllib.request.urlopen(req).read())["buildInfo"]
    assert sorted(m["id"] for m in bi["modules"]) == ["qemuarm64-release", "qemux86-64-release",
                                                      "release"]
    assert bi["statuses"][0]["status"] == "released"


def test_rerun_sends_nothing_and_second_version_links_by_checksum(bundle, artifactory, tmp_path):
    assert run_publish(bundle, {"art": art_target(artifactory)})["targets"][0]["ok"]
    first = len(deploys(artifactory.log(), with_body=True))
    # bytes went once per distinct content (identical files across boards were linked)
    assert first == len(set(bundle_sums(bundle).values())) < len(bundle_sums(bundle))
    puts = len(deploys(artifactory.log()))
    t = run_publish(bundle, {"art": art_target(artifactory)})["targets"][0]
    assert t["ok"] and {f["action"] for f in t["files"]} == {"present"}
    assert len(deploys(artifactory.log())) == puts  # no PUT at all
    # the same bytes under another repository path: linked by checksum, no bytes sent
    t = run_publish(bundle, {"art": art_target(artifactory, repository="fw-release-local",
                                               release_repository=None)})["targets"][0]
    assert t["ok"]
    assert {f["action"] for f in t["files"]} == {"present"}  # promotion already copied them


def test_checksum_deploy_links_content_the_server_has(bundle, artifactory):
    # content reaches the server under another build name first
    assert run_publish(bundle, {"a": art_target(artifactory, build_name="other",
                                                release_repository=None)})["targets"][0]["ok"]
    before = len(deploys(artifactory.log(), with_body=True))
    t = run_publish(bundle, {"a": art_target(artifactory, repository="fw-release-local",
                                             release_repository=None)})["targets"][0]
    assert t["ok"] and {f["action"] for f in t["files"]} == {"linked"}
    assert t["bytes_sent"] == 0
    assert len(deploys(artifactory.log(), with_body=True)) == before


def test_faults_retried_end_state_exact(bundle, artifactory):
    artifactory.faults([
        {"method": "PUT", "path": r"\.uefiimg;", "action": "status", "status": 503, "count": 3},
        {"method": "PUT", "path": r"\.mender;", "action": "status", "status": 429, "count": 1,
         "headers": {"Retry-After": "1"}},
        {"method": "PUT", "path": r"sbom\.spdx3\.json;", "action": "reset", "after": 512,
         "count": 1},
        {"method": "GET", "path": r"/api/storage/", "action": "status", "status": 500,
         "count": 2},
        {"method": "POST", "path": r"/api/build/promote", "action": "status", "status": 502,
         "count": 1},
        {"method": "PUT", "path": r"manifest;", "action": "slow", "delay": 0.5, "count": 1},
    ])
    t = run_publish(bundle, {"art": art_target(artifactory)})["targets"][0]
    assert t["ok"], t["error"]
    assert t["retries"] >= 8
    assert repo_state(artifactory, "fw-dev-local") == bundle_sums(bundle)
    assert repo_state(artifactory, "fw-release-local") == bundle_sums(bundle)


def test_lying_server_is_never_promoted(bundle, artifactory):
    artifactory.faults([{"method": "GET", "path": r"qemuarm64-release/.*\.mender$",
                         "action": "lie", "count": 100}])
    t = run_publish(bundle, {"art": art_target(artifactory)})["targets"][0]
    assert not t["ok"]
    assert "server reports sha256" in t["error"] and "not promoted" in t["error"]
    assert repo_state(artifactory, "fw-release-local") == {}
    assert not any("/api/build/promote" in e["path"] for e in artifactory.log())


def test_interrupted_then_rerun_completes_without_resending(bundle, artifactory):
    artifactory.faults([{"method": "PUT", "path": r"qemuarm64-release/sbom\.cdx\.json;",
                         "action": "reset", "after": 100, "count": 100}])
    t = run_publish(bundle, {"art": art_target(artifactory)})["targets"][0]
    assert not t["ok"] and "gave up" in t["error"]
    assert repo_state(artifactory, "fw-release-local") == {}  # nothing promoted
    done = {e["path"].split(";")[0] for e in deploys(artifactory.log(), with_body=True)
            if e["status"] == 201}
    assert done
    artifactory.clear()
    t = run_publish(bundle, {"art": art_target(artifactory)})["targets"][0]
    assert t["ok"], t["error"]
    second = [e["path"].split(";")[0] for e in deploys(artifactory.log(), with_body=True)
              if e["status"] == 201]
    assert not done & set(second[len(done):])  # nothing sent twice
    assert repo_state(artifactory, "fw-release-local") == bundle_sums(bundle)


def test_server_rejects_wrong_checksum_and_unknown_content(artifactory):
    """The test server is as strict as JFrog documents: a wrong checksum header is 409 with
    the errors body, a checksum deploy of unknown content 404, no token 401."""
    url = artifactory.url + "/artifactory/fw-dev-local/x/file.bin"
    auth = {"Authorization": f"Bearer {ART_TOKEN}"}

    def put(headers, data=b""):
        req = urllib.request.Request(url, data=data, headers=headers, method="PUT")
        try:
            return urllib.request.urlopen(req).status, None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    code, body = put({**auth, "X-Checksum-Sha256": "0" * 64}, b"hello")
    assert code == 409 and body["errors"][0]["status"] == 409
    assert "Checksum error" in body["errors"][0]["message"]
    code, _ = put({**auth, "X-Checksum-Deploy": "true",
                   "X-Checksum-Sha1": hashlib.sha1(b"hello").hexdigest()})
    assert code == 404
    assert put({"X-Checksum-Sha1": "1"}, b"x")[0] == 401


def test_cli_publish_and_releases_list(tmp_path, bundle, artifactory):
    prod = product_with_targets(tmp_path, {"art": art_target(artifactory)})
    r = run_cli("publish", str(bundle), "--product", str(prod), "--to", "art",
                env={"ART_TOKEN": ART_TOKEN})
    assert r.returncode == 0, r.stderr + r.stdout
    assert "promoted to fw-release-local" in r.stdout
    assert ART_TOKEN not in r.stdout + r.stderr
    ls = run_cli("releases", "list", "--product", str(prod), "--json",
                 env={"ART_TOKEN": ART_TOKEN})
    assert ls.returncode == 0, ls.stderr
    rows = json.loads(ls.stdout)
    assert [(x["version"], sorted(x["boards"])) for x in rows] == [
        ("1.0", ["qemuarm64", "qemux86-64"])]
    assert rows[0]["repository"] == "fw-release-local"
    none = run_cli("releases", "list", "--product", str(prod), "--board", "raspberrypi4",
                   env={"ART_TOKEN": ART_TOKEN})
    assert none.returncode == 0 and "no published releases" in none.stdout


def test_missing_token_is_named_without_its_value(tmp_path, bundle, artifactory, monkeypatch):
    monkeypatch.delenv("ART_TOKEN")
    t = run_publish(bundle, {"art": art_target(artifactory)})["targets"][0]
    assert not t["ok"] and "env:ART_TOKEN" in t["error"] and "not set" in t["error"]


def test_response_slower_than_the_timeout_is_retried(bundle, artifactory):
    from buildctl.publish.api import publish
    from buildctl.publish.http import RetryPolicy
    from buildctl.publish.targets import Target
    from buildctl.publish.targets import SecretRef

    artifactory.faults([{"method": "PUT", "path": r"qemux86-64-release/cves\.json;",
                         "action": "slow", "delay": 2.5, "count": 1}])
    d = art_target(artifactory)
    t = Target("art", "artifactory", d["url"],
               {"repository": d["repository"], "release_repository": d["release_repository"]},
               {"token": SecretRef.parse(d["token"])})
    res = publish(bundle, [t], verify_sboms=False,
                  policy=RetryPolicy(attempts=4, base_s=0.05, cap_s=0.2, timeout_s=1.0))
    rep = res.targets[0]
    assert rep.ok, rep.error
    assert any("timed out" in e or "TimeoutError" in e for e in rep.events)
    assert repo_state(artifactory, "fw-release-local") == bundle_sums(bundle)


def test_other_content_under_the_same_version_is_refused(tmp_path, bundle, artifactory):
    req = urllib.request.Request(
        artifactory.url + "/artifactory/fw-release-local/demo/1.0/SHA256SUMS",
        data=b"0" * 64 + b"  something-else\n", method="PUT",
        headers={"Authorization": f"Bearer {ART_TOKEN}"})
    assert urllib.request.urlopen(req).status == 201
    t = run_publish(bundle, {"art": art_target(artifactory)})["targets"][0]
    assert not t["ok"] and "published with other content" in t["error"]
    assert repo_state(artifactory, "fw-dev-local") == {}  # nothing deployed
