"""Delta artifacts (issue 14): `release delta` on two real bundles, `release --delta-from`,
Debian's mender-artifact reading the result, and the device module (bash, real xdelta3)
installing it onto a file standing for the inactive partition, run by hand state by state and
by the real Mender client.

The two root filesystems are generated ext4 images (24 MiB, 5% of the files changed), made
once per module, like the two bundles that carry them.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from buildctl.ota.mender import read_artifact
from buildctl.ota.mender import load_private_key
from buildctl.ota.mender.writer import ArtifactSpec, module_payload, rootfs_payload, write_artifact
from tests.conftest import run_cli
from tests.helpers import skips
from tests.helpers.delta_device import MODULE, device, module_tree
from tests.helpers.ext4_images import make_pair
from tests.helpers.oe_deploy_fixture import DeployFixture, write_deploy
from tests.release.helpers import device_tested, release_product
from tests.rollout.fleet import SANDBOX, client_root, make_device, userns_ok

BOARD = "qemux86-64"
DIR = f"{BOARD}-release"


def sha256(path: Path, size: int | None = None) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(size) if size is not None else f.read()).hexdigest()


def _deploy(root: Path, build_out: Path, image: Path, name: str) -> None:
    def write(path: Path, fx) -> None:
        write_artifact(ArtifactSpec(name=name, device_types=[BOARD],
                                    payload=rootfs_payload(image, name)),
                       path, mtime=fx.source_date_epoch)
    fx = DeployFixture(machine=BOARD, image_types=("uefiimg", "mender"))
    write_deploy(build_out / DIR / "deploy", fx, write)
    device_tested(build_out / DIR)  # the image passed `buildctl test`: releasable


def _set_version(prod: Path, version: str) -> None:
    data = yaml.safe_load(prod.read_text())
    data["release"]["version"] = version
    prod.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two images, the product (signed artifacts) and its bundles 1.0 (old image) and
    1.1 (new image), released through the CLI."""
    skips.tools(["xdelta3", "mke2fs", "debugfs"], "apt-get install xdelta3 e2fsprogs")
    root = tmp_path_factory.mktemp("delta")
    pair = make_pair(root / "images", 24, 0.05)
    prod = release_product(root / "p")
    for version, image in (("1.0", pair.old), ("1.1", pair.new)):
        _set_version(prod, version)
        out = root / f"build-{version}"
        _deploy(root, out, image, f"demo-{version}-{BOARD}")
        r = run_cli("release", str(prod), "--build-out", str(out), "--out", str(root / "rel"),
                    cwd=root)
        assert r.returncode == 0, r.stderr
    return {"root": root, "pair": pair, "prod": prod, "old": root / "rel/demo/1.0",
            "new": root / "rel/demo/1.1", "key": root / "p/keys/release.pem",
            "pub": root / "p/keys/release.pub.pem", "build": root / "build-1.1"}


@pytest.fixture(scope="module")
def delta(world):
    """`release delta --from 1.0 --to 1.1` through the CLI: (report, artifact path)."""
    out = world["root"] / "deltas"
    r = run_cli("release", "delta", "--from", str(world["old"]), "--to", str(world["new"]),
                "--out", str(out), "--signing-key", f"file:{world['key']}", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    return report, out / DIR / report["boards"][0]["artifact"]


def test_delta_artifact_depends_on_old_provides_new(world, delta):
    report, path = delta
    pair = world["pair"]
    old_sum, new_sum = sha256(pair.old), sha256(pair.new)
    fig = report["boards"][0]
    assert (report["from"], report["to"]) == ("1.0", "1.1")
    assert path.name == "core-image-minimal-qemux86-64.rootfs.delta-from-1.0.mender"
    assert fig["source_checksum"] == old_sum and fig["target_checksum"] == new_sum
    assert fig["signed"] is True
    # 5% of the files changed: the delta is a small part of the full artifact (the 2% / 10%
    # target is bench/delta.py's, on 512 MiB images)
    assert fig["delta_size"] == path.stat().st_size and fig["ratio"] < 0.25
    assert fig["full_size"] == (world["new"] / DIR /
                                "core-image-minimal-qemux86-64.rootfs.mender").stat().st_size
    assert fig["apply_seconds"] > 0 and fig["write_seconds"] > 0
    from buildctl.ota.mender import load_public_key
    info = read_artifact(path, public_key=load_public_key(str(world["pub"])))
    full = read_artifact(world["new"] / DIR / "core-image-minimal-qemux86-64.rootfs.mender",
                         public_key=load_public_key(str(world["pub"])))
    p = info.payloads[0]
    assert info.name == full.name == "demo-1.1-qemux86-64"
    assert info.device_types == [BOARD]
    assert p.type == "rootfs-delta"
    assert p.depends == {"rootfs-image.checksum": old_sum}
    assert p.provides == full.payloads[0].provides == {"rootfs-image.checksum": new_sum,
                                                       "rootfs-image.version": info.name}
    assert p.clears_provides == full.payloads[0].clears_provides
    assert p.meta_data == {"encoding": "vcdiff", "source_size": str(pair.old.stat().st_size),
                           "target_size": str(pair.new.stat().st_size)}
    assert (world["root"] / "deltas" / "delta.json").is_file()


def test_mender_artifact_reads_and_validates_the_delta(world, delta):
    exe = skips.tool("mender-artifact")
    _, path = delta
    r = subprocess.run([exe, "read", "-k", str(world["pub"]), str(path)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Signature: signed and verified correctly" in out
    assert "Type:   rootfs-delta" in out
    depends = out.split("Depends:", 1)[1]
    assert f"rootfs-image.checksum: {sha256(world['pair'].old)}" in depends.split("Clears")[0]
    provides = out.split("Provides:\n", 1)[1].split("Depends:")[0]
    assert f"rootfs-image.checksum: {sha256(world['pair'].new)}" in provides
    v = subprocess.run([exe, "validate", "-k", str(world["pub"]), str(path)],
                       capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr


def test_release_delta_from_puts_the_delta_in_the_bundle(world):
    out = world["root"] / "rel-with-delta"
    r = run_cli("release", str(world["prod"]), "--build-out", str(world["build"]),
                "--out", str(out), "--delta-from", str(world["old"]), "--json",
                cwd=world["root"])
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    bundle = Path(data["bundle"])
    # the fixture product's root filesystem is writable: said, not fatal
    assert any("read-only-rootfs" in w for w in data["warnings"])
    name = f"{DIR}/core-image-minimal-qemux86-64.rootfs.delta-from-1.0.mender"
    assert (bundle / name).is_file()
    assert f"  {name}\n" in (bundle / "SHA256SUMS").read_text()
    rel = json.loads((bundle / "release.json").read_text())
    kinds = {f["path"]: f["kind"] for f in rel["files"]}
    assert kinds[name] == "mender-delta"
    assert kinds[f"{DIR}/core-image-minimal-qemux86-64.rootfs.mender"] == "mender"
    fig = rel["boards"][0]["delta"]
    assert fig["artifact"] == Path(name).name and 0 < fig["ratio"] < 0.25
    assert fig["full_size"] > fig["delta_size"] > 0 and fig["apply_seconds"] > 0
    v = run_cli("release", "verify", str(bundle), "--key", str(world["pub"]), "--json",
                "--no-validators")  # SBOM validity is not what changes here
    assert v.returncode == 0, v.stdout
    assert json.loads(v.stdout)["ok"] is True
    # the same bytes as the standalone command writes for the same two releases
    r2 = run_cli("release", "delta", "--from", str(world["old"]), "--to", str(bundle),
                 "--out", str(world["root"] / "again"), "--signing-key", f"file:{world['key']}")
    assert r2.returncode == 0, r2.stderr
    assert f"{DIR}: {Path(name).name}: delta " in r2.stdout and " vs full " in r2.stdout
    assert "deltas 1.0 -> 1.1" in r2.stdout
    assert (world["root"] / "again" / name).read_bytes() == (bundle / name).read_bytes()


# -- the device module ------------------------------------------------------------------------

@pytest.fixture
def tree(delta, tmp_path):
    return module_tree(delta[1], tmp_path / "tree")


def test_module_installs_delta_onto_inactive_partition(world, tree, tmp_path):
    pair = world["pair"]
    dev = device(tmp_path / "dev", pair.old)
    assert dev.run("NeedsArtifactReboot", tree).stdout.strip() == "Automatic"
    assert dev.run("SupportsRollback", tree).stdout.strip() == "Yes"
    assert dev.run("Download", tree).returncode == 0
    r = dev.run("ArtifactInstall", tree)
    assert r.returncode == 0, r.stderr
    assert sha256(dev.part_b, pair.new.stat().st_size) == sha256(pair.new)
    assert dev.bootvars() == {"mender_boot_part": "3", "mender_boot_part_hex": "3",
                              "upgrade_available": "1", "bootcount": "0"}
    assert dev.run("ArtifactVerifyReboot", tree).returncode == 0
    assert dev.run("ArtifactCommit", tree).returncode == 0
    assert dev.bootvars()["upgrade_available"] == "0"


def test_module_rollback_switches_back(world, tree, tmp_path):
    dev = device(tmp_path / "dev", world["pair"].old)
    assert dev.run("ArtifactInstall", tree).returncode == 0
    assert dev.run("ArtifactRollback", tree).returncode == 0
    assert dev.bootvars()["mender_boot_part"] == "2"
    assert dev.bootvars()["upgrade_available"] == "0"


def _unchanged(dev, before_b: bytes, before_env: str, r) -> None:
    assert r.returncode != 0
    assert dev.part_b.read_bytes() == before_b  # the target partition is byte-identical
    assert dev.bootenv.read_text() == before_env  # no switch
    # xdelta3's own messages may come first; the module's verdict is the last line
    assert "nothing written" in r.stderr.strip().splitlines()[-1]


def test_module_corrupted_delta_leaves_target_unchanged(world, tree, tmp_path):
    dev = device(tmp_path / "dev", world["pair"].old)
    payload = tree / "files" / "rootfs.vcdiff"
    data = bytearray(payload.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0x5A for b in data[mid:mid + 64])
    payload.write_bytes(bytes(data))
    before_b, before_env = dev.part_b.read_bytes(), dev.bootenv.read_text()
    _unchanged(dev, before_b, before_env, dev.run("ArtifactInstall", tree))


def test_module_wrong_source_leaves_target_unchanged(world, tree, tmp_path):
    dev = device(tmp_path / "dev", world["pair"].new)  # the device runs something else
    before_b, before_env = dev.part_b.read_bytes(), dev.bootenv.read_text()
    r = dev.run("ArtifactInstall", tree)
    _unchanged(dev, before_b, before_env, r)
    assert "is not this delta's source" in r.stderr


def test_module_result_checksum_mismatch_leaves_target_unchanged(world, tree, tmp_path):
    """The decoded result is checked against the artifact's provided checksum before a byte
    is written (here the header promises another result)."""
    dev = device(tmp_path / "dev", world["pair"].old)
    ti = tree / "header" / "type-info"
    new_sum = sha256(world["pair"].new)
    ti.write_text(ti.read_text().replace(new_sum, "0" * 64))
    before_b, before_env = dev.part_b.read_bytes(), dev.bootenv.read_text()
    r = dev.run("ArtifactInstall", tree)
    _unchanged(dev, before_b, before_env, r)
    assert "decodes to sha256" in r.stderr


# -- bad input ---------------------------------------------------------------------------------

def _bad(r, *words) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def _nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_missing_bundle(world, tmp_path):
    out = tmp_path / "o"
    r = run_cli("release", "delta", "--from", str(tmp_path / "nope"), "--to", str(world["new"]),
                "--out", str(out))
    _bad(r, "--from", "nope", "not a directory")
    _nothing_written(out)


def test_board_in_one_bundle_only(world, tmp_path):
    out = tmp_path / "o"
    r = run_cli("release", "delta", "--from", str(world["old"]), "--to", str(world["new"]),
                "--board", "qemuarm64", "--out", str(out), "--signing-key",
                f"file:{world['key']}")
    _bad(r, "--board qemuarm64", "not in the --from bundle")
    _nothing_written(out)


def test_bundles_of_different_products(world, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(world["old"], other)
    rel = json.loads((other / "release.json").read_text())
    rel["product"] = "another"
    (other / "release.json").write_text(json.dumps(rel))
    out = tmp_path / "o"
    r = run_cli("release", "delta", "--from", str(other), "--to", str(world["new"]),
                "--out", str(out))
    _bad(r, "'another'", "'demo'", "one product")
    _nothing_written(out)


def test_signed_bundle_needs_its_key(world, tmp_path):
    out = tmp_path / "o"
    r = run_cli("release", "delta", "--from", str(world["old"]), "--to", str(world["new"]),
                "--out", str(out))
    _bad(r, "signed", "key")
    _nothing_written(out)
    from tests.release.helpers import make_key
    wrong, _ = make_key(tmp_path / "k" / "wrong.pem")
    r = run_cli("release", "delta", "--from", str(world["old"]), "--to", str(world["new"]),
                "--out", str(out), "--signing-key", f"file:{wrong}")
    _bad(r, "does not verify")
    _nothing_written(out)


def test_delta_from_a_bundle_without_the_board(world, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(world["old"], other)
    rel = json.loads((other / "release.json").read_text())
    rel["boards"] = []
    (other / "release.json").write_text(json.dumps(rel))
    out = tmp_path / "rel"
    r = run_cli("release", str(world["prod"]), "--build-out", str(world["build"]),
                "--out", str(out), "--delta-from", str(other), cwd=world["root"])
    _bad(r, "--delta-from", "no board qemux86-64")
    assert not (out / "demo" / "1.1").exists()


# -- the recipe -------------------------------------------------------------------------------

def test_recipe_installs_the_module_under_its_payload_type():
    from buildctl.release.delta import MODULE
    from tests.content._helpers import LAYERS, values
    recipe = LAYERS / "meta-buildctl/recipes-mender/rootfs-delta-module/rootfs-delta-module_1.0.bb"
    conf = values(recipe)
    assert conf["SRC_URI"] == f"file://{MODULE}"
    assert (recipe.parent / "files" / MODULE).is_file()
    assert f"${{datadir}}/mender/modules/v3/{MODULE}" in recipe.read_text()
    assert {"bash", "xdelta3"} <= set(conf["RDEPENDS:${PN}"].split())


def test_recipe_rdepends_exist_in_the_layers_products_use():
    """xdelta3 comes from meta-oe (which meta-mender's client needs anyway) at the pins."""
    oe = skips.kit_repo("git.openembedded.org.meta-openembedded")
    names = subprocess.run(["git", "-C", str(oe), "ls-tree", "-r", "--name-only", "scarthgap",
                            "meta-oe/recipes-support/xdelta/"], capture_output=True, text=True)
    assert any(Path(n).name.startswith("xdelta3_") for n in names.stdout.split()), names


# -- through the real Mender client ------------------------------------------------------------
# Debian's mender-client 3.4 in a user + mount namespace as in tests/rollout. The client keeps
# what the device provides; a first artifact seeds it with the checksum of the image the
# device runs, as meta-mender's bootstrap artifact does at first boot (client 3.4 cannot
# install bootstrap artifacts, so here it is a module artifact of a no-op module). The client
# itself then refuses the delta to a device running another image (the depends) and installs
# it on one running the old image, which afterwards provides the new checksum.

def client(dev, env: dict, *args: str) -> subprocess.CompletedProcess:
    mender = client_root() / "usr" / "bin" / "mender"
    return subprocess.run(
        ["unshare", "-r", "-m", "--propagation", "private", "sh", "-c", SANDBOX, "sandbox",
         str(dev.dir), str(mender), "--config", str(dev.dir / "mender.conf"),
         "--data", str(dev.dir / "data"), *args],
        env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def mender_device(world, tmp_path):
    """A client device whose provides say it runs `running`, with the module installed."""
    if not userns_ok():
        skips.missing("user namespaces unavailable (unshare -r -m)")
    client_root()

    def make(running: Path):
        dev = make_device(tmp_path, "dev", "02:00:00:00:00:01", BOARD, "https://127.0.0.1:9",
                          world["pub"], artifact_name="demo-1.0-qemux86-64")
        mod = dev.dir / "ov/usr/share/up/mender/modules/v3" / MODULE.name
        mod.parent.mkdir(parents=True, exist_ok=True)
        mod.write_bytes(MODULE.read_bytes())
        mod.chmod(0o755)
        seed = mod.with_name("seed-provides")
        seed.write_text("#!/bin/sh\nexit 0\n")
        seed.chmod(0o755)
        parts = device(tmp_path / "parts", running)
        boot = tmp_path / "bootstrap.mender"
        write_artifact(ArtifactSpec(name="demo-1.0-qemux86-64", device_types=[BOARD],
                                    payload=module_payload(
                                        "seed-provides", [], "demo-1.0-qemux86-64",
                                        provides={"rootfs-image.checksum": sha256(running),
                                                  "rootfs-image.version": "demo-1.0-qemux86-64"},
                                        clears_provides=["rootfs-image.*"],
                                        default_software_version=False, default_clears=False)),
                       boot, key=load_private_key(f"file:{world['key']}"))
        r = client(dev, parts.env, "install", str(boot))
        assert r.returncode == 0, r.stdout + r.stderr
        return dev, parts
    return make


def provides(dev, env) -> dict[str, str]:
    r = client(dev, env, "show-provides")
    assert r.returncode == 0, r.stderr
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def test_client_installs_the_delta_and_then_provides_the_new_checksum(world, delta,
                                                                      mender_device):
    _, artifact = delta
    dev, parts = mender_device(world["pair"].old)
    r = client(dev, parts.env, "install", str(artifact))
    assert r.returncode == 0, r.stdout + r.stderr
    size = world["pair"].new.stat().st_size
    with open(parts.part_b, "rb") as f:
        assert hashlib.sha256(f.read(size)).hexdigest() == sha256(world["pair"].new)
    assert parts.bootvars()["mender_boot_part"] == "3"
    assert parts.bootvars()["upgrade_available"] == "1"
    c = client(dev, parts.env, "commit")
    assert c.returncode == 0, c.stdout + c.stderr
    assert parts.bootvars()["upgrade_available"] == "0"
    got = provides(dev, parts.env)
    assert got["rootfs-image.checksum"] == sha256(world["pair"].new)
    assert got["artifact_name"] == "demo-1.1-qemux86-64"


def test_client_refuses_the_delta_to_a_device_running_another_image(world, delta,
                                                                    mender_device):
    _, artifact = delta
    dev, parts = mender_device(world["pair"].new)
    before = parts.part_b.read_bytes()
    r = client(dev, parts.env, "install", str(artifact))
    assert r.returncode != 0
    assert "rootfs-image.checksum" in r.stdout + r.stderr
    assert parts.part_b.read_bytes() == before
    assert parts.bootvars()["mender_boot_part"] == "2"


@pytest.mark.parametrize("series,initial,expected", [
    ("scarthgap", {"WORKDIR": "/w"}, "/w"),  # the fetcher unpacks into WORKDIR
    ("wrynose", {"WORKDIR": "/w", "UNPACKDIR": "/w/sources"}, "/w/sources"),
])
def test_recipe_finds_the_script_where_each_series_unpacks_it(series, initial, expected):
    """BitBake's own datastore reads the recipe's assignments (functions and inherit left out:
    the configuration parser takes neither)."""
    from tests.helpers import bb_oracle
    skips.require(bb_oracle.available(), "BitBake's bb library cannot be imported here",
                  "pip install bitbake-setup (the test extra)")
    recipe = MODULE.parents[1] / "rootfs-delta-module_1.0.bb"
    kept, in_function = [], False
    for line in recipe.read_text().splitlines():
        in_function = in_function or line.startswith("do_install()")
        if not in_function and not line.startswith("inherit "):
            kept.append(line)
        in_function = in_function and not line.startswith("}")
    got = bb_oracle.evaluate("\n".join(kept) + "\n", ["S", "SRC_URI"],
                             {**initial, "PN": "rootfs-delta-module"})
    assert got == {"S": expected, "SRC_URI": f"file://{MODULE.name}"}
