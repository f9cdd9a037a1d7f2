"""Publishing to a real S3-compatible server (moto standalone) through the fault proxy:
multipart from disk, per-part and whole-object checks, resumption after an interruption."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from buildctl.publish.http import Client, RetryPolicy
from buildctl.publish.plan import Item, Plan
from buildctl.publish import s3 as S3
from buildctl.publish.targets import Target
from buildctl.publish.targets import SecretRef
from tests.publish.conftest import run_publish, s3_objects, s3_target


def bundle_sums(bundle: Path) -> dict[str, tuple[int, str]]:
    return {f"demo/1.0/{p.relative_to(bundle).as_posix()}":
            (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(bundle.rglob("*")) if p.is_file()}


def test_bundle_to_s3_then_rerun_sends_nothing(bundle, s3):
    t = run_publish(bundle, {"s3": s3_target(s3)})["targets"][0]
    assert t["ok"], t["error"]
    assert all(f["verified"] for f in t["files"])
    assert s3_objects(s3) == bundle_sums(bundle)
    puts = [e for e in s3.log() if e["method"] == "PUT"]
    t = run_publish(bundle, {"s3": s3_target(s3)})["targets"][0]
    assert t["ok"] and {f["action"] for f in t["files"]} == {"present"}
    assert [e for e in s3.log() if e["method"] == "PUT"] == puts


def big_plan(tmp_path: Path, mib: int = 12) -> Plan:
    f = tmp_path / "disk.img"
    with open(f, "wb") as fh:
        for n in range(mib):
            fh.write(hashlib.sha256(str(n).encode()).digest() * (1 << 15))
    item = Item("rpi4-release/disk.img", f, f.stat().st_size,
                hashlib.sha256(f.read_bytes()).hexdigest(), "disk-image", "rpi4", "release")
    return Plan(tmp_path, "demo", "2.0", [item], {}, {}, {})


def target(server) -> Target:
    d = s3_target(server)
    return Target("s3", "s3", d["url"], {"bucket": "firmware", "part_size_mb": 5},
                  {"access_key": SecretRef.parse("env:S3_ACCESS"),
                   "secret_key": SecretRef.parse("env:S3_SECRET")})


def fast() -> Client:
    return Client(RetryPolicy(attempts=4, base_s=0.05, cap_s=0.2, timeout_s=20))


def test_multipart_with_faults_and_resume(tmp_path, s3):
    plan = big_plan(tmp_path)
    item = plan.items[0]
    # part 2 keeps being cut off mid-upload: the publish fails after part 1 went through
    s3.faults([{"method": "PUT", "path": r"partNumber=2&", "action": "reset",
                "after": 1 << 20, "count": 100}])
    try:
        S3.publish(target(s3), plan, fast())
    except S3.PublishError as exc:
        assert "gave up" in str(exc)
    else:
        raise AssertionError("publish should have failed")
    assert "demo/2.0/rpi4-release/disk.img" not in s3_objects(s3)  # nothing half-made
    s3.faults([{"method": "PUT", "path": r"partNumber=3&", "action": "status", "status": 503,
                "count": 2},
               {"method": "POST", "path": r"uploadId=", "action": "status", "status": 500,
                "count": 1}])
    rep = S3.publish(target(s3), plan, fast())
    assert rep.ok and rep.files[0].verified
    log = s3.log()
    part1 = [e for e in log if e["method"] == "PUT" and "partNumber=1&" in e["path"]]
    assert len(part1) == 1  # resumed: part 1 was not sent again
    assert rep.bytes_sent == item.size - 5 * (1 << 20)
    assert s3_objects(s3)["demo/2.0/rpi4-release/disk.img"] == (item.size, item.sha256)


def test_object_changed_on_the_server_is_reported(tmp_path, s3):
    plan = big_plan(tmp_path, mib=1)
    # a server that answers the upload but stored other bytes: the check after upload says so
    import boto3

    cli = boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1",
                       aws_access_key_id=os.environ["S3_ACCESS"],
                       aws_secret_access_key=os.environ["S3_SECRET"])
    rep = S3.publish(target(s3), plan, fast())
    assert rep.ok
    cli.put_object(Bucket="firmware", Key="demo/2.0/rpi4-release/disk.img", Body=b"other",
                   Metadata={"sha256": plan.items[0].sha256})
    rep = S3.publish(target(s3), plan, fast())  # not "present": ETag and size differ -> re-sent
    assert rep.files[0].action == "sent"
    assert s3_objects(s3)["demo/2.0/rpi4-release/disk.img"][1] == plan.items[0].sha256


def test_dry_run_lists_parts(tmp_path, bundle, s3):
    data = run_publish(bundle, {"s3": s3_target(s3)}, dry_run=True)
    assert data["targets"][0]["requests"] and s3.log() == []
    assert json.dumps(data).count("buildctl-test-secret") == 0


def test_other_content_under_the_same_version_is_refused(bundle, s3):
    import boto3

    cli = boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1",
                       aws_access_key_id=os.environ["S3_ACCESS"],
                       aws_secret_access_key=os.environ["S3_SECRET"])
    cli.put_object(Bucket="firmware", Key="demo/1.0/SHA256SUMS", Body=b"other\n",
                   Metadata={"sha256": "0" * 64})
    t = run_publish(bundle, {"s3": s3_target(s3)})["targets"][0]
    assert not t["ok"] and "published with other content" in t["error"]
    assert list(s3_objects(s3)) == ["demo/1.0/SHA256SUMS"]
