"""import-kas: kas board files with includes -> manifests whose composition is equivalent."""
from __future__ import annotations

import os
import subprocess
import textwrap

import pytest
import yaml

from buildctl.layers import bbconf
from tests.conftest import run_cli
from tests.helpers.products import core_repo, git, layer_conf, make_repo


@pytest.fixture
def community(tmp_path):
    """A meta-mender-community-like repo: kas/include/*.yml + one kas file per board."""
    poky = tmp_path / "up" / "poky"
    poky_c = core_repo(poky, machines=("qemux86-64", "rpi4"))
    mender = tmp_path / "up" / "meta-mender"
    mender_c = make_repo(mender, {"meta-mender-core/conf/layer.conf": layer_conf("mender", depends=["core"]),
                                  "meta-mender-qemu/conf/layer.conf": layer_conf("mender-qemu", depends=["mender"])})
    bsp = tmp_path / "up" / "meta-rpi"
    bsp_c = make_repo(bsp, {"conf/layer.conf": layer_conf("rpi", depends=["core"]),
                            "conf/machine/rpi4.conf": "# rpi4\n"})
    files = {
        "kas/include/base.yml": textwrap.dedent(f"""\
            header:
              version: 14
            distro: poky
            target: [core-image-minimal]
            repos:
              poky:
                url: {poky.as_uri()}
                commit: {poky_c}
                layers:
                  meta:
                  meta-poky:
              meta-mender:
                url: {mender.as_uri()}
                branch: scarthgap
                commit: {mender_c}
                layers:
                  meta-mender-core:
            local_conf_header:
              base: |
                CONF_VERSION = "2"
                INIT_MANAGER = "systemd"
                INHERIT += "mender-full"
              artifact: |
                MENDER_ARTIFACT_NAME = "autobuild"
            """),
        "kas/include/rpi.yml": textwrap.dedent(f"""\
            header:
              version: 14
            repos:
              meta-rpi:
                url: {bsp.as_uri()}
                commit: {bsp_c}
              community:
                layers:
                  meta-mender-rpi:
            local_conf_header:
              rpi: |
                RPI_USE_U_BOOT = "1"
                MENDER_BOOT_PART_SIZE_MB = "100"
                IMAGE_INSTALL:append = " kernel-image kernel-devicetree"
                IMAGE_FSTYPES:remove = " rpi-sdimg"
                PREFERRED_VERSION_u-boot ?= "2024.%"
            """),
        "kas/rpi4.yml": "header:\n  version: 14\n  includes:\n  - kas/include/base.yml\n"
                        "  - kas/include/rpi.yml\nmachine: rpi4\n",
        "kas/qemux86-64.yml": textwrap.dedent("""\
            header:
              version: 14
              includes:
              - kas/include/base.yml
            machine: qemux86-64
            repos:
              meta-mender:
                layers:
                  meta-mender-qemu:
            local_conf_header:
              qemu: |
                MENDER_STORAGE_TOTAL_SIZE_MB = "2048"
                QB_MEM = "-m 512"
            """),
        "meta-mender-rpi/conf/layer.conf": layer_conf("mender-rpi", depends=["rpi", "mender"]),
    }
    repo = tmp_path / "community"
    make_repo(repo, files)
    git(repo, "remote", "add", "origin", repo.as_uri())
    return repo


def _kas_dump(kas_file, workdir):
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, KAS_WORK_DIR=str(workdir), HOME=str(workdir))
    r = subprocess.run(["kas", "dump", str(kas_file)], cwd=workdir, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def _statements(dump):
    out = set()
    for name, text in (dump.get("local_conf_header") or {}).items():
        for st in bbconf.parse(text, name):
            out.add((st.key, st.op, " ".join(st.value.split())))
    return out


def _repos(dump):
    out = {}
    for name, r in dump["repos"].items():
        r = r or {}
        layers = r.get("layers")
        enabled = {"."} if layers is None else {k for k, v in layers.items() if v not in ("excluded", "disabled")}
        out[name] = (r.get("commit"), frozenset(enabled))
    return out


def test_import_then_compose_is_equivalent_to_the_original(community, tmp_path):
    out = tmp_path / "imported"
    r = run_cli("import-kas", str(community / "kas" / "rpi4.yml"), str(community / "kas" / "qemux86-64.yml"),
                "--product", "community", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    product = yaml.safe_load((out / "products" / "community.yml").read_text())
    assert product["series"] == "scarthgap"  # from the branch names
    assert set(product["repos"]) == {"poky", "meta-mender"}  # what both boards share
    assert product["release"]["artifact_name"] == "autobuild"
    rpi = yaml.safe_load((out / "machines" / "rpi4.yml").read_text())
    assert rpi["packages"] == ["kernel-image", "kernel-devicetree"]
    assert rpi["mender"]["storage"] == {"boot_mb": 100}
    assert rpi["local_conf"]["PREFERRED_VERSION_u-boot"] == {"op": "?=", "value": "2024.%"}

    composed = tmp_path / "composed"
    r = run_cli("compose", str(out / "products" / "community.yml"), "--out", str(composed))
    assert r.returncode == 0, r.stderr
    for board, machine in (("rpi4", "rpi4"), ("qemux86-64", "qemux86-64")):
        orig = _kas_dump(community / "kas" / f"{board}.yml", tmp_path / "w-orig" / board)
        new = _kas_dump(composed / f"{board}.yml", tmp_path / "w-new" / board)
        for key in ("machine", "distro"):
            assert orig[key] == new[key], key
        as_list = lambda t: [t] if isinstance(t, str) else t  # noqa: E731 (kas reads both forms)
        assert as_list(orig["target"]) == as_list(new["target"])
        expected = _repos(orig)
        # the original uses "the repo this file is in" (no url); the import pins its HEAD
        head = git(community, "rev-parse", "HEAD")
        expected = {k: (c or head, layers) for k, (c, layers) in expected.items()}
        assert expected == _repos(new)
        o, n = _statements(orig), _statements(new)
        assert o <= n, o - n
        # the only additions are meta-mender's own defaults, now explicit
        assert n - o <= {("MENDER_DEVICE_TYPE", "=", machine),
                         ("MENDER_DEVICE_TYPES_COMPATIBLE", "=", machine)}


def test_import_refuses_to_overwrite_and_writes_nothing_on_error(community, tmp_path):
    out = tmp_path / "o"
    bad = community / "kas" / "broken.yml"
    bad.write_text("header:\n  version: 14\n  includes:\n  - kas/include/missing.yml\nmachine: x\n")
    r = run_cli("import-kas", str(community / "kas" / "rpi4.yml"), str(bad), "--out", str(out))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "missing.yml" in r.stderr and r.stderr.count("\n") == 1
    assert not out.exists()
    assert run_cli("import-kas", str(community / "kas" / "rpi4.yml"), "--out", str(out)).returncode == 0
    r = run_cli("import-kas", str(community / "kas" / "rpi4.yml"), "--out", str(out))
    assert r.returncode == 2 and "exists (use --force" in r.stderr
