"""The fixture builders other tests use: the standard stack is clean, its variants are not."""
from __future__ import annotations

from buildctl.layers import check_stack, read_layers
from buildctl.layers.layerinfo import LayerRef
from tests.helpers.fixture_layers import make_standard_stack


def refs(stack):
    return [LayerRef(str(r.path), r.commit, layer, r.name) for r in stack.values() for layer in r.layers]


def test_standard_stack_is_clean(tmp_path, fs):
    stack = make_standard_stack(tmp_path)
    assert set(stack) == {"openembedded-core", "meta-openembedded", "meta-mender", "meta-acme"}
    assert stack["meta-openembedded"].layers == ("meta-oe", "meta-python")
    infos = read_layers(refs(stack), fs=fs)
    assert check_stack("acme", infos, series="scarthgap", machine="acme-board", distro="mender-demo", bootloader="u-boot") == []


def test_standard_stack_variants_fail(tmp_path, fs):
    old = make_standard_stack(tmp_path / "a", bsp_compat=["kirkstone"])
    found = check_stack("acme", read_layers(refs(old), fs=fs), series="scarthgap", machine="acme-board", distro="")
    assert [f.code for f in found] == ["series-compat"] and found[0].file == "meta-acme/conf/layer.conf"
    wr = make_standard_stack(tmp_path / "b", series="wrynose")
    found = check_stack("acme", read_layers(refs(wr), fs=fs), series="scarthgap", machine="acme-board", distro="")
    assert [f.code for f in found] == ["core-series"]


def test_unreadable_commit_is_a_finding_per_board(tmp_path, fs):
    import pytest

    from buildctl.layers.gitfs import GitReadError

    stack = make_standard_stack(tmp_path)
    bad = refs(stack)
    bad[-1] = LayerRef(bad[-1].repo_path, "1" * 40, "", "meta-acme")
    with pytest.raises(GitReadError):
        read_layers(bad, fs=fs)
    infos = read_layers(bad, fs=fs, record_errors=True)
    found = check_stack("acme", infos, series="scarthgap", machine="acme-board", distro="")
    assert [f.code for f in found] == ["layer-unreadable", "machine-missing"]
    assert found[0].file == "meta-acme/conf/layer.conf"
    assert found[0].message.startswith(f"{stack['meta-acme'].path}: commit '{'1' * 40}' not found")
