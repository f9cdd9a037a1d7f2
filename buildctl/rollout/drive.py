"""Drive a staged rollout: upload and verify every artifact, then one stage at a time.

A stage is a static device group. For each stage buildctl creates one deployment per artifact
name in the release (Mender picks, per device, the artifact whose device types match), polls the
statistics, and moves on once the stage's devices reached the success threshold. When the
failures (summed over stages) exceed --max-failures, or a stage finishes below the threshold,
or the timeout passes, the running deployments are aborted and the remaining stages are never
started. buildctl drives the stages itself: Mender's (Enterprise) phased deployments split one
device set into percentage batches started at given times, so they can neither target a
different group per stage nor wait for a stage's outcome.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from buildctl.rollout.mender_api import LocalArtifact, MenderAPI, MenderError, UploadResult
from buildctl.rollout.stages import Stage, Thresholds

ACTIVE = ("pending", "downloading", "installing", "rebooting", "pause_before_installing",
          "pause_before_rebooting", "pause_before_committing")
DONE_OK = ("success", "already-installed")
FAILED = ("failure",)


@dataclass
class StageResult:
    name: str
    group: str
    state: str = "not-started"  # not-started | running | succeeded | failed | aborted | timeout | skipped
    deployments: list[str] = field(default_factory=list)
    devices: int = 0
    success: int = 0
    failure: int = 0
    noartifact: int = 0


@dataclass
class RolloutResult:
    release: str
    server: str
    artifact_names: list[str]
    uploads: list[dict] = field(default_factory=list)
    stages: list[StageResult] = field(default_factory=list)
    ok: bool = False
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def release_artifacts(bundle: Path, public_key: str | None = None) -> list[LocalArtifact]:
    """The verified bundle's .mender files, read and checked (payload checksums included)."""
    from buildctl.ota.mender import ArtifactError, read_artifact
    from buildctl.release.verify import verify_bundle

    res = verify_bundle(bundle, public_key, sboms=False)
    if not res.ok:
        raise MenderError(f"{bundle}: release does not verify: {res.problem}")
    rel = json.loads((bundle / "release.json").read_text())
    out = []
    for f in rel.get("files", []):
        if f.get("kind") != "mender":
            continue
        path = bundle / f["path"]
        try:
            info = read_artifact(path)
        except ArtifactError as exc:
            raise MenderError(f"{f['path']}: {exc}") from None
        sums = [d.sha256 for p in info.payloads for d in p.files]
        out.append(LocalArtifact(path, info.name, list(info.device_types), sums))
    if not out:
        raise MenderError(f"{bundle}: the release holds no .mender artifact")
    return out


def upload_all(api: MenderAPI, arts: list[LocalArtifact], description: str) -> list[UploadResult]:
    results = [api.upload(a, description) for a in arts]
    # verified: the server's listing shows every artifact with our payload checksums
    for a in arts:
        if api.find_same(a) is None:
            raise MenderError(f"{a.path.name}: not in the server's artifact list after upload")
    return results


def _stage_counts(api: MenderAPI, st: StageResult) -> tuple[bool, dict[str, str]]:
    """(all deployments finished, device id -> best status across the stage's deployments)."""
    status: dict[str, str] = {}
    finished = True
    rank = {s: i for i, s in enumerate(("noartifact", "aborted", *ACTIVE, "already-installed",
                                        "success", "failure"))}
    for dep in st.deployments:
        d = api.deployment(dep)
        if d.get("status") != "finished":
            finished = False
        for dev in api.devices(dep):
            s = dev.get("status", "pending")
            old = status.get(dev["id"])
            if old is None or rank.get(s, 0) > rank.get(old, 0):
                status[dev["id"]] = s
    return finished, status


def drive(api: MenderAPI, bundle: Path, stages: list[Stage], th: Thresholds, *,
          public_key: str | None = None, save: Callable[[RolloutResult], None] = lambda r: None,
          clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
          untested: bool | frozenset[str] = False) -> RolloutResult:
    from buildctl.devtest.report import bundle_boards, require_tested

    arts = release_artifacts(bundle, public_key)
    # nothing reaches a device unless every board's image passed its device test (the bundle
    # verified, so its reports are the ones release put there), or the caller said untested
    require_tested(bundle_boards(bundle), untested=untested, action="rollout")
    rel = json.loads((bundle / "release.json").read_text())
    release = f"{rel.get('product')}-{rel.get('version')}"
    names = sorted({a.name for a in arts})
    res = RolloutResult(release, api.url, names, stages=[StageResult(s.name, s.group) for s in stages])
    # nothing is deployed unless every artifact is on the server with the right payload
    res.uploads = [asdict(u) for u in upload_all(api, arts, f"buildctl release {release}")]
    save(res)
    deadline = clock() + th.timeout_s
    failures = 0
    for i, st in enumerate(res.stages):
        members = api.group_devices(st.group)
        if not members:
            return _stop(api, res, i, f"stage {st.name}: group {st.group} has no devices", save)
        st.state = "running"
        for n in names:
            dep_name = f"{release}/{st.name}" + (f"/{n}" if len(names) > 1 else "")
            st.deployments.append(_existing(api, dep_name, n, st.group)
                                  or api.create_group_deployment(st.group, dep_name, n))
        save(res)
        while True:
            finished, status = _stage_counts(api, st)
            st.devices = len(status)
            st.success = sum(1 for s in status.values() if s in DONE_OK)
            st.failure = sum(1 for s in status.values() if s in FAILED)
            st.noartifact = sum(1 for s in status.values() if s == "noartifact")
            targets = st.devices - st.noartifact
            need = math.ceil(targets * th.success_pct / 100.0)
            if failures + st.failure > th.max_failures:
                failures += st.failure
                st.state = "failed"
                return _stop(api, res, i + 1, f"stage {st.name}: {failures} device(s) failed "
                             f"(more than --max-failures {th.max_failures})", save, abort=st)
            if targets and st.success >= need:
                st.state = "succeeded"
                failures += st.failure
                break
            if finished:
                failures += st.failure
                st.state = "failed"
                return _stop(api, res, i + 1, f"stage {st.name}: {st.success} of {targets} "
                             f"device(s) succeeded, {th.success_pct:g}% needed", save)
            if clock() > deadline:
                st.state = "timeout"
                return _stop(api, res, i + 1, f"stage {st.name}: timed out", save, abort=st)
            save(res)
            sleep(th.poll_s)
        save(res)
    res.ok = True
    save(res)
    return res


def _existing(api: MenderAPI, name: str, artifact: str, group: str) -> str | None:
    """A rerun picks up the deployment an interrupted run created (never an aborted one)."""
    for d in api.deployments(name):
        if d.get("name") == name and d.get("artifact_name") == artifact \
                and group in (d.get("groups") or [group]) and d.get("status") != "finished":
            return d["id"]
    return None


def _stop(api: MenderAPI, res: RolloutResult, first_skipped: int, why: str,
          save: Callable[[RolloutResult], None], abort: StageResult | None = None) -> RolloutResult:
    if abort is not None:
        for dep in abort.deployments:
            api.abort(dep)
    for st in res.stages[first_skipped:]:
        st.state = "skipped"
    res.error = why
    save(res)
    return res
