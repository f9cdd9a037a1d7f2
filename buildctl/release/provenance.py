"""Provenance: an in-toto Statement v1 with a SLSA provenance v1 predicate for the whole
bundle, signed as a DSSE envelope with the release key.

Subjects: every file of the bundle (release.json and SHA256SUMS included). Resolved
dependencies: each layer repository at its commit, the manifests (by sha256), the builder
image (by digest). Times come from SOURCE_DATE_EPOCH: the same inputs give the same bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from buildctl.ota.mender.keys import PrivateKey
from buildctl.release.dsse import sign_envelope

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "https://buildctl.invalid/release/v1"
FILE_NAME = "provenance.intoto.json"


@dataclass
class ProvenanceInputs:
    product: str
    version: str
    boards: list[str]
    lock: dict[str, dict]  # repo -> {commit, url}
    manifests: list[dict]  # [{path, sha256}]
    builder: dict  # {image, digest}
    source_date_epoch: int | None
    tool_version: str
    subjects: dict[str, str] = field(default_factory=dict)  # path -> sha256


def _iso(sde: int | None) -> str | None:
    import datetime as dt
    if sde is None:
        return None
    return dt.datetime.fromtimestamp(sde, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def statement(p: ProvenanceInputs) -> dict:
    deps = []
    for name in sorted(p.lock):
        e = p.lock[name]
        d = {"name": name, "digest": {"gitCommit": e["commit"]}}
        if e.get("url"):
            d["uri"] = f"git+{e['url']}@{e['commit']}" if "://" in e["url"] else e["url"]
        deps.append(d)
    for m in p.manifests:
        deps.append({"name": m["path"], "digest": {"sha256": m["sha256"]}})
    if p.builder.get("digest"):
        digest = p.builder["digest"].split(":", 1)
        deps.append({"name": p.builder.get("image") or "builder-image",
                     "digest": {digest[0] if len(digest) == 2 else "sha256": digest[-1]}})
    metadata = {"invocationId": f"{p.product}-{p.version}"}
    if p.source_date_epoch is not None:
        metadata["startedOn"] = metadata["finishedOn"] = _iso(p.source_date_epoch)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": path, "digest": {"sha256": sha}}
                    for path, sha in sorted(p.subjects.items())],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"product": p.product, "version": p.version,
                                       "boards": sorted(p.boards)},
                "internalParameters": {"SOURCE_DATE_EPOCH": p.source_date_epoch},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": "https://buildctl.invalid/builder",
                            "version": {"buildctl": p.tool_version}},
                "metadata": metadata,
            },
        },
    }


def envelope(p: ProvenanceInputs, key: PrivateKey | None) -> dict:
    payload = json.dumps(statement(p), sort_keys=True, separators=(",", ":")).encode()
    return sign_envelope(payload, PAYLOAD_TYPE, key)
