"""board check: each rule on a fixture that breaks only it, and the real drifts of the kit's
meta-mender-community checkout."""
from __future__ import annotations

import json

import pytest

from buildctl.boards.check import DirSource, GitSource, check_repository
from tests.boards import kit
from tests.boards.community_fixture import BASE, community_tree
from buildctl.cli import main

BOARD = BASE["kas/acme-board.yml"]
ACME = BASE["kas/include/acme.yml"]
LAYER = BASE["meta-mender-acme/conf/layer.conf"]

# rule -> files changed so that only that rule is broken
BREAKS = {
    "floating-revision": {"kas/include/acme.yml": ACME.replace(f"    commit: {'b' * 40}\n", "")},
    "lts-branch": {"kas/include/acme.yml": ACME.replace("branch: scarthgap", "branch: kirkstone")},
    "baseline": {"kas/acme-board.yml": BOARD.replace("kas/include/mender-full.yml", "kas/include/mender-base.yml")},
    "machine-name": {"kas/acme-board.yml": BOARD.replace("machine: acme-board", "machine: acme-other")},
    "variable-twice": {"kas/acme-board.yml": BOARD + '  late: |\n    MENDER_BOOT_PART_SIZE_MB = "0"\n'},
    "ci-matrix": {".github/workflows/build.yml": BASE[".github/workflows/build.yml"].replace("[acme-board]", "[]")},
    "layer-name": {"meta-acme-mender/conf/layer.conf": LAYER},
    "layer-name-ref": {"kas/include/acme.yml": ACME.replace("      meta-mender-acme:", "      acme-mender:")},
    "layer-compat": {"meta-mender-acme/conf/layer.conf": LAYER.replace('"scarthgap"', '"kirkstone"')},
    "deprecated-key": {"kas/include/acme.yml": ACME.replace("branch: scarthgap", "refspec: " + "b" * 40)
                       .replace(f"    commit: {'b' * 40}\n", "")},
    "kas-format": {"kas/include/acme.yml": ACME.replace("version: 14", "version: 11")},
    "kas-file": {"kas/acme-board.yml": BOARD.replace("machine: acme-board", "machine: [acme-board")},
}


def test_fixture_checkout_is_clean(tmp_path):
    assert check_repository(DirSource(community_tree(tmp_path)), "scarthgap") == []


@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_each_rule_reports_exactly_itself(rule, tmp_path):
    root = community_tree(tmp_path, BREAKS[rule])
    found = check_repository(DirSource(root), "scarthgap")
    assert {f.code for f in found} == {rule.removesuffix("-ref")}, [str(f) for f in found]
    assert all(f.file and f.line for f in found), [str(f) for f in found]


def test_variable_twice_names_both_lines(tmp_path):
    root = community_tree(tmp_path, BREAKS["variable-twice"])
    (f,) = check_repository(DirSource(root), "scarthgap")
    assert (f.file, f.line) == ("kas/acme-board.yml", 14)
    assert "kas/acme-board.yml:12" in f.message and '"0"' in f.message


def test_cli_on_one_board_file_json_and_exit_code(tmp_path, capsys):
    root = community_tree(tmp_path, BREAKS["machine-name"])
    assert main(["board", "check", str(root / "kas/acme-board.yml"), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [(f["code"], f["line"]) for f in out["findings"]] == [("machine-name", 7)]
    assert out["findings"][0]["file"] == str(root / "kas/acme-board.yml")
    assert main(["board", "check", str(community_tree(tmp_path / "clean") / "kas/acme-board.yml")]) == 0
    assert "0 findings" in capsys.readouterr().out


def test_cli_whole_checkout_text_output(tmp_path, capsys):
    root = community_tree(tmp_path, BREAKS["variable-twice"])
    assert main(["board", "check", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"{root}/kas/acme-board.yml:14: MENDER_BOOT_PART_SIZE_MB" in out and "(variable-twice)" in out


def test_cli_bad_path_is_one_line_exit_2(tmp_path, capsys):
    assert main(["board", "check", str(tmp_path / "nope.yml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err


def test_real_community_checkout_drifts():
    kit.need_kit()
    found = check_repository(GitSource(str(kit.KIT / kit.COMMUNITY), "scarthgap"), "scarthgap")
    at = {(f.code, f.file, f.line) for f in found}
    # Verified by reading the files at scarthgap (3fc71db):
    assert ("machine-name", "kas/raspberrypi4-64.yml", 7) in at           # machine: raspberrypi4
    assert ("variable-twice", "kas/imx93-var-som.yml", 56) in at          # boot part "64" then "0"
    assert ("floating-revision", "kas/include/nxp.yml", 6) in at          # branch only
    assert ("deprecated-key", "kas/x86-virtual.yml", 9) in at             # refspec
    assert ("baseline", "kas/vexpress-qemu.yml", 3) in at                 # mender-base only
    assert ("kas-format", "kas/include/tegra-base.yml", 24) in at         # commit: under version 11
    # and nothing the repository does right is reported: every board is in the CI matrix and
    # every layer names scarthgap in LAYERSERIES_COMPAT.
    assert not {c for c, _, _ in at} & {"ci-matrix", "layer-compat", "layer-name", "kas-file"}
    assert not any(f.file == "kas/raspberrypi4.yml" for f in found)
