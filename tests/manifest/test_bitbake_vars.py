"""The field -> BitBake variable table is the one source: docs, loader, compose and import agree,
and every field the schema accepts is consumed or refused."""
from __future__ import annotations

from pathlib import Path

import yaml

from buildctl.compose import compose_board
from buildctl.importers import kas as importer
from buildctl.manifest import bitbake_vars, load_product
from buildctl.manifest.loader import OWNED_VARIABLES
from buildctl.manifest.schema import schema_document
from tests.helpers.products import board_data, simple_product, write_yaml

ROOT = Path(__file__).resolve().parents[2]

# Schema fields consumed somewhere other than a BitBake variable, and by what (a test elsewhere
# exercises each). A field in neither this list, the table nor the refusals is a silent drop.
CONSUMED_ELSEWHERE = {
    "board.description": "documentation only",
    "board.family": "build ordering (builder/plan.py)",
    "board.tune": "build ordering and shared sstate (builder/plan.py)",
    "board.machine_name_differs": "validate (board-name check)",
    "board.series": "validate (series-unsupported)",
    "board.local_conf.*.op": "compose: the operator of a free local.conf line",
    "board.local_conf.*.value": "compose: a free local.conf line",
    "board.repos.*.layers": "compose: kas repos layers",
    "board.repos.*.patches": "compose: kas repos patches",
    "board.repos.*.path": "compose: kas repos path",
    "board.repos.*.url": "compose: kas repos url",
    "board.repos.*.refs.*.branch": "compose: kas repos branch",
    "board.repos.*.refs.*.commit": "compose: kas repos commit",
    "board.repos.*.refs.*.tag": "compose: kas repos tag",
    "board.repos.*.signed": "validate: signed sources (layers/signatures.py)",
    "board.repos.*.allowed_signers": "validate: signed sources (layers/signatures.py)",
    "board.repos.*.credentials": "fetch/checkout only: HTTPS token (layers/gitauth.py)",
    "product.repos.*.signed": "validate: signed sources (layers/signatures.py)",
    "product.repos.*.allowed_signers": "validate: signed sources (layers/signatures.py)",
    "product.repos.*.credentials": "fetch/checkout only: HTTPS token (layers/gitauth.py)",
    "product.signers.*": "validate: the signers' keys (layers/signatures.py)",
    "product.signed": "validate: signed sources (layers/signatures.py)",
    "product.allowed_signers": "validate: signed sources (layers/signatures.py)",
    "product.fetch.known_hosts": "fetch/checkout only: SSH host keys (layers/gitauth.py)",
    "board.packages": "compose: IMAGE_INSTALL (table row 'packages')",
    "product.sbom.cyclonedx": "release: the CycloneDX SBOM of the bundle (release/api.py)",
    "product.sbom.cve_policy.*": "release: the CVE policy step (release/cve.py)",
    "product.publish.artifactory.*": "publish: the target named artifactory (publish/targets.py)",
    "product.publish.targets.*": "publish: named targets (publish/targets.py)",
    "product.publish.mender.*": "rollout --product: server and token (commands/rollout.py)",
    "product.name": "output names, artifact_name {product}",
    "product.description": "documentation only",
    "product.series": "refs selection, artifact_name {series}",
    "product.target": "compose: kas target",
    "product.boards": "the board matrix",
    "product.boards_dir": "the loader (where board files are)",
    "product.default_variant": "the variant built when none is given",
    "product.board_overrides.*.local_conf.*.op": "compose: the board's local.conf, written last",
    "product.board_overrides.*.local_conf.*.value": "compose: the board's local.conf, written last",
    "product.board_overrides.*.mender.*": "the board's mender fields (same rows as board.mender.*)",
    "product.local_conf.*.op": "compose: the operator of a free local.conf line",
    "product.local_conf.*.value": "compose: a free local.conf line",
    "product.variants.*.packages": "compose: IMAGE_INSTALL (table row 'packages')",
    "product.variants.*.image_features": "compose: EXTRA_IMAGE_FEATURES (table row 'image_features')",
    "product.variants.*.local_conf.*.op": "compose: the variant's local.conf section",
    "product.variants.*.local_conf.*.value": "compose: the variant's local.conf section",
    "product.repos.*.layers": "compose: kas repos layers",
    "product.repos.*.patches": "compose: kas repos patches",
    "product.repos.*.path": "compose: kas repos path",
    "product.repos.*.url": "compose: kas repos url",
    "product.repos.*.refs.*.branch": "compose: kas repos branch",
    "product.repos.*.refs.*.commit": "compose: kas repos commit",
    "product.repos.*.refs.*.tag": "compose: kas repos tag",
    "product.mender.require_signed": "compose: the derived verify key; the release gate",
    "product.release.version": "artifact_name {version}; reports",
    "product.runtime": "buildctl build (container runtime)",
    "product.container.image": "buildctl build (builder image)",
}


def _leaves(node, path, defs, out):
    if "$ref" in node:
        return _leaves(defs[node["$ref"].rsplit("/", 1)[-1]], path, defs, out)

    def is_object(n):
        n = defs[n["$ref"].rsplit("/", 1)[-1]] if "$ref" in n else n
        return n.get("type") == "object" or "properties" in n

    for key in ("anyOf", "oneOf"):
        objects = [n for n in node.get(key, []) if is_object(n)]
        if objects:
            for n in objects:
                _leaves(n, path, defs, out)
            return
    if node.get("type") == "object" or "properties" in node:
        extra = node.get("additionalProperties")
        for k, v in node.get("properties", {}).items():
            _leaves(v, path + (k,), defs, out)
        if isinstance(extra, dict):
            _leaves(extra, path + ("*",), defs, out)
        return
    out.add(".".join(path))


def schema_leaves() -> set[str]:
    doc = schema_document()
    out: set[str] = set()
    for kind in ("board", "product"):
        _leaves(doc["$defs"][kind], (kind,), doc["$defs"], out)
    return out


def _table_fields() -> set[str]:
    fields = set()
    for row in bitbake_vars.BINDINGS:
        for part in row.field.split(","):
            name = part.strip().split(" ")[0]
            scope = "board" if row.scope == "board" or name.startswith("mender.storage") else "product"
            fields.add(f"{scope}.{name}")
    return fields


def _covered(leaf: str, names: set[str]) -> bool:
    return any(leaf == n or (n.endswith(".*") and leaf.startswith(n[:-1])) for n in names)


def test_every_schema_field_is_consumed():
    known = _table_fields() | set(CONSUMED_ELSEWHERE)
    dropped = sorted(leaf for leaf in schema_leaves() if not _covered(leaf, known))
    assert dropped == [], f"schema fields nothing consumes: {dropped}"
    # and the lists name only real fields (a renamed field must not hide behind a stale entry)
    leaves = schema_leaves()
    stale = sorted(n for n in CONSUMED_ELSEWHERE
                   if not any(leaf == n or (n.endswith(".*") and leaf.startswith(n[:-1])) for leaf in leaves))
    assert stale == []


def test_schema_walk_sees_the_fields_it_must():
    leaves = schema_leaves()
    assert {"product.mender.verify_key", "product.mender.tenant_token", "product.sbom.cyclonedx",
            "board.repos.*.patches", "product.publish.mender.url",
            "board.mender.storage.device"} <= leaves


def test_docs_reference_table_is_the_table():
    text = (ROOT / "docs" / "manifests.md").read_text()
    block = text.split("<!-- bitbake-vars:begin -->\n", 1)[1].split("<!-- bitbake-vars:end -->", 1)[0]
    assert block == bitbake_vars.reference_table(), \
        "docs/manifests.md is out of date: python -m buildctl.manifest.bitbake_vars"


def test_owned_variables_come_from_the_table():
    assert OWNED_VARIABLES == bitbake_vars.owned_variables()
    assert {"MACHINE", "MENDER_ARTIFACT_VERIFY_KEY", "MENDER_TENANT_TOKEN", "DL_DIR"} <= set(OWNED_VARIABLES)
    assert "INHERIT" not in OWNED_VARIABLES and "MENDER_FEATURES_ENABLE" not in OWNED_VARIABLES


def test_every_local_conf_row_reaches_the_composed_file(tmp_path):
    """Set every field the table maps to local.conf and find each variable in the kas file."""
    root = tmp_path / "ws"
    path = simple_product(root)
    d = yaml.safe_load(path.read_text())
    (root / "keys").mkdir()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    (root / "keys" / "s.pem").write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    d.update(packages=["p"], image_features=["f"], sbom={"spdx": True, "include_sources": True},
             cache={"hashserve": "auto", "hashserve_upstream": "ws://u:1", "sstate_mirrors": ["a b"]},
             mender={"server_url": "https://m", "update_poll_interval_s": 30,
                     "inventory_poll_interval_s": 60, "signing_key": "file:../keys/s.pem",
                     "require_signed": True, "tenant_token": "env:T"})
    write_yaml(path, d)
    write_yaml(root / "machines" / "qemux86-64.yml", board_data(
        "qemux86-64", storage={"device": "/dev/sda", "total_mb": 4096, "boot_mb": 64,
                               "data_mb": 512, "alignment_kb": 4096}))
    doc = yaml.safe_load(compose_board(load_product(path), "qemux86-64", None,
                                       tmp_path / "o").kas_file.read_text())
    conf = "".join(doc["local_conf_header"].values())
    for row in bitbake_vars.BINDINGS:
        if row.where == bitbake_vars.LOCAL_CONF:
            assert f"\n{row.var} {row.op} " in "\n" + conf, row.var
        elif row.where in (bitbake_vars.KAS_ENV, bitbake_vars.KAS_ENV_SECRET):
            assert row.var in doc["env"], row.var
        elif row.where == bitbake_vars.KAS_KEY:
            assert doc[row.var.lower()], row.var


def test_import_maps_back_what_compose_writes():
    """Each reverse rule's variable is one compose writes (or kas env carries), and the
    importer's table is derived from bitbake_vars."""
    rules = bitbake_vars.reverse_rules()
    assert ("MENDER_STORAGE_DEVICE", "=") in rules and ("BB_HASHSERVE", "?=") in rules
    assert importer.REVERSE == rules
