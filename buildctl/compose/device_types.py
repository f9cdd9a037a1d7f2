"""The device types a board's artifacts carry: the manifest's when it sets them, else what the
board's layers compute (meta-mender defaults MENDER_DEVICE_TYPE to MACHINE; BSP integration
layers may set their own, e.g. a ``-grub`` suffix).

The layers are read at their pinned commits with buildctl's BitBake parser: the assignments of
the device type variables in the stack's layer.conf files and classes, and the composed
local.conf, evaluated with the board's overrides (MACHINE, MACHINEOVERRIDES and the Mender
features compose enables). Features a distro enables on its own are not seen.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from buildctl.layers import bbconf
from buildctl.layers.checks import machine_variables
from buildctl.layers.layerinfo import LayerInfo
from buildctl.manifest.bitbake_vars import Context, mender_features
from buildctl.manifest.model import Board, Product

VARS = ("MENDER_DEVICE_TYPE", "MENDER_DEVICE_TYPES_COMPATIBLE")
_MENTIONS = ("MENDER_DEVICE_TYPE",)


@dataclass(frozen=True)
class DeviceTypes:
    board: str
    device_type: str | None  # None: the layers could not be read
    compatible: tuple[str, ...]
    source: str  # where the value comes from (file:line or "layers")

    def as_dict(self) -> dict:
        return {"board": self.board, "device_type": self.device_type,
                "compatible": list(self.compatible), "source": self.source}


def from_manifest(product: Product, board: Board) -> DeviceTypes | None:
    types = board.mender.device_types
    if not types:
        return None
    line = board.line("mender", "device_types")
    path = os.path.relpath(board.path) if board.path else ""
    return DeviceTypes(board.name, types[0], tuple(types), f"{path}:{line}" if line else path)


def _class_statements(layers: list[LayerInfo]) -> tuple[list[bbconf.Statement], list[str]]:
    """Assignments to the device type variables in the stack's classes, in layer order."""
    out: list[bbconf.Statement] = []
    files: list[str] = []
    for layer in layers:
        if layer.tree is None:
            continue
        prefix = f"{layer.path}/" if layer.path else ""
        for full in layer.tree.files(prefix):
            rel = full[len(prefix):]
            if not (rel.startswith("classes") and rel.endswith(".bbclass")):
                continue
            text = layer.read_text(rel) or ""
            if not any(m in text for m in _MENTIONS):
                continue
            try:
                parsed = bbconf.parse(text, layer.display_path(rel), recipe_syntax=True)
            except bbconf.ConfSyntaxError:
                continue
            keep = [st for st in parsed if st.kind == "assign" and not st.flag
                    and st.var.startswith("MENDER_DEVICE_TYPE")]
            if keep:
                out += keep
                files.append(layer.display_path(rel))
    return out, files


def from_layers(product: Product, board: Board, layers: list[LayerInfo],
                local_conf: list[bbconf.Statement]) -> DeviceTypes:
    """What BitBake would compute for the board (local_conf: the composed statements)."""
    conf = next((l.machines[board.machine] for l in layers if board.machine in l.machines), None)
    machine_vars = machine_variables(layers, conf, local_conf) if conf else {}
    classes, files = _class_statements(layers)
    layer_confs = [st for layer in layers for st in layer.statements
                   if st.kind == "assign" and not st.flag and st.var.startswith("MENDER_DEVICE_TYPE")]
    files += sorted({st.filename for st in layer_confs})
    if not files:
        return DeviceTypes(board.name, None, (), "no layer of the stack sets a device type")
    enabled, _ = mender_features(Context(product, board, product.variant(None)))
    overrides = [*machine_vars.get("MACHINEOVERRIDES", board.machine).split(":"), board.machine,
                 *enabled]
    overrides = [o for o in dict.fromkeys(overrides) if o and "$" not in o]
    # BitBake's order: the layers' layer.conf, local.conf (and the machine), then global classes
    d = bbconf.datastore([*layer_confs, *local_conf, *classes], {"MACHINE": board.machine},
                         overrides=overrides)
    values = d.as_dict()
    first = values.get("MENDER_DEVICE_TYPE") or None
    compatible = tuple((values.get("MENDER_DEVICE_TYPES_COMPATIBLE") or first or "").split())
    return DeviceTypes(board.name, first, compatible, ", ".join(files))


def effective(product: Product, board: Board, layers: list[LayerInfo] | None,
              local_conf: list[bbconf.Statement] = ()) -> DeviceTypes:
    given = from_manifest(product, board)
    if given is not None:
        return given
    if layers is None:
        return DeviceTypes(board.name, None, (), "the board's layers (not read)")
    return from_layers(product, board, layers, list(local_conf))


def explain(product: Product, boards: list[Board], lock, cache) -> list[DeviceTypes]:
    """Effective device types of each board; layers are read (at their pinned commits) only
    for boards whose manifest leaves the device type to them."""
    from buildctl.layers.gitfs import GitFS
    from buildctl.layers.layerinfo import read_layers
    from buildctl.preflight.manifest_checks import board_statements
    from buildctl.preflight.run import board_layer_refs

    out: dict[str, DeviceTypes] = {}
    stacks = {}
    for board in boards:
        given = from_manifest(product, board)
        if given is not None:
            out[board.name] = given
            continue
        refs, problems = board_layer_refs(product, board, lock, cache)
        if problems:
            out[board.name] = DeviceTypes(board.name, None, (), f"layers not readable: {problems[0].message}")
        else:
            stacks[board.name] = refs
    if stacks:
        fs = GitFS()
        try:
            all_refs = [r for refs in stacks.values() for r in refs]
            infos = dict(zip(all_refs, read_layers(all_refs, fs=fs, record_errors=True)))
            for board in boards:
                if board.name in stacks:
                    out[board.name] = from_layers(
                        product, board, [infos[r] for r in stacks[board.name]],
                        board_statements(product, board, product.variant(None)))
        finally:
            fs.close()
    return [out[b.name] for b in boards]


def describe(t: DeviceTypes) -> str:
    if t.device_type is None:
        return f"{t.board}: device type unknown ({t.source})"
    extra = [x for x in t.compatible if x != t.device_type]
    also = f", also installs on {' '.join(extra)}" if extra else ""
    return f"{t.board}: device type {t.device_type}{also} (from {t.source})"


def promised(product: Product, boards: list[Board], lock, cache=None) -> dict[str, tuple[str, ...] | None]:
    """Per board, the device types its artifacts must carry (what the release gate compares):
    the manifest's, else the layers' effective value read offline from buildctl's git cache
    (``cache``: a RepoCache; default: the one the environment names). None: not known (the
    layers are not in the cache), the artifacts' other checks still apply."""
    if all(from_manifest(product, b) is not None for b in boards):
        return {b.name: tuple(b.mender.device_types) for b in boards}
    if cache is None:
        from buildctl.repos import RepoCache
        from buildctl.settings import Settings

        env = Settings.from_environ()
        cache = RepoCache(cache_dir=env.git_cache, ref_dir=env.repo_ref_dir, offline=True)
    return {t.board: (t.compatible or None) for t in explain(product, boards, lock, cache)}
