"""Every stack check: one failing and one passing case, asserting what the user reads."""
from __future__ import annotations


import pytest

from buildctl.layers.bbconf import parse
from buildctl.layers.checks import bbappend_matches, check_assignments, check_stack, vercmp
from buildctl.layers.layerinfo import read_layer
from tests.layers import kit
from tests.helpers.fixture_layers import LayerSpec, make_core_repo, make_layer_repo


@pytest.fixture
def stack(tmp_path, fs, core_repo):
    """stack(**layers) -> [core LayerInfo, one LayerInfo per LayerSpec (repo named after key)]."""

    calls = iter(range(1000))

    def build(core=None, **specs: LayerSpec):
        base = tmp_path / f"stack{next(calls)}"
        if core is None:
            cpath, ccommit = core_repo
        else:
            cpath, ccommit = make_core_repo(base, **core)
        layers = [read_layer(cpath, ccommit, "meta", fs=fs)]
        for name, spec in specs.items():
            name = name.replace("_", "-")
            path, commit = make_layer_repo(base, name, {"": spec})
            layers.append(read_layer(path, commit, fs=fs))
        return layers

    return build


def run(layers, machine="qemux86-64", distro="", series="scarthgap", **kw):
    return check_stack("board1", layers, series=series, machine=machine, distro=distro, **kw)


def codes(findings):
    return [f.code for f in findings]


def test_clean_stack_has_no_findings(stack):
    layers = stack(meta_foo=LayerSpec(collection="foo", depends=["core (>= 12)"], machines=["foo-board"],
                                      distros=["foo-os"], bbappends=["u-boot_%.bbappend", "busybox_1.%.bbappend"]))
    assert run(layers, machine="foo-board", distro="foo-os") == []


def test_series_compat(stack):
    layers = stack(meta_old=LayerSpec(collection="old", compat=["kirkstone", "langdale"]))
    (f,) = run(layers)
    assert f.code == "series-compat" and f.board == "board1"
    assert f.message == ("layer 'old' (meta-old) is compatible with kirkstone langdale, not with the core "
                         "layer's series scarthgap: use its scarthgap branch")
    assert f.file == "meta-old/conf/layer.conf"
    assert f.line == layers[1].collections[0].compat_at.line
    assert run(stack(meta_ok=LayerSpec(collection="ok", compat=["kirkstone", "scarthgap"]))) == []


def test_series_compat_uses_corenames_not_product_series(stack):
    # OE-core master lists two names; a layer compatible with either is accepted.
    layers = stack(core={"series": "wrynose", "corenames": ["wrynose", "blacksail"]},
                   meta_new=LayerSpec(collection="new", compat=["blacksail"]))
    assert run(layers, series="wrynose") == []


def test_core_on_wrong_series(stack):
    layers = stack(core={"series": "kirkstone"})
    found = run(layers)
    assert codes(found) == ["core-series"]
    assert "is for series kirkstone, but the product is built for 'scarthgap'" in found[0].message
    assert found[0].file == "openembedded-core/meta/conf/layer.conf"


def test_without_core_the_product_series_is_used(tmp_path, fs):
    path, commit = make_layer_repo(tmp_path, "meta-a", {"": LayerSpec(collection="a", compat=["kirkstone"], machines=["m"])})
    layers = [read_layer(path, commit, fs=fs)]
    assert codes(run(layers, machine="m")) == ["series-compat"]
    assert run(layers, machine="m", series="kirkstone") == []


def test_missing_compat_is_a_warning(stack):
    (f,) = run(stack(meta_lazy=LayerSpec(collection="lazy", compat=None)))
    assert (f.code, f.severity) == ("series-compat-missing", "warning")
    assert "does not set LAYERSERIES_COMPAT_lazy" in f.message


def test_layer_depends_missing(stack):
    layers = stack(meta_mender=LayerSpec(collection="mender", depends=["core", "openembedded-layer"]))
    (f,) = run(layers)
    assert f.code == "layer-depends"
    assert f.message.startswith("layer 'mender' (meta-mender) depends on layer 'openembedded-layer', but no layer of this board provides")
    assert (f.file, f.line) == ("meta-mender/conf/layer.conf", layers[1].collections[0].depends_at.line)
    ok = stack(meta_oe=LayerSpec(collection="openembedded-layer", depends=["core"]),
               meta_mender=LayerSpec(collection="mender", depends=["core", "openembedded-layer"]))
    assert run(ok) == []


def test_layer_depends_version(stack):
    (f,) = run(stack(meta_py=LayerSpec(collection="py", depends=["core (>= 16)"])))
    assert f.code == "layer-depends-version"
    assert f.message == ("layer 'py' depends on version >= 16 of layer 'core', but openembedded-core/meta is "
                         "version 15: check both layers are on matching branches")
    assert run(stack(meta_py=LayerSpec(collection="py", depends=["core (< 16)"]))) == []
    # a constraint on a layer that declares no LAYERVERSION cannot be met either
    found = run(stack(meta_b=LayerSpec(collection="b"), meta_a=LayerSpec(collection="a", depends=["b (= 1)"])))
    assert codes(found) == ["layer-depends-version"] and "sets no LAYERVERSION_b" in found[0].message


def test_machine_missing(stack):
    layers = stack(meta_rpi=LayerSpec(collection="rpi", machines=["raspberrypi4-64"]))
    (f,) = run(layers, machine="raspberrypi4", manifest_file="machines/rpi4.yml", manifest_lines={"machine": 2})
    assert f.code == "machine-missing"
    assert f.message == ("MACHINE 'raspberrypi4' is not defined by any layer of this board "
                         "(no conf/machine/raspberrypi4.conf) (did you mean raspberrypi4-64?)")
    assert (f.file, f.line) == ("machines/rpi4.yml", 2)
    assert run(layers, machine="raspberrypi4-64") == []


def test_distro_missing(stack):
    layers = stack(meta_d=LayerSpec(collection="d", distros=["poky"]))
    (f,) = run(layers, distro="pokyy")
    assert f.code == "distro-missing" and "DISTRO 'pokyy' is not defined" in f.message and "did you mean poky" in f.message
    assert run(layers, distro="poky") == []
    assert run(layers, distro="nodistro") == []  # OE-core's default needs no file


@pytest.mark.parametrize(
    "append,recipe,want",
    [
        ("u-boot_%.bbappend", "u-boot_2024.01.bb", True),
        ("u-boot_%.bbappend", "u-boot-tools_2024.01.bb", False),
        ("u-boot_%.bbappend", "u-boot.bb", False),
        ("busybox_1.%.bbappend", "busybox_1.36.1.bb", True),
        ("busybox_1.35.%.bbappend", "busybox_1.36.1.bb", False),
        ("busybox_1.36.1.bbappend", "busybox_1.36.1.bb", True),
        ("busybox_1.36.bbappend", "busybox_1.36.1.bb", False),
        ("formfactor.bbappend", "formfactor.bb", True),
        ("lirc_0.10.%.bbappend", "lirc_0.10.2.bb", True),
        ("%.bbappend", "anything_1.0.bb", True),  # BitBake's rule: empty prefix matches all
    ],
)
def test_bbappend_wildcard_rule(append, recipe, want):
    assert bbappend_matches(append, recipe) is want


def test_bbappend_dangling(stack):
    layers = stack(meta_bsp=LayerSpec(collection="bsp", bbappends=["u-boot_2023.04.bbappend", "u-boot_%.bbappend"]))
    (f,) = run(layers)
    assert f.code == "bbappend-dangling"
    assert f.file == "meta-bsp/recipes-u-boot/u-boot/u-boot_2023.04.bbappend"
    assert f.message.startswith("u-boot_2023.04.bbappend matches no recipe; the stack has u-boot_2024.01.bb")
    (g,) = run(stack(meta_bsp=LayerSpec(collection="bsp", bbappends=["lmdb_%.bbappend"])))
    assert "no recipe named lmdb in the stack" in g.message


def test_bbappend_for_recipe_of_another_layer_and_dynamic_layers(stack):
    dyn = LayerSpec(collection="bsp", dynamic={"openembedded-layer": ["lmdb_%.bbappend"]})
    assert run(stack(meta_bsp=dyn)) == []  # meta-oe absent: its dynamic appends are not used
    found = run(stack(meta_oe=LayerSpec(collection="openembedded-layer"), meta_bsp=dyn))
    assert codes(found) == ["bbappend-dangling"]
    ok = run(stack(meta_oe=LayerSpec(collection="openembedded-layer", recipes=["lmdb_0.9.31.bb"]), meta_bsp=dyn))
    assert ok == []


def test_duplicate_collection(stack):
    found = run(stack(meta_a=LayerSpec(collection="shared"), meta_b=LayerSpec(collection="shared")))
    assert codes(found) == ["collection-duplicate"]
    assert found[0].file == "meta-b/conf/layer.conf"
    assert "declared by both meta-a (meta-a/conf/layer.conf:" in found[0].message


def test_layer_problems_become_findings(stack):
    (f,) = run(stack(meta_x=LayerSpec(collection="x", extra_conf="nonsense here\n")))
    assert (f.code, f.file) == ("conf-syntax", "meta-x/conf/layer.conf")
    assert f.message == "unparsed line: nonsense here" and f.line


def test_bootloader_grub_efi_needs_the_grub_efi_recipe_not_an_efi_machine_feature(stack):
    # meta-mender's GRUB integration sets EFI_PROVIDER itself (and uses U-Boot as the EFI
    # loader on ARM), so a machine without 'efi' in MACHINE_FEATURES is fine...
    layers = stack(meta_b=LayerSpec(collection="b", machines={"arm-board": 'MACHINE_FEATURES = "usbhost"\n'}))
    assert run(layers, machine="arm-board", bootloader="grub-efi") == []  # the core has grub-efi
    # ...but without a grub-efi recipe in the stack there is nothing to build
    no_grub = stack(core={"recipes": ["busybox_1.36.1.bb"]},
                    meta_b=LayerSpec(collection="b", machines={"arm-board": 'MACHINE_FEATURES = "usbhost"\n'}))
    (f,) = run(no_grub, machine="arm-board", bootloader="grub-efi", manifest_file="machines/x.yml",
               manifest_lines={"bootloader": 7})
    assert f.code == "bootloader-unusable" and (f.file, f.line) == ("machines/x.yml", 7)
    assert "needs a grub-efi recipe" in f.message


def test_bootloader_provider_from_local_conf(stack):
    # the board's own configuration can choose the bootloader provider
    layers = stack(meta_b=LayerSpec(collection="b", machines=["x-board"]))
    local = parse('PREFERRED_PROVIDER_virtual/bootloader = "u-boot-vendor"\n', "build/conf/local.conf")
    (f,) = run(layers, machine="x-board", bootloader="u-boot", local_conf=local)
    assert "wants virtual/bootloader from 'u-boot-vendor'" in f.message
    assert run(layers, machine="x-board", bootloader="u-boot") == []


def test_bootloader_provider_from_required_include(stack):
    # machine settings often come from an include in another layer (found via BBPATH)
    layers = stack(
        meta_soc=LayerSpec(collection="soc", files={
            "conf/machine/include/soc.inc": 'PREFERRED_PROVIDER_virtual/bootloader = "u-boot-soc"\n'}),
        meta_b=LayerSpec(collection="b", depends=["soc"],
                         machines={"x-board": 'MACHINE_FEATURES = "pci"\nrequire conf/machine/include/soc.inc\n'}),
    )
    (f,) = run(layers, machine="x-board", bootloader="u-boot")
    assert "wants virtual/bootloader from 'u-boot-soc'" in f.message


def test_bootloader_u_boot_provider(stack, tmp_path, fs):
    board = {"b1": 'PREFERRED_PROVIDER_virtual/bootloader = "u-boot-vendor"\n'}
    layers = stack(meta_b=LayerSpec(collection="b", machines=board))
    (f,) = run(layers, machine="b1", bootloader="u-boot")
    assert "wants virtual/bootloader from 'u-boot-vendor'" in f.message
    assert run(stack(meta_b=LayerSpec(collection="b", machines=board, recipes=["u-boot-vendor_2024.bb"])),
               machine="b1", bootloader="u-boot") == []
    no_uboot = stack(core={"recipes": ["busybox_1.36.1.bb", "u-boot-tools_2024.01.bb"]},
                     meta_b=LayerSpec(collection="b", machines=["b2"]))
    (g,) = run(no_uboot, machine="b2", bootloader="u-boot")
    assert g.message == "bootloader 'u-boot' needs a u-boot recipe (virtual/bootloader), but no layer of this board has one"


def test_check_assignments_names_both_places():
    sts = parse('MENDER_STORAGE_TOTAL_SIZE_MB = "8192"\nIMAGE_FSTYPES += "ext4"\n', "kas/local.conf") + parse(
        'MENDER_STORAGE_TOTAL_SIZE_MB = "4096"\nIMAGE_FSTYPES += "sdimg"\nX:rpi = "a"\nX = "b"\n', "machines/rpi.conf"
    )
    (f,) = check_assignments("rpi", sts)
    assert (f.code, f.board, f.file, f.line, f.severity) == ("assignment-conflict", "rpi", "machines/rpi.conf", 1, "warning")
    assert f.message == ('MENDER_STORAGE_TOTAL_SIZE_MB is set to "8192" at kas/local.conf:1 and to "4096" at '
                         'machines/rpi.conf:1; only the later value is used')
    same = parse('A = "x  y"\nA = "x y"\nA:append = " z"\nA[doc] = "1"\nA[doc] = "1"\n', "a.conf")
    assert check_assignments("b", same) == []


def test_vercmp():
    assert vercmp("15", "12") == 1 and vercmp("9", "12") == -1 and vercmp("1.0", "1.0") == 0
    assert vercmp("1.10", "1.9") == 1


# --- the real layers, from the yocto-kit beside the checkout ---------------------------------
REPOS = {"openembedded-core": kit.OE_CORE, "meta-openembedded": kit.META_OE,
         "meta-raspberrypi": kit.RPI}


def test_real_raspberrypi_stack(fs):
    repos = {k: kit.kit_repo(v) for k, v in REPOS.items()}

    def stack(core_rev):
        return [
            read_layer(repos["openembedded-core"], core_rev, "meta", "openembedded-core", fs=fs),
            read_layer(repos["meta-openembedded"], core_rev, "meta-oe", "meta-openembedded", fs=fs),
            read_layer(repos["meta-raspberrypi"], "scarthgap", "", "meta-raspberrypi", fs=fs),
        ]

    good = stack("scarthgap")
    assert run(good, machine="raspberrypi4-64", bootloader="u-boot") == []
    # meta-mender builds GRUB for the Pi with U-Boot as EFI loader: both integrations are usable
    assert run(good, machine="raspberrypi4-64", bootloader="grub-efi") == []
    (m,) = run(good, machine="raspberrypi4-46")
    assert m.code == "machine-missing" and "did you mean raspberrypi4-64" in m.message
    # the scarthgap BSP on a wrynose core (the kit has no wrynose meta-raspberrypi)
    newer = run(stack("wrynose"), machine="raspberrypi4-64", series="wrynose")
    compat = [x for x in newer if x.code == "series-compat"]
    assert [x.file for x in compat] == ["meta-raspberrypi/conf/layer.conf"]
    assert "compatible with nanbield scarthgap, not with the core layer's series wrynose" in compat[0].message
    conf = stack("wrynose")[2].read_text("conf/layer.conf").splitlines()
    assert conf[compat[0].line - 1].startswith("LAYERSERIES_COMPAT_raspberrypi")


def test_recipe_index_agrees_with_bitbake_rule():
    from buildctl.layers.checks import _RecipeIndex

    recipes = ["u-boot_2024.01.bb", "u-boot-tools_2024.01.bb", "busybox_1.36.1.bb", "a.bb", "formfactor.bb"]
    appends = ["u-boot_%.bbappend", "u-boot-t%.bbappend", "busybox_1.3%.bbappend", "busybox_2.%.bbappend",
               "a.bb%.bbappend", "a.bbappend", "formfactor.bbappend", "%.bbappend", "zz_%.bbappend", "u%.bbappend"]
    idx = _RecipeIndex(recipes)
    for app in appends:
        assert idx.matches(app) == any(bbappend_matches(app, r) for r in recipes), app


def test_priority_and_pattern(stack):
    bad = stack(meta_p=LayerSpec(collection="p", priority=None, extra_conf='BBFILE_PRIORITY_p = "high"\nunset BBFILE_PATTERN_p\n'))
    found = run(bad)
    assert codes(found) == ["layer-priority", "layer-pattern"]
    assert found[0].message == 'BBFILE_PRIORITY_p is "high", not a whole number'
    conf = bad[1].read_text("conf/layer.conf").splitlines()
    assert conf[found[0].line - 1] == 'BBFILE_PRIORITY_p = "high"'
    assert "does not set BBFILE_PATTERN_p" in found[1].message
    assert run(stack(meta_p=LayerSpec(collection="p", priority=12))) == []


def test_real_mender_stack(fs):
    from buildctl.layers.layerinfo import LayerRef, read_layers

    oe, rpi = kit.kit_repo(kit.META_OE), kit.kit_repo(kit.RPI)
    core, yocto, mender = kit.kit_repo(kit.OE_CORE), kit.kit_repo(kit.META_YOCTO), kit.kit_repo(kit.MENDER)
    refs = [
        LayerRef(core, "scarthgap", "meta", "openembedded-core"),
        LayerRef(yocto, "scarthgap", "meta-poky", "meta-yocto"),
        LayerRef(oe, "scarthgap", "meta-oe", "meta-openembedded"),
        LayerRef(oe, "scarthgap", "meta-python", "meta-openembedded"),
        LayerRef(mender, "scarthgap", "meta-mender-core", "meta-mender"),
        LayerRef(rpi, "scarthgap", "", "meta-raspberrypi"),
    ]
    infos = read_layers(refs, fs=fs)
    assert run(infos, machine="raspberrypi4-64", distro="poky", bootloader="u-boot") == []
    without_oe = [i for i in infos if i.collection_names != ["openembedded-layer"]]
    (f,) = run(without_oe, machine="raspberrypi4-64", distro="poky")
    assert f.code == "layer-depends" and f.file == "meta-openembedded/meta-python/conf/layer.conf"
    assert infos[3].read_text("conf/layer.conf").splitlines()[f.line - 1].startswith("LAYERDEPENDS_meta-python")
    (d,) = run(infos, machine="raspberrypi4-64", distro="poky-tinyy")
    assert d.code == "distro-missing" and "did you mean poky-tiny" in d.message
