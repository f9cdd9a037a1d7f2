"""import-kas accepts what kas 5 accepts, refuses what it cannot import in one line, and says
what it did with every line (file:line), also later in validate."""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from buildctl.errors import UserError
from buildctl.importers.kas import import_files
from tests.conftest import run_cli
from tests.helpers.products import core_repo


@pytest.fixture(scope="module")
def poky(tmp_path_factory):
    path = tmp_path_factory.mktemp("up") / "poky"
    return path, core_repo(path, machines=("qemux86-64", "qemuarm64"))


def kas_file(path: Path, body: str, version=14, includes=()) -> Path:
    head = f"header:\n  version: {version}\n"
    if includes:
        head += "  includes:\n" + "".join(f"  - {i}\n" for i in includes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + textwrap.dedent(body))
    return path


def board_body(poky, machine="qemux86-64", ref=None, conf="") -> str:
    path, commit = poky
    ref = f"commit: {commit}" if ref is None else ref
    text = f"""\
        machine: {machine}
        distro: poky
        target: core-image-minimal
        repos:
          poky:
            url: {path.as_uri()}
            {ref}
            layers:
              meta:
              meta-poky:
        """
    text = textwrap.dedent(text)
    if conf:
        text += "local_conf_header:\n  board: |\n" + textwrap.indent(textwrap.dedent(conf), "    ")
    return text


def line_of(path: Path, text: str) -> int:
    return next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if text in ln)


def note_at(notes, path: Path, text: str) -> str:
    """The note that names path:<line of text> (the line really holds text)."""
    want = f"{path.name}:{line_of(path, text)}:"
    hits = [n for n in notes if want in n]
    assert hits, (want, notes)
    return " | ".join(hits)


@pytest.mark.parametrize("version", list(range(1, 24)))
def test_every_header_version_kas_accepts_imports(tmp_path, poky, version):
    f = kas_file(tmp_path / "kas" / "qemux86-64.yml", board_body(poky), version=version)
    imp = import_files([f], product_name="p", out_dir=tmp_path / "out", series="scarthgap")
    assert imp.boards["qemux86-64"]["machine"] == "qemux86-64"


@pytest.mark.parametrize("version,message", [
    ('"0.10"', "header version '0.10' is the format before version 1"),
    ("24", "header version 24: kas accepts 1 to 23"),
])
def test_versions_kas_cannot_use_are_refused_in_one_line(tmp_path, poky, version, message):
    f = kas_file(tmp_path / "kas" / "qemux86-64.yml", board_body(poky), version=version)
    r = run_cli("import-kas", str(f), "--out", str(tmp_path / "out"), "--series", "scarthgap")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and message in r.stderr and "qemux86-64.yml:2:" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("refspec,want", [
    ("scarthgap", {"branch": "scarthgap"}),
    ("refs/heads/scarthgap", {"branch": "scarthgap"}),
    ("refs/tags/yocto-5.0", {"tag": "yocto-5.0"}),
])
def test_legacy_refspec_is_imported_with_a_note(tmp_path, poky, refspec, want):
    f = kas_file(tmp_path / "kas" / "qemux86-64.yml", board_body(poky, ref=f"refspec: {refspec}"))
    imp = import_files([f], product_name="p", out_dir=tmp_path / "out", series="scarthgap")
    assert imp.product["repos"]["poky"]["refs"] == {"scarthgap": want}
    note = note_at(imp.notes, f, "refspec:")
    assert "legacy" in note and repr(refspec) in note


def test_legacy_refspec_commit(tmp_path, poky):
    f = kas_file(tmp_path / "kas" / "qemux86-64.yml", board_body(poky, ref=f"refspec: {poky[1]}"))
    imp = import_files([f], product_name="p", out_dir=tmp_path / "out", series="scarthgap")
    assert imp.product["repos"]["poky"]["refs"] == {"scarthgap": {"commit": poky[1]}}


def test_include_cycle_is_refused_in_one_line(tmp_path, poky):
    kas_file(tmp_path / "kas" / "a.yml", "distro: poky\n", includes=["b.yml"])
    kas_file(tmp_path / "kas" / "b.yml", "target: core-image-minimal\n", includes=["a.yml"])
    top = kas_file(tmp_path / "kas" / "qemux86-64.yml", board_body(poky), includes=["a.yml"])
    r = run_cli("import-kas", str(top), "--out", str(tmp_path / "out"), "--series", "scarthgap",
                cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert "include cycle: kas/a.yml -> kas/b.yml -> kas/a.yml" in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_note_with_file_and_line_for_every_decision(tmp_path, poky):
    base = kas_file(tmp_path / "kas" / "base.yml", """\
        env:
          FOO: "1"
        local_conf_header:
          common: |
            INIT_MANAGER = "systemd"
          size: |
            MENDER_STORAGE_TOTAL_SIZE_MB = "4096"
        """)
    body = board_body(poky, conf="""\
        MENDER_DATA_PART_SIZE_MB = "512"
        X = "1"
        X = "2"
        include conf/extra.inc
        BB_DANGLINGAPPENDS_WARNONLY = "1"
        """)
    body = body.replace("machine: qemux86-64\n", "machine: qemux86-64\nmachine: qemuarm64\n", 1)
    body += '  size: |\n    MENDER_STORAGE_TOTAL_SIZE_MB = "2048"\n'
    f = kas_file(tmp_path / "kas" / "board1.yml", body, includes=["base.yml"])
    imp = import_files([f], product_name="p", out_dir=tmp_path / "out", series="scarthgap")
    notes = imp.notes
    assert "given twice" in note_at(notes, f, "machine: qemuarm64")  # duplicate YAML key
    assert "later value is kept" in note_at(notes, f, 'X = "2"')  # duplicate assignment
    assert "include conf/extra.inc is not imported" in note_at(notes, f, "include conf/extra.inc")
    assert "silences a check" in note_at(notes, f, "BB_DANGLINGAPPENDS_WARNONLY")
    assert "env is not imported" in note_at(notes, base, "env:")  # no field for it
    # the including file's section replaces the include's, as kas merges them
    assert "replaces the value from" in note_at(notes, f, "  size: |")
    assert "mender.storage.total_mb: 2048" in note_at(notes, f, 'MENDER_STORAGE_TOTAL_SIZE_MB = "2048"')
    assert "machine_name_differs: true silences" in note_at(notes, f, "machine: qemuarm64")
    assert imp.boards["board1"]["mender"]["storage"] == {"total_mb": 2048, "data_mb": 512}


def test_names_that_leave_out_are_refused(tmp_path, poky):
    f = kas_file(tmp_path / "kas" / "qemux86-64.yml", board_body(poky))
    out = tmp_path / "out"
    for product in ("../evil", "/etc/x", "a/b", ".."):
        r = run_cli("import-kas", str(f), "--out", str(out), "--product", product, "--series", "scarthgap")
        assert r.returncode == 2 and "cannot be a file name under --out" in r.stderr, product
        assert r.stderr.count("\n") == 1
    bad = kas_file(tmp_path / "kas" / "x y.yml", board_body(poky))
    r = run_cli("import-kas", str(bad), "--out", str(out), "--series", "scarthgap")
    assert r.returncode == 2 and "board name 'x y'" in r.stderr
    (out / "elsewhere").mkdir(parents=True)
    (out / "machines").symlink_to(tmp_path / "kas")  # machines/ leads out of --out
    r = run_cli("import-kas", str(f), "--out", str(out), "--series", "scarthgap")
    assert r.returncode == 2 and "outside --out" in r.stderr
    assert sorted(p.name for p in (tmp_path / "kas").iterdir()) == ["qemux86-64.yml", "x y.yml"]
    assert not (out / "products").exists()


def test_validate_names_the_kas_line_behind_a_finding(tmp_path, poky):
    kas_file(tmp_path / "kas" / "qemux86-64.yml", board_body(poky, conf="""\
        MENDER_STORAGE_DEVICE = "/dev/sda"
        MENDER_STORAGE_TOTAL_SIZE_MB = "128"
        MENDER_DATA_PART_SIZE_MB = "64"
        """))
    r = run_cli("import-kas", "kas/qemux86-64.yml", "--out", "out", "--series", "scarthgap",
                "--product", "p", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_cli("validate", "out/products/p.yml", "--offline", "--json", cwd=tmp_path)
    storage = [x for x in json.loads(r.stdout)["findings"] if x["code"] == "mender-storage"]
    assert storage and storage[0]["file"] == "out/machines/qemux86-64.yml"
    m = re.search(r"\(imported from (\S+):(\d+)\)", storage[0]["message"])
    assert m and m.group(1) == "kas/qemux86-64.yml"
    assert "MENDER_STORAGE_TOTAL_SIZE_MB" in (tmp_path / m.group(1)).read_text().splitlines()[int(m.group(2)) - 1]
    manifest = yaml.safe_load((tmp_path / "out" / "machines" / "qemux86-64.yml").read_text())
    assert manifest["mender"]["storage"]["total_mb"] == 128  # the comment is only a comment


def test_import_files_refuses_a_binary_file(tmp_path):
    f = tmp_path / "b.yml"
    f.write_bytes(b"\x00\x01header")
    with pytest.raises(UserError, match="binary"):
        import_files([f], product_name="p", out_dir=tmp_path / "out", series="scarthgap")


def test_lock_file_and_repo_defaults_are_applied_with_notes(tmp_path, poky):
    path, commit = poky
    body = board_body(poky, ref="")
    body += "defaults:\n  repos:\n    branch: scarthgap\n"
    f = kas_file(tmp_path / "kas" / "qemux86-64.yml", body)
    lock = f.with_name("qemux86-64.lock.yml")
    lock.write_text(f"header:\n  version: 14\noverrides:\n  repos:\n    poky:\n      commit: {commit}\n")
    imp = import_files([f], product_name="p", out_dir=tmp_path / "out", series="scarthgap")
    assert imp.product["repos"]["poky"]["refs"] == {"scarthgap": {"branch": "scarthgap", "commit": commit}}
    assert "taken from defaults.repos" in note_at(imp.notes, f, "branch: scarthgap")
    assert "from the lock file overrides" in note_at(imp.notes, lock, "commit:")


def test_alias_bomb_and_deep_nesting_end_in_one_line(tmp_path):
    bomb = ["header: {version: 14}", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    cases = {"bomb.yml": "\n".join(bomb) + "\nmachine: *a8\n",
             "deep.yml": "header: {version: 14}\nmachine: " + "[" * 5000 + "]" * 5000 + "\n"}
    for name, text in cases.items():
        f = tmp_path / name
        f.write_text(text)
        r = run_cli("import-kas", str(f), "--out", str(tmp_path / "out"), "--series", "scarthgap")
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "out").exists()
