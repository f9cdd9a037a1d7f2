"""LayerInfo read from fixture repositories (and the real layers when their mirror exists)."""
from __future__ import annotations

import os

import pytest

from buildctl.layers.layerinfo import LayerDep, parse_depends, read_layer, recipe_name_version
from tests.helpers import skips
from tests.helpers.fixture_layers import LayerSpec, make_layer_repo


def test_core_layer(core_repo, fs):
    path, commit = core_repo
    info = read_layer(path, commit, "meta", fs=fs)
    assert info.name == "openembedded-core/meta"
    assert info.conf_file == "openembedded-core/meta/conf/layer.conf"
    assert info.commit == commit
    (core,) = info.collections
    assert core.name == "core"
    assert core.priority.value == "5"
    assert core.version.value == "15"
    assert core.compat == ("scarthgap",)
    assert info.corenames.value == "scarthgap"
    assert info.corenames.line is not None
    assert "qemux86-64" in info.machines
    assert info.machines["qemux86-64"].features() == ["acpi", "alsa", "efi", "pci", "screen", "usbhost", "x86"]
    ub = [r for r in info.recipes if r.pn == "u-boot"]
    assert [(r.pv, r.file) for r in ub] == [("2024.01", "openembedded-core/meta/recipes-u-boot/u-boot/u-boot_2024.01.bb")]


def test_bsp_layer_everything_with_lines(tmp_path, fs):
    spec = LayerSpec(
        collection="foo",
        priority=9,
        depends=["core (>= 12)", "openembedded-layer"],
        recommends=["lts-u-boot-mixin"],
        compat=["nanbield", "scarthgap"],
        version="3",
        machines={"foo-board": 'MACHINE_FEATURES:append = " efi"\nrequire conf/machine/include/foo.inc\n'},
        distros=["foo-os"],
        recipes=["hello_1.0.bb", "recipes-bsp/fw/fw.bb"],
        bbappends=["u-boot_%.bbappend"],
        dynamic={"meta-python": ["python3-foo_%.bbappend"]},
    )
    path, commit = make_layer_repo(tmp_path, "meta-foo", {"": spec})
    info = read_layer(path, commit, fs=fs)
    (c,) = info.collections
    conf = (path / "conf/layer.conf").read_text().splitlines()
    assert conf[c.depends_at.line - 1].startswith("LAYERDEPENDS_foo")
    assert conf[c.compat_at.line - 1].startswith("LAYERSERIES_COMPAT_foo")
    assert conf[c.line - 1].startswith("BBFILE_COLLECTIONS")
    assert c.depends == (LayerDep("core", ">=", "12"), LayerDep("openembedded-layer"))
    assert c.recommends == (LayerDep("lts-u-boot-mixin"),)
    assert c.priority.value == "9" and c.version.value == "3"
    assert c.pattern == "^/meta-foo/"
    assert info.corenames is None
    assert list(info.machines) == ["foo-board"] and list(info.distros) == ["foo-os"]
    m = info.machines["foo-board"]
    assert m.file == "meta-foo/conf/machine/foo-board.conf"
    assert m.includes[0].value == "conf/machine/include/foo.inc"
    assert sorted((r.pn, r.pv) for r in info.recipes) == [("fw", "1.0"), ("hello", "1.0")]
    apps = {(a.filename, a.dynamic) for a in info.bbappends}
    assert apps == {("u-boot_%.bbappend", ""), ("python3-foo_%.bbappend", "meta-python")}


def test_bbfiles_honoured(tmp_path, fs):
    # Only what BBFILES names is a recipe: a layer whose BBFILES covers recipes-core only.
    spec = LayerSpec(collection="foo", recipes=["recipes-core/a/a_1.bb", "recipes-x/b/b_1.bb"],
                     bbappends=["recipes-x/c/c_1.bbappend"])
    path, commit = make_layer_repo(tmp_path, "meta-foo", {"": spec})
    conf = (path / "conf/layer.conf").read_text()
    from tests.helpers.fixture_layers import commit_files

    new = commit_files(path, {"conf/layer.conf": conf.replace("recipes-*/*/*.bb \\", "recipes-core/*/*.bb \\")
                              .replace("${LAYERDIR}/recipes-*/*/*.bbappend", "")})
    assert {r.pn for r in read_layer(path, commit, fs=fs).recipes} == {"a", "b"}
    info = read_layer(path, new, fs=fs)
    assert {r.pn for r in info.recipes} == {"a"}
    assert info.bbappends == []


def test_sublayer_and_inline_python_bbfiles(tmp_path, fs):
    spec = LayerSpec(
        collection="oe",
        recipes=["lmdb_0.9.bb"],
        extra_conf='BBFILES += "${@\' \'.join(\'${LAYERDIR}/dyn/%s/*.bb\' % l for l in BBFILE_COLLECTIONS.split())}"\n',
    )
    path, commit = make_layer_repo(tmp_path, "meta-openembedded", {"meta-oe": spec, "meta-python": LayerSpec(collection="meta-python")})
    info = read_layer(path, commit, "meta-oe", fs=fs)
    assert info.name == "meta-openembedded/meta-oe"
    assert [r.file for r in info.recipes] == ["meta-openembedded/meta-oe/recipes-lmdb/lmdb/lmdb_0.9.bb"]
    other = read_layer(path, commit, "meta-python", fs=fs)
    assert other.collection_names == ["meta-python"] and other.recipes == []


def test_problems_are_recorded_not_raised(tmp_path, fs):
    path, commit = make_layer_repo(
        tmp_path, "meta-bad",
        {"good": LayerSpec(collection="good", extra_conf='THIS IS NOT BITBAKE\n'), "nolayer": LayerSpec(collection="x")},
        files={"nolayer/conf/layer.conf": 'X = "1"\n'},
    )
    bad = read_layer(path, commit, "good", fs=fs)
    (p,) = bad.problems
    assert p.code == "conf-syntax" and p.file == "meta-bad/good/conf/layer.conf"
    assert p.line == len((path / "good/conf/layer.conf").read_text().splitlines())
    missing = read_layer(path, commit, "absent", fs=fs)
    assert [q.code for q in missing.problems] == ["layer-conf-missing"]
    assert "meta-bad/absent has no conf/layer.conf" in missing.problems[0].message


def test_parse_depends_and_names():
    assert parse_depends("core (>= 12) openembedded-layer") == [LayerDep("core", ">=", "12"), LayerDep("openembedded-layer")]
    assert parse_depends("  a(<3)  b ") == [LayerDep("a", "<", "3"), LayerDep("b")]
    with pytest.raises(ValueError):
        parse_depends("a (>= 1")
    assert recipe_name_version("busybox_1.36.1.bb") == ("busybox", "1.36.1")
    assert recipe_name_version("packagegroup-base.bb") == ("packagegroup-base", "1.0")


# --- the real layers, from the yocto kit beside the checkout ------------------------------
OE_CORE = str(skips.KIT / "git.openembedded.org.openembedded-core")
RPI = str(skips.KIT / "github.com.agherzan.meta-raspberrypi.git")
META_OE = str(skips.KIT / "git.openembedded.org.meta-openembedded")
real = skips.unless(all(os.path.isdir(p) for p in (OE_CORE, RPI, META_OE)),
                    f"yocto kit not found at {skips.KIT}")


@real
def test_real_scarthgap_layers(fs):
    core = read_layer(OE_CORE, "scarthgap", "meta", "openembedded-core", fs=fs)
    assert core.problems == []
    assert core.collection_names == ["core"]
    assert core.corenames.value.split() == ["scarthgap"]
    assert core.collections[0].compat == ("scarthgap",)
    assert "qemux86-64" in core.machines and "defaultsetup" in core.distros
    assert any(r.pn == "busybox" for r in core.recipes) and len(core.recipes) > 500

    rpi = read_layer(RPI, "scarthgap", "", "meta-raspberrypi", fs=fs)
    assert rpi.problems == []
    (c,) = rpi.collections
    assert (c.name, c.priority.value, c.depends, set(c.compat)) == ("raspberrypi", "9", (LayerDep("core"),), {"nanbield", "scarthgap"})
    assert "raspberrypi4-64" in rpi.machines
    assert "meta-raspberrypi/recipes-bsp/u-boot/u-boot_%.bbappend" in {a.file for a in rpi.bbappends}
    # dynamic-layers entries come from BBFILES_DYNAMIC and carry their collection
    assert any(a.dynamic == "openembedded-layer" for a in rpi.bbappends)

    py = read_layer(META_OE, "scarthgap", "meta-python", "meta-openembedded", fs=fs)
    assert py.collections[0].depends == (LayerDep("core", ">=", "12"), LayerDep("openembedded-layer"))
