"""A board's base configuration evaluated from its layers (layers/settings.py)."""
from __future__ import annotations

from buildctl.layers import bbconf
from buildctl.layers.layerinfo import read_layer
from buildctl.layers.inline import inline_value
from buildctl.layers.settings import board_datastore, mender_settings
from tests.helpers.products import layer_conf, make_repo


def _value(code, **variables):
    return inline_value(code, bbconf.Datastore(variables))


def test_inline_python_the_layers_use_is_evaluated():
    assert _value("bb.utils.contains('F', 'a b', ' yes', '', d)", F="b c a") == " yes"
    assert _value("bb.utils.contains('F', 'a z', ' yes', '', d)", F="b c a") == ""
    assert _value("bb.utils.contains_any('F', ['z', 'c'], 'y', 'n', d)", F="b c") == "y"
    assert _value("'' if d.getVar('EXTRA') else 'growfs'") == "growfs"
    assert _value("'' if d.getVar('EXTRA') else 'growfs'", EXTRA="x") == ""
    assert _value("['', 'rpi:']['rpi' != '']") == "rpi:"
    assert _value("max(${PEB}, 1024)".replace("${PEB}", "8388608")) == "8388608"
    assert _value("d.getVar('MACHINE').replace('-', '_')", MACHINE="rpi-4") == "rpi_4"
    assert _value("mender_features(d, separator=':')", MENDER_FEATURES_ENABLE="a b c",
                  MENDER_FEATURES_DISABLE="b") == "a:c"


def test_anything_else_stays_verbatim_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    code = f"__import__('os').system('touch {marker}')"
    assert _value(code) is None
    assert _value("open('/etc/passwd').read()") is None
    d = bbconf.Datastore({"A": "${@" + code + "}x"}, inline=inline_value)
    assert d.get("A") == "${@" + code + "}x" and not marker.exists()


def test_base_configuration_follows_bitbake_order(tmp_path):
    core = tmp_path / "core"
    commit = make_repo(core, {
        "meta/conf/layer.conf": layer_conf("core") + 'BOARD_DEFAULT:mach1 = "from-layer"\n',
        # bitbake.conf: local.conf, then the machine, then the distro
        "meta/conf/bitbake.conf": 'MACHINEOVERRIDES ?= "${MACHINE}"\n'
                                  'OVERRIDES = "${MACHINEOVERRIDES}:${DISTROOVERRIDES}"\n'
                                  "include conf/local.conf\ninclude conf/machine/${MACHINE}.conf\n"
                                  "include conf/distro/${DISTRO}.conf\n",
        "meta/conf/machine/mach1.conf": 'MACHINEOVERRIDES =. "fam:"\n',
        "meta/conf/distro/dist.conf": 'INHERIT += "setup"\nDISTROOVERRIDES = "dist"\n',
        "meta/classes-global/setup.bbclass": "require setup-sizes.inc\n"
                                             'SIZE ??= "${SIZE_DEFAULT}"\nSIZE_DEFAULT = "128"\n'
                                             'BOARD ??= "${BOARD_DEFAULT}"\nBOARD_DEFAULT ?= "generic"\n'
                                             'FAMILY = "no"\nFAMILY:fam = "yes"\n'
                                             'SAY = "${@bb.utils.contains(\'FAMILY\', \'yes\', \'hi\', \'\', d)}"\n'
                                             "def helper(d):\n    return 1\n",
        "meta/classes-global/setup-sizes.inc": 'TOTAL ??= "1024"\n',
    })
    layers = [read_layer(str(core), commit, "meta", "core")]
    local = bbconf.parse('TOTAL = "4096"\nSIZE_DEFAULT = "64"\n', "local.conf")
    d = board_datastore(layers, machine="mach1", distro="dist", local_conf=local)
    assert d.get("TOTAL") == "4096"  # local.conf beats the class's weak default
    # the class's plain `=` comes after local.conf and wins, as in BitBake (meta-mender uses
    # `?=` for the defaults local.conf may change)
    assert d.get("SIZE") == "128"
    assert d.get("BOARD") == "from-layer"  # the layer's machine-specific default (override)
    assert d.get("FAMILY") == "yes"  # MACHINEOVERRIDES from the machine conf
    assert d.get("SAY") == "hi"
    assert mender_settings(d).device is None  # nothing meta-mender would set: unknown, not guessed
    assert board_datastore(layers, machine="other", distro="dist").get("BOARD") == "generic"
