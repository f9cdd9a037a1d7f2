"""The demo product manifest is complete, pinned, and names only things that exist."""
from __future__ import annotations

import pytest

from buildctl.secrets import SecretRef

from ._helpers import HEX40, LAYERS, MACHINES, ROOT, SERIES, load_yaml, product_file

PRODUCT_KEYS = {"name", "series", "distro", "target", "repos", "packages", "boards", "boards_dir",
                "variants", "default_variant", "board_overrides", "release", "mender", "cache",
                "sbom", "publish", "runtime", "container"}
REQUIRED = {"name", "series", "distro", "target", "repos", "boards", "release", "mender"}


@pytest.fixture(scope="module")
def product() -> dict:
    return load_yaml(product_file())


def test_product_has_the_documented_fields(product):
    assert REQUIRED <= product.keys(), REQUIRED - product.keys()
    assert product.keys() <= PRODUCT_KEYS, product.keys() - PRODUCT_KEYS
    assert product["name"] == product_file().stem
    assert product["series"] in SERIES
    assert product["target"] == "core-image-minimal"


def test_core_repos_are_pinned_for_the_product_series_and_wrynose(product):
    for name, repo in product["repos"].items():
        if "path" in repo:
            continue
        assert repo["url"].startswith("https://"), name
        for series in {product["series"], "wrynose"}:
            ref = repo["refs"][series]
            assert HEX40.match(ref["commit"]), f"repos.{name}.refs.{series}.commit"
            assert ref["branch"], f"repos.{name}.refs.{series}.branch"


def test_core_repos_provide_what_meta_mender_needs(product):
    layers = {(name, layer) for name, repo in product["repos"].items()
              for layer in repo.get("layers", ["."])}
    assert ("openembedded-core", "meta") in layers
    assert ("meta-yocto", "meta-poky") in layers          # our distro requires poky.conf
    assert ("meta-mender", "meta-mender-core") in layers
    assert ("meta-openembedded", "meta-oe") in layers      # lmdb for the Mender client


def test_local_repo_layers_exist_and_are_ours(product):
    local = [r for r in product["repos"].values() if "path" in r]
    assert len(local) == 1
    base = (product_file().parent / local[0]["path"]).resolve()
    assert base == ROOT
    for layer in local[0]["layers"]:
        assert (base / layer / "conf" / "layer.conf").is_file(), layer


def test_distro_is_defined_by_one_of_our_layers(product):
    assert (LAYERS / "meta-buildctl" / "conf" / "distro" / f"{product['distro']}.conf").is_file()


def test_every_package_has_a_recipe_in_our_layers(product):
    for package in product["packages"]:
        recipes = list(LAYERS.glob(f"*/recipes-*/*/{package}_*.bb")) + list(
            LAYERS.glob(f"*/recipes-*/*/{package}.bb"))
        assert recipes, f"packages: no recipe for {package} in layers/"


def test_every_board_is_shipped(product):
    boards_dir = (product_file().parent / product.get("boards_dir", "../machines")).resolve()
    assert boards_dir == MACHINES.resolve()
    for board in product["boards"]:
        assert (boards_dir / f"{board}.yml").is_file(), f"boards: {board}"
    assert len(product["boards"]) == len(set(product["boards"]))
    for board in product.get("board_overrides", {}):
        assert board in product["boards"], f"board_overrides.{board}: not a product board"


def test_all_boards_support_the_product_series(product):
    for board in product["boards"]:
        series = load_yaml(MACHINES / f"{board}.yml")["series"]
        assert product["series"] in series, f"{board} cannot build {product['series']}"


def test_secrets_are_references_never_values(product):
    assert SecretRef.parse(product["mender"]["signing_key"]).kind in {"file", "env"}
    assert SecretRef.parse(product["mender"]["tenant_token"]).kind == "env"
    for target, conf in (product.get("publish") or {}).items():
        assert SecretRef.parse(conf["token"]).kind == "env", f"publish.{target}.token"


def test_variants_and_release(product):
    assert {"release", "debug"} <= product["variants"].keys()
    assert product["default_variant"] in product["variants"]
    assert "{board}" in product["release"]["artifact_name"]
    assert "{version}" in product["release"]["artifact_name"]
    # debug-tweaks is gone after scarthgap; the split features work on both series.
    assert "debug-tweaks" not in product["variants"]["debug"].get("image_features", [])


def test_product_loads_with_every_board():
    from buildctl.manifest import load_product

    product = load_product(product_file())
    assert len(product.boards) >= 8
    assert product.series == "scarthgap"


def test_shipped_lock_matches_the_manifests():
    from buildctl.compose import lockfile
    from buildctl.compose.locking import check_lock
    from buildctl.manifest import load_product

    product = load_product(product_file())
    lock = lockfile.load(lockfile.default_path(product))
    assert lock.series == product.series
    assert check_lock(product, lock, cache=None) == []
    # every board composes with the locked commits: one poky/meta-mender for the matrix
    assert lock.commit("meta-mender") == product.repos["meta-mender"].ref("scarthgap").commit
