"""repo patches: written as kas patches and applied by kas at checkout, or refused in one line."""
from __future__ import annotations

import os
import shutil
import subprocess

import yaml

from tests.conftest import run_cli
from tests.helpers.products import commit_more, make_repo, simple_product, write_yaml
from tests.helpers import skips

# what kas sources after checkout; the fixture core repository has no OE to set up
# (like OE-core's, it starts BitBake's pass-through list, which kas then extends)
INIT_ENV = ('BUILDDIR="$(readlink -f "${1:-build}")"; mkdir -p "$BUILDDIR/conf"; cd "$BUILDDIR"; '
            'export BUILDDIR; export BB_ENV_PASSTHROUGH_ADDITIONS="BUILDDIR"\n')

PATCH = """\
diff --git a/PATCHED b/PATCHED
new file mode 100644
--- /dev/null
+++ b/PATCHED
@@ -0,0 +1 @@
+applied by kas
"""


def _product(tmp_path, patch_dir: str, extra_repo: bool = True):
    root = tmp_path / "ws"
    path = simple_product(root)
    if extra_repo:  # a local repository of the stack holding the patch (a git work tree)
        make_repo(root / "patches-home", {"patches/0001-mark.patch": PATCH})
    else:
        (root / patch_dir).mkdir(parents=True, exist_ok=True)
        (root / patch_dir / "0001-mark.patch").write_text(PATCH)
    d = yaml.safe_load(path.read_text())
    d["repos"]["poky"]["patches"] = [f"../{patch_dir}/0001-mark.patch"]
    commit = commit_more(root / "repos" / "poky", {"oe-init-build-env": INIT_ENV})
    d["repos"]["poky"]["refs"]["scarthgap"]["commit"] = commit
    if extra_repo:
        d["repos"]["product"] = {"path": "../patches-home", "layers": []}
    write_yaml(path, d)
    return path


@skips.unless(shutil.which("kas") is not None, "kas is not installed")
def test_patches_are_kas_patches_and_kas_applies_them(tmp_path):
    path = _product(tmp_path, "patches-home/patches")
    out = tmp_path / "out"
    r = run_cli("compose", str(path), "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load((out / "qemux86-64.yml").read_text())
    assert doc["repos"]["poky"]["patches"] == {
        "001-0001-mark.patch": {"repo": "product", "path": "patches/0001-mark.patch"}}
    work = tmp_path / "kaswork"
    work.mkdir()
    env = {**os.environ, "KAS_WORK_DIR": str(work), "HOME": str(tmp_path)}
    r = subprocess.run(["kas", "checkout", str(out / "qemux86-64.yml")], cwd=work,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert (work / "poky" / "PATCHED").read_text() == "applied by kas\n"


def test_patch_outside_every_local_repo_is_refused(tmp_path):
    path = _product(tmp_path, "elsewhere", extra_repo=False)
    r = run_cli("compose", str(path), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "demo.yml:" in r.stderr and "repos.poky.patches" in r.stderr
    assert "is not inside one of the product's path: repositories" in r.stderr


def test_missing_patch_file_is_refused_with_its_line(tmp_path):
    path = _product(tmp_path, "patches-home/patches")
    d = yaml.safe_load(path.read_text())
    d["repos"]["poky"]["patches"] = ["../patches-home/nope.patch"]
    write_yaml(path, d)
    r = run_cli("validate", str(path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "repos.poky.patches[0]: no patch file" in r.stderr and "nope.patch" in r.stderr
