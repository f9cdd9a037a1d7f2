"""Property: whatever valid artifact the writer is asked for, the reader reports it back."""
from __future__ import annotations

import hashlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildctl.ota.mender import (ArtifactSpec, Compression, DataSource, module_payload, read_artifact,
                                 write_artifact)

NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.,", min_size=1, max_size=30)
WORD = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S")), min_size=1,
               max_size=20)
KEY = st.text(alphabet="abcdefghijklmnopqrstuvwxyz.-_", min_size=1, max_size=20).filter(
    lambda k: k not in ("artifact_name", "artifact_group", "device_type"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=WORD, devices=st.lists(WORD, min_size=1, max_size=3, unique=True),
       module=NAME.filter(lambda m: m != "rootfs-image"),
       files=st.dictionaries(NAME.filter(lambda n: n not in (".", "..")), st.binary(max_size=3000), max_size=4),
       provides=st.dictionaries(KEY, WORD, max_size=3),
       depends=st.dictionaries(KEY, st.one_of(WORD, st.lists(WORD, min_size=1, max_size=2)), max_size=2),
       meta=st.one_of(st.none(), st.dictionaries(KEY, st.one_of(st.integers(-1000, 1000), WORD), max_size=3)),
       comp=st.sampled_from(["none", "gzip", "lzma", "zstd_fastest"]))
def test_write_read_round_trip(tmp_path_factory, name, devices, module, files, provides, depends,
                               meta, comp):
    out = tmp_path_factory.mktemp("prop") / "a.mender"
    payload = module_payload(module, [DataSource(n, data=d) for n, d in files.items()], name,
                             provides=provides, depends=depends, meta_data=meta,
                             default_software_version=False, default_clears=False)
    write_artifact(ArtifactSpec(name, devices, payload, compression=Compression.parse(comp)), out)
    info = read_artifact(out)
    p = info.payloads[0]
    assert (info.name, info.device_types, p.type) == (name, devices, module)
    assert p.provides == provides and p.depends == depends and p.meta_data == meta
    assert [(f.name, f.size, f.sha256) for f in p.files] == \
        [(n, len(d), hashlib.sha256(d).hexdigest()) for n, d in files.items()]


def test_writer_refuses_names_the_reader_would_refuse(tmp_path):
    import pytest

    from buildctl.ota.mender import ArtifactError
    for bad in (".", "..", "a b", "a/b", ""):
        with pytest.raises(ArtifactError):
            write_artifact(ArtifactSpec("n", ["d"], module_payload("m", [DataSource(bad, data=b"x")], "n")),
                           tmp_path / "x.mender")
    assert not list(tmp_path.iterdir())
