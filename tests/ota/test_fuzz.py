"""10,000+ mutated artifacts: the reader either rejects one with an ArtifactError, or accepts it
and then reports exactly what the original says (name, device types, payload types, provides,
depends, clears, meta-data, scripts, every payload file's name, size and sha256). A mutant
that is accepted but reports something else is the failure hunted here: damage that slipped
through the checksums.

Mutations: bit flips, byte overwrites, truncation, insertion, deletion, block duplication and
swaps, applied to small valid artifacts (signed gzip, plain, xz, zstd, module with scripts).
For the uncompressed one, outer tar header checksums are repaired after the mutation so the
damage reaches the inner parsers instead of stopping at the first header.
"""
from __future__ import annotations

import io
import json
import random
import tarfile

import pytest

from buildctl.ota.mender import (ArtifactError, ArtifactSpec, Compression, DataSource, Limits,
                                 load_private_key, load_public_key, module_payload, read_artifact,
                                 rootfs_payload, write_artifact)
from tests.ota.helpers import make_scripts, mixed_bytes

N = 10_000


def summary(info) -> dict:
    """What a device or server acts on; an accepted mutant must report the same."""
    return {
        "name": info.name, "group": info.group, "device_types": info.device_types,
        "depends_artifact_names": info.depends_artifact_names,
        "depends_groups": info.depends_groups, "scripts": info.scripts,
        "payloads": [(p.type, p.provides, p.depends, p.clears_provides, p.meta_data,
                      [(f.name, f.size, f.sha256) for f in p.files]) for p in info.payloads],
        "augment": info.augment and (info.augment.type, info.augment.provides),
    }


def _fix_checksums(blob: bytearray) -> None:
    """Recompute every plausible tar header checksum (512-aligned blocks)."""
    for off in range(0, len(blob) - 511, 512):
        block = blob[off:off + 512]
        if block[257:262] != b"ustar":
            continue
        s = sum(block[:148]) + 256 + sum(block[156:])
        blob[off + 148:off + 156] = f"{s:06o}".encode() + b"\0 "


def _mutate(rng: random.Random, blob: bytes) -> bytes:
    b = bytearray(blob)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        op = rng.randrange(7)
        pos = rng.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[pos] = rng.randrange(256)
        elif op == 2:
            del b[rng.randrange(len(b) + 1):]
        elif op == 3:
            b[pos:pos] = rng.randbytes(rng.randrange(1, 600))
        elif op == 4:
            del b[pos:pos + rng.randrange(1, 600)]
        elif op == 5 and len(b) > 1024:
            start = rng.randrange(0, len(b) // 512) * 512
            b[start:start] = b[start:start + 512 * rng.randrange(1, 4)]
        elif op == 6 and len(b) > 2048:
            i, j = sorted(rng.sample(range(len(b) // 512), 2))
            bi, bj = b[i * 512:(i + 1) * 512], b[j * 512:(j + 1) * 512]
            b[i * 512:(i + 1) * 512], b[j * 512:(j + 1) * 512] = bj, bi
    return bytes(b)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, keys):
    d = tmp_path_factory.mktemp("fuzz")
    img = d / "rootfs.ext4"
    img.write_bytes(mixed_bytes(6000))
    scripts = make_scripts(d / "scripts")
    key = load_private_key(keys["rsa"])
    out = []
    for i, comp in enumerate(["gzip", "none", "lzma", "zstd"]):
        p = d / f"{comp}.mender"
        write_artifact(ArtifactSpec("fz-1", ["dev"], rootfs_payload(img, "fz-1"),
                                    compression=Compression.parse(comp), scripts=scripts),
                       p, key=key if i % 2 == 0 else None)
        out.append((comp, p.read_bytes()))
    p = d / "module.mender"
    write_artifact(ArtifactSpec("m-1", ["dev"], module_payload(
        "single-file", [DataSource("dest_dir", data=b"/etc\n"), DataSource("a.conf", data=b"x=1\n")],
        "m-1", meta_data={"k": "v"}), compression=Compression("none")), p)
    out.append(("module", p.read_bytes()))
    # the same members re-packed by Python's tarfile in PAX and GNU formats (long-name paths)
    for fmt, name in ((tarfile.PAX_FORMAT, "pax"), (tarfile.GNU_FORMAT, "gnu")):
        src = tarfile.open(fileobj=io.BytesIO(out[1][1]))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as dst:
            for m in src.getmembers():
                m.pax_headers = {"mtime": "1700000000.5", "comment": "x" * 50}
                dst.addfile(m, src.extractfile(m))
        out.append(("none", buf.getvalue()))
    return out


def test_fuzz_mutated_artifacts(corpus, keys):
    pub = load_public_key(keys["rsa-pub"])
    rng = random.Random(20261124)
    limits = Limits(data_bytes=1 << 20, header=1 << 20)
    originals = [summary(read_artifact(io.BytesIO(blob))) for _, blob in corpus]
    assert all(o["payloads"][0][5] for o in originals)  # every original carries payload files
    outcomes = {"ok": 0, "rejected": 0, "unchanged": 0}
    for i in range(N):
        index = i % len(corpus)
        kind, base = corpus[index]
        blob = _mutate(rng, base)
        if kind in ("none", "module") and rng.random() < 0.7:
            fixed = bytearray(blob)
            _fix_checksums(fixed)
            blob = bytes(fixed)
        outcomes["unchanged"] += blob == base
        try:
            info = read_artifact(io.BytesIO(blob), public_key=pub if rng.random() < 0.3 else None,
                                 limits=limits)
        except ArtifactError as exc:
            assert str(exc) and "\n" not in str(exc)
            outcomes["rejected"] += 1
            continue
        except Exception as exc:  # pragma: no cover - the failure we hunt for
            raise AssertionError(f"mutation {i} of {kind}: unhandled {type(exc).__name__}: {exc}")
        outcomes["ok"] += 1
        got = summary(info)
        assert got == originals[index], (f"mutation {i} of {kind} was accepted but reports "
                                         f"something else than the original:\n{got}\n"
                                         f"{originals[index]}")
    assert outcomes["rejected"] > N * 0.8  # mutations are caught, not silently accepted
    assert outcomes["ok"] > outcomes["unchanged"]  # some harmless mutants were accepted too
    assert sum(outcomes[k] for k in ("ok", "rejected")) == N
    print(f"fuzz outcomes: {outcomes}")


def test_fuzz_header_json_behind_valid_checksums():
    """Mutate header-info / type-info / meta-data / script names, then rebuild the artifact with
    correct sums, so the mutations reach the JSON and naming rules instead of the checksums."""
    from tests.ota.helpers import build_raw

    rng = random.Random(7)
    header_info = (b'{"payloads":[{"type":"rootfs-image"}],"artifact_provides":{"artifact_name":"r1",'
                   b'"artifact_group":"g"},"artifact_depends":{"artifact_name":["r0"],'
                   b'"device_type":["dev"],"artifact_group":["g"]}}')
    type_info = (b'{"type":"rootfs-image","artifact_depends":{"a":"b","c":["d"]},'
                 b'"artifact_provides":{"x":"y"},"clears_artifact_provides":["x*"]}')
    meta = b'{"k":{"n":[1,2]}}'
    tokens = [b'"', b"{", b"}", b"[", b"]", b",", b":", b"null", b"true", b"1e999", b'""', b"\\u0000",
              b'"type"', b'"payloads"', b'"device_type"', b"\xff", b" "]
    rejected = 0
    for i in range(3000):
        parts = [header_info, type_info, meta, b"ArtifactInstall_Enter_00_x"]
        j = rng.randrange(4)
        b = bytearray(parts[j])
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(len(b) + 1)
            op = rng.randrange(3)
            if op == 0:
                b[pos:pos] = rng.choice(tokens)
            elif op == 1:
                del b[pos:pos + rng.randrange(1, 6)]
            else:
                b[pos:pos + 1] = bytes([rng.randrange(256)])
        parts[j] = bytes(b)
        script = parts[3].decode("utf-8", "replace").replace("/", "_")
        blob = build_raw(header_info=parts[0], type_info=parts[1], meta=parts[2],
                         extra_header=[(f"scripts/{script}", b"#!/bin/sh\n")])
        try:
            info = read_artifact(io.BytesIO(blob))
        except ArtifactError as exc:
            assert "\n" not in str(exc)
            rejected += 1
            continue
        except Exception as exc:  # pragma: no cover
            raise AssertionError(f"iteration {i}: unhandled {type(exc).__name__}: {exc}") from None
        # accepted: the report is what the (mutated) JSON says, nothing else
        hi, ti = json.loads(parts[0]), json.loads(parts[1])
        meta_obj = json.loads(parts[2]) if parts[2].strip() else None
        assert info.name == hi["artifact_provides"]["artifact_name"], i
        assert info.group == hi["artifact_provides"].get("artifact_group", ""), i
        assert info.device_types == hi.get("artifact_depends", {}).get("device_type", []), i
        assert info.payloads[0].type == hi["payloads"][0]["type"], i
        assert info.payloads[0].provides == ti.get("artifact_provides", {}), i
        assert info.payloads[0].depends == ti.get("artifact_depends", {}), i
        assert info.payloads[0].clears_provides == ti.get("clears_artifact_provides", []), i
        assert info.payloads[0].meta_data == meta_obj, i
        assert info.scripts == [script], i
        assert [(f.name, f.size) for f in info.payloads[0].files] == [("rootfs.ext4", 1000)], i
    assert 0 < rejected < 3000
