"""The values a board's configuration gets from its layers, evaluated the way BitBake builds its
base configuration: every layer.conf, then OE-core's conf/bitbake.conf (which includes
local.conf, the machine and the distro configuration), then the INHERIT classes.

Pre-flight uses it to learn the defaults a manifest leaves to the layers (meta-mender's storage
device, sizes, image types, device type) at the pinned commits instead of hard-coding them.

Inline Python (`${@...}`) is evaluated only for the few helper calls in INLINE_FUNCTIONS (read
from the syntax tree, never executed); anything else stays verbatim, as an unknown value.
"""
from __future__ import annotations

import ast
import posixpath
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable

from buildctl.layers import bbconf
from buildctl.layers.layerinfo import LayerInfo

__all__ = ["board_datastore", "MenderSettings", "mender_settings", "INLINE_FUNCTIONS"]

# Where INHERIT'ed classes are looked up, in BitBake's order for global classes.
CLASS_DIRS = ("classes-global", "classes")


def _words(value) -> set[str]:
    return set(value.split() if isinstance(value, str) else value)


def _contains(d, var, checkvalues, truevalue, falsevalue, *_):
    return truevalue if _words(checkvalues) <= _words(d.get(var) or "") else falsevalue


def _contains_any(d, var, checkvalues, truevalue, falsevalue, *_):
    return truevalue if _words(checkvalues) & _words(d.get(var) or "") else falsevalue


def _filter(d, var, checkvalues, *_):
    return " ".join(v for v in (d.get(var) or "").split() if v in _words(checkvalues))


def _conditional(d, var, value, truevalue, falsevalue, *_):
    return truevalue if (d.get(var) or "") == value else falsevalue


def _mender_features(d, *_, separator=" "):
    # meta-mender's mender_features(): MENDER_FEATURES_ENABLE minus MENDER_FEATURES_DISABLE
    disabled = set((d.get("MENDER_FEATURES_DISABLE") or "").split())
    return separator.join(f for f in (d.get("MENDER_FEATURES_ENABLE") or "").split() if f not in disabled)


def _getvar(d, var, *_):
    return d.get(var)


# Inline Python helpers (BitBake's, OE's and meta-mender's) whose meaning is plain data:
# name -> function(d, *arguments without the datastore).
INLINE_FUNCTIONS: dict[str, Callable[..., str]] = {
    "bb.utils.contains": _contains,
    "bb.utils.contains_any": _contains_any,
    "bb.utils.filter": _filter,
    "oe.utils.conditional": _conditional,
    "mender_features": _mender_features,
    "d.getVar": _getvar,
}


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


class _Unknown(Exception):
    """An expression outside the small language below: keep it verbatim."""


_COMPARE = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_BUILTINS = {"max": max, "min": min, "int": int, "str": str, "len": len}
_METHODS = {"replace", "split", "strip", "startswith", "endswith", "join"}


def _eval(node: ast.AST, d: bbconf.Datastore):
    """Constants, lists, subscripts, comparisons, `x if c else y`, and/or/not, and calls of
    INLINE_FUNCTIONS, a few builtins and string methods: what layers write in `${@...}`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, bool, type(None))):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, d) for e in node.elts]
    if isinstance(node, ast.Subscript):
        seq, idx = _eval(node.value, d), _eval(node.slice, d)
        if isinstance(seq, (list, str)) and isinstance(idx, (int, bool)):
            return seq[int(idx)]
        raise _Unknown
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        return _COMPARE[type(node.ops[0])](_eval(node.left, d), _eval(node.comparators[0], d))
    if isinstance(node, ast.IfExp):
        return _eval(node.body, d) if _eval(node.test, d) else _eval(node.orelse, d)
    if isinstance(node, ast.BoolOp):
        value = None
        for v in node.values:
            value = _eval(v, d)
            if isinstance(node.op, ast.Or) == bool(value):
                return value
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _eval(node.operand, d)
    if isinstance(node, ast.Call):
        name = _dotted(node.func) or ""
        args = [_eval(a, d) for a in node.args if not (isinstance(a, ast.Name) and a.id == "d")]
        kwargs = {k.arg: _eval(k.value, d) for k in node.keywords if k.arg}
        if name in INLINE_FUNCTIONS:
            return INLINE_FUNCTIONS[name](d, *args, **kwargs)
        if name in _BUILTINS:
            return _BUILTINS[name](*args, **kwargs)
        if isinstance(node.func, ast.Attribute) and node.func.attr in _METHODS:
            target = _eval(node.func.value, d)
            if isinstance(target, str):
                return getattr(target, node.func.attr)(*args, **kwargs)
    raise _Unknown


def inline_value(code: str, d: bbconf.Datastore) -> str | None:
    """The value of `${@code}` when code stays inside what _eval knows; None otherwise."""
    try:
        value = _eval(ast.parse(code.strip(), mode="eval").body, d)
    except Exception:  # noqa: BLE001 - foreign code outside the subset: an unknown value
        return None
    if value is None or isinstance(value, bool) and not value:
        return ""
    if isinstance(value, list):
        return None
    return str(value)


@lru_cache(maxsize=4096)
def _parse(text: str, filename: str) -> tuple[bbconf.Statement, ...]:
    """Parsed once per file content: every board of a product reads the same classes."""
    try:
        return tuple(bbconf.parse(text, filename))
    except bbconf.ConfSyntaxError:
        return ()  # reported by the layer checks


class _Reader:
    """Applies statements to a datastore, following include/require (first beside the including
    file, then along BBPATH) and inherit (classes along BBPATH), each class once."""

    def __init__(self, layers: list[LayerInfo], d: bbconf.Datastore,
                 files: dict[str, list[bbconf.Statement]]):
        self.layers = layers
        self.d = d
        self.files = files  # files served from elsewhere (conf/local.conf)
        self.inherited: set[str] = set()
        self.here: list[tuple[LayerInfo | None, str]] = [(None, "")]  # (layer, directory)

    def _read(self, layer: LayerInfo, rel: str) -> tuple[bbconf.Statement, ...] | None:
        text = layer.read_text(rel)
        if text is None:
            return None
        return _parse(text, layer.display_path(rel))

    def find(self, rel: str) -> tuple[list[bbconf.Statement], LayerInfo | None, str] | None:
        if rel in self.files:
            return self.files[rel], None, ""
        layer, directory = self.here[-1]
        if layer is not None and directory and not rel.startswith("/"):
            near = posixpath.normpath(posixpath.join(directory, rel))
            sts = self._read(layer, near)
            if sts is not None:
                return sts, layer, near
        for layer in self.layers:  # BBPATH: layers in bblayers order, first match wins
            sts = self._read(layer, rel)
            if sts is not None:
                return sts, layer, rel
        return None

    def run_file(self, rel: str) -> bool:
        found = self.find(rel)
        if found is None or len(self.here) > bbconf.MAX_INCLUDE_DEPTH:
            return False
        sts, layer, path = found
        self.here.append((layer, posixpath.dirname(path)))
        try:
            self.run(sts)
        finally:
            self.here.pop()
        return True

    def run(self, statements: Iterable[bbconf.Statement]) -> None:
        for st in statements:
            if st.kind in ("include", "require", "include_all"):
                for rel in self.d.expand(st.value).split():
                    if "${" not in rel:
                        self.run_file(rel)
            elif st.kind == "inherit":
                for cls in self.d.expand(st.value).split():
                    self.inherit(cls)
            else:
                self.d.apply(st)

    def inherit(self, cls: str) -> None:
        if "${" in cls or cls in self.inherited:
            return
        self.inherited.add(cls)
        for sub in CLASS_DIRS:
            if self.run_file(f"{sub}/{cls}.bbclass"):
                return


def board_datastore(layers: list[LayerInfo], *, machine: str, distro: str,
                    local_conf: Iterable[bbconf.Statement] = ()) -> bbconf.Datastore:
    """The base configuration BitBake would build for a board (no recipe context)."""
    d = bbconf.Datastore(inline=inline_value)
    local = [bbconf.Statement(kind="assign", var="MACHINE", op="??=", value=machine, filename="kas"),
             bbconf.Statement(kind="assign", var="DISTRO", op="??=", value=distro, filename="kas"),
             *local_conf]
    reader = _Reader(layers, d, {"conf/local.conf": local})
    for layer in layers:
        d.set("LAYERDIR", "/" + layer.name)
        reader.run(layer.statements)
    d.unset("LAYERDIR")
    if not reader.run_file("conf/bitbake.conf"):
        reader.run(local)  # no OE-core in the stack: local.conf is all there is
    for cls in (d.get("INHERIT") or "").split():
        reader.inherit(cls)
    return d


# --- meta-mender -----------------------------------------------------------------------------
# image types meta-mender builds (IMAGE_FSTYPES entries a manifest lists in mender.image_types)
MENDER_IMAGE_TYPES = ("sdimg", "uefiimg", "biosimg", "gptimg", "ubimg", "mender")


@dataclass(frozen=True)
class MenderSettings:
    """meta-mender settings as the board's configuration evaluates them (None: not known)."""

    features: tuple[str, ...]
    device: str | None
    total_mb: int | None
    boot_mb: int | None
    data_mb: int | None
    alignment_bytes: int | None
    device_types: tuple[str, ...]
    image_types: tuple[str, ...]
    bootloader: str | None


def _int(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None


def _known(text: str | None) -> str | None:
    return text if text and "${" not in text else None


def mender_settings(d: bbconf.Datastore) -> MenderSettings:
    features = tuple(f for f in (d.get("MENDER_FEATURES") or _mender_features(d)).split()
                     if "${" not in f)
    fstypes = (d.get("IMAGE_FSTYPES") or "").split()
    if "mender-uboot" in features:
        bootloader = "u-boot"
    elif "mender-grub" in features:
        bootloader = "grub-bios" if "mender-bios" in features else "grub-efi"
    else:
        bootloader = None
    device_type = _known(d.get("MENDER_DEVICE_TYPE"))
    compatible = _known(d.get("MENDER_DEVICE_TYPES_COMPATIBLE")) or device_type or ""
    types = [device_type] if device_type else []
    types += [t for t in compatible.split() if t not in types]
    return MenderSettings(
        features=features,
        device=_known(d.get("MENDER_STORAGE_DEVICE")),
        total_mb=_int(d.get("MENDER_STORAGE_TOTAL_SIZE_MB")),
        boot_mb=_int(d.get("MENDER_BOOT_PART_SIZE_MB")),
        data_mb=_int(d.get("MENDER_DATA_PART_SIZE_MB")),
        alignment_bytes=_int(d.get("MENDER_PARTITION_ALIGNMENT")),
        device_types=tuple(types),
        image_types=tuple(t for t in MENDER_IMAGE_TYPES if t in fstypes),
        bootloader=bootloader,
    )
