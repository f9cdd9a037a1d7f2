"""Publish targets from the manifest (credentials only as references) and the retry rules."""
from __future__ import annotations

import email.utils
import time

import pytest

from buildctl.errors import UserError
from buildctl.manifest import load_product
from buildctl.publish.http import RetryPolicy, retry_after
from buildctl.publish.targets import choose, targets_of
from buildctl.publish.targets import SecretRef
from tests.conftest import run_cli
from tests.publish.conftest import product_with_targets


def test_named_targets_load_with_secret_references(tmp_path):
    prod = product_with_targets(tmp_path, {
        "art": {"type": "artifactory", "url": "https://a.example/artifactory",
                "repository": "fw-dev", "release_repository": "fw-rel", "token": "env:ART"},
        "dav": {"type": "webdav", "url": "https://d.example/r", "username": "ci",
                "password": "file:secret.txt"},
        "obj": {"type": "s3", "url": "https://s3.example", "bucket": "firmware",
                "access_key": "env:AK", "secret_key": "env:SK"}})
    ts = targets_of(load_product(prod))
    assert sorted(ts) == ["art", "dav", "obj"]
    assert ts["art"].secrets["token"] == SecretRef("env", "ART")
    assert ts["art"].options == {"repository": "fw-dev", "release_repository": "fw-rel"}
    described = ts["dav"].describe()
    assert described["credentials"] == {"password": "file:secret.txt"}
    (prod.parent / "secret.txt").write_text("s3cr3t\n")
    assert ts["dav"].secret("password") == "s3cr3t"  # relative to the manifest
    assert [t.name for t in choose(ts, ["obj"], "p.yml")] == ["obj"]
    with pytest.raises(UserError, match="--to nope: no such target"):
        choose(ts, ["nope"], "p.yml")


def test_literal_secret_is_refused_at_its_line(tmp_path):
    prod = product_with_targets(tmp_path, {"obj": {"type": "s3", "url": "https://s3.example",
                                                   "bucket": "firmware",
                                                   "secret_key": "AKIA-literal"}})
    r = run_cli("validate", str(prod))
    assert r.returncode == 2
    assert "demo.yml:" in r.stderr + r.stdout and "Traceback" not in r.stderr
    assert "secret_key" in r.stderr + r.stdout
    r = run_cli("publish", str(tmp_path), "--product", str(prod))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_retry_after_seconds_and_http_date():
    assert retry_after("3") == 3.0
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after(when) <= 31
    assert retry_after("soon") is None and retry_after(None) is None


def test_backoff_grows_and_is_capped():
    p = RetryPolicy(base_s=0.5, cap_s=4)
    assert all(0 <= p.backoff(0) <= 0.5 for _ in range(50))
    assert all(0 <= p.backoff(10) <= 4 for _ in range(50))
    assert max(p.backoff(3) for _ in range(200)) > 2  # grows: base * 2**3 = 4
