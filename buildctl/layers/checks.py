"""Pre-flight checks over one board's layer stack: the mistakes BitBake would stop on after
minutes (or hours), found in milliseconds from the layers' own configuration files.

Codes (stable, for --json consumers and docs):
  layer-unreadable       repository or pinned commit cannot be read (read_layers(record_errors=True))
  repo-unreadable        git refuses to read the repository (another user's checkout: "dubious ownership")
  layer-conf-missing     a configured layer directory has no conf/layer.conf
  conf-syntax            a configuration line BitBake cannot parse
  layer-depends-syntax   LAYERDEPENDS/LAYERRECOMMENDS that cannot be read
  collection-duplicate   two layers declare the same BBFILE_COLLECTIONS name
  layer-priority         BBFILE_PRIORITY_<c> that is not a whole number
  layer-pattern          a collection without BBFILE_PATTERN_<c>
  core-series            OE-core's LAYERSERIES_CORENAMES does not include the product series
  series-compat          a layer's LAYERSERIES_COMPAT shares no name with the core series
  series-compat-missing  a layer sets no LAYERSERIES_COMPAT (warning, as in BitBake)
  layer-depends          LAYERDEPENDS names a collection no layer in the stack provides
  layer-depends-version  LAYERDEPENDS version constraint not met by LAYERVERSION
  machine-missing        no layer has conf/machine/<MACHINE>.conf
  distro-missing         no layer has conf/distro/<DISTRO>.conf
  bbappend-dangling      a .bbappend that matches no recipe of the stack
  bootloader-unusable    the chosen bootloader integration cannot work with this BSP
  assignment-conflict    one variable set twice to different values (check_assignments)
"""
from __future__ import annotations

import bisect
import difflib
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from buildctl.findings import Finding
from buildctl.layers import bbconf
from buildctl.layers.layerinfo import ConfFile, LayerInfo, Recipe

__all__ = ["check_stack", "check_assignments", "bbappend_matches", "vercmp", "machine_variables"]

NO_DISTRO = ("", "nodistro")


def vercmp(a: str, b: str) -> int:
    """Compare version strings piecewise (numbers numerically, text lexically): -1, 0, 1."""

    def parts(v: str) -> list[tuple[int, int | str]]:
        return [(0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|[A-Za-z]+", v)]

    pa, pb = parts(a), parts(b)
    for x, y in zip(pa, pb):
        if x != y:
            if x[0] != y[0]:
                return -1 if x[0] > y[0] else 1  # a number sorts after text (1.0 > 1.rc)
            return -1 if x[1] < y[1] else 1  # type: ignore[operator]
    return (len(pa) > len(pb)) - (len(pa) < len(pb))


_OPS = {
    "=": lambda c: c == 0,
    "==": lambda c: c == 0,
    "!=": lambda c: c != 0,
    "<": lambda c: c < 0,
    "<<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">>": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


def bbappend_matches(bbappend_filename: str, recipe_filename: str) -> bool:
    """BitBake's rule: names equal (`.bbappend` vs `.bb`), or the append's name has `%` and the
    recipe's name starts with everything before the `%` (`busybox_1.%` matches busybox_1.36.1.bb)."""
    app = bbappend_filename.removesuffix(".bbappend") + ".bb"
    if app == recipe_filename:
        return True
    if "%" in app:
        cut = app.index("%")
        return app.startswith(recipe_filename[:cut])
    return False


class _RecipeIndex:
    """Recipe file names, answering bbappend_matches for all of them in O(log n)."""

    def __init__(self, filenames: Iterable[str]):
        self.names = set(filenames)
        self.sorted = sorted(self.names)

    def matches(self, bbappend_filename: str) -> bool:
        app = bbappend_filename.removesuffix(".bbappend") + ".bb"
        if app in self.names:
            return True
        if "%" not in app:
            return False
        cut = app.index("%")
        prefix = app[:cut]
        # Recipes whose name starts with the prefix ...
        i = bisect.bisect_left(self.sorted, prefix)
        if i < len(self.sorted) and self.sorted[i].startswith(prefix):
            return True
        # ... or, since BitBake compares only the first len(prefix) characters, a recipe file
        # name shorter than the prefix that the prefix starts with.
        return any(prefix[:k] in self.names for k in range(1, cut))


def _active(dynamic: str, collections: set[str]) -> bool:
    if not dynamic:
        return True
    if dynamic.startswith("!"):
        return dynamic[1:] not in collections
    return dynamic in collections


@dataclass(frozen=True)
class _Where:
    file: str = ""
    line: int | None = None


def _close(name: str, options: Iterable[str]) -> str:
    near = difflib.get_close_matches(name, sorted(set(options)), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(near)}?)" if near else ""


def machine_variables(
    layers: list[LayerInfo], conf: ConfFile, local_conf: Iterable[bbconf.Statement] = ()
) -> dict[str, str]:
    """Evaluate a machine (or distro) conf with its include/require files found in the stack
    (BBPATH order = layer order), so MACHINE_FEATURES from `rpi-base.inc` etc. are seen.
    local_conf statements go first, as local.conf is parsed before the machine conf."""
    owners = [l for l in layers if conf.file.startswith(l.name + "/")]
    owner = max(owners, key=lambda l: len(l.name)) if owners else None
    text = owner.read_text(conf.file[len(owner.name) + 1 :]) if owner else None
    if text is None:
        return {k: v.value for k, v in conf.variables.items()}

    def resolver(st: bbconf.Statement, d: bbconf.Datastore) -> list[bbconf.Statement] | None:
        out: list[bbconf.Statement] = []
        for rel in d.expand(st.value).split():
            if "${" in rel:
                continue
            for layer in layers:
                body = layer.read_text(rel)
                if body is not None:
                    try:
                        out.extend(bbconf.parse(body, layer.display_path(rel)))
                    except bbconf.ConfSyntaxError:
                        pass
                    break
        return out

    try:
        sts = list(local_conf) + bbconf.parse(text, conf.file)
    except bbconf.ConfSyntaxError:
        return {k: v.value for k, v in conf.variables.items()}
    d = bbconf.datastore(sts, {"MACHINE": conf.name}, overrides=[], resolver=resolver)
    return d.as_dict()


def check_stack(
    board: str,
    layers: list[LayerInfo],
    *,
    series: str,
    machine: str,
    distro: str,
    bootloader: str | None = None,
    manifest_file: str = "",
    manifest_lines: Mapping[str, int] | None = None,
    local_conf: Iterable[bbconf.Statement] = (),
) -> list[Finding]:
    """Every problem of one board's layer stack (layers in bblayers order, OE-core first).

    series: the product's Yocto series (e.g. "scarthgap"); machine/distro: MACHINE and DISTRO
    ("" or "nodistro" skips the distro check); bootloader: the Mender bootloader integration
    ("u-boot", "grub-efi", ...) if the manifest has one. manifest_file/manifest_lines
    ({"machine": 3, "distro": 5, "series": 2, "bootloader": 9}) locate findings that belong to
    the manifest rather than to a layer. local_conf: the board's local.conf statements
    (bbconf.parse of the composed fragment), seen by the bootloader check before the machine
    conf, e.g. `MACHINE_FEATURES:append = " efi"`.
    """
    lines = dict(manifest_lines or {})
    out: list[Finding] = []

    def add(code: str, message: str, file: str = "", line: int | None = None, severity: str = "error") -> None:
        out.append(Finding(board=board, code=code, message=message, file=file, line=line, severity=severity))

    def at_manifest(key: str) -> _Where:
        return _Where(manifest_file, lines.get(key)) if manifest_file else _Where()

    for layer in layers:
        for p in layer.problems:
            add(p.code, p.message, p.file, p.line)

    # Collections, duplicates
    providers: dict[str, tuple[LayerInfo, object]] = {}
    for layer in layers:
        for c in layer.collections:
            if c.name in providers:
                first, fc = providers[c.name]
                add(
                    "collection-duplicate",
                    f"collection '{c.name}' is declared by both {first.name} ({fc.file}:{fc.line}) and "
                    f"{layer.name}; BitBake refuses duplicated BBFILE_COLLECTIONS: keep one of the two layers",
                    c.file,
                    c.line,
                )
            else:
                providers[c.name] = (layer, c)
    collections = set(providers)

    # Priorities and patterns BitBake insists on
    for layer in layers:
        for c in layer.collections:
            pr = c.priority
            if pr is not None and not pr.value.strip().lstrip("-").isdigit():
                add("layer-priority", f"BBFILE_PRIORITY_{c.name} is \"{pr.value}\", not a whole number", pr.file, pr.line)
            if c.pattern is None:
                add("layer-pattern", f"layer '{c.name}' ({layer.name}) does not set BBFILE_PATTERN_{c.name}; "
                    "BitBake stops without it", c.file, c.line)

    # Series compatibility
    core_layer = next((l for l in layers if l.corenames is not None and l.corenames.value.split()), None)
    if core_layer is not None:
        corenames = core_layer.corenames.value.split()
        if series not in corenames:
            add(
                "core-series",
                f"the core layer {core_layer.name} at commit {core_layer.commit[:12]} is for series "
                f"{' '.join(corenames)}, but the product is built for '{series}': pin a {series} commit of it",
                core_layer.corenames.file,
                core_layer.corenames.line,
            )
    else:
        corenames = [series]
    for layer in layers:
        for c in layer.collections:
            if not c.compat:
                add(
                    "series-compat-missing",
                    f"layer '{c.name}' ({layer.name}) does not set LAYERSERIES_COMPAT_{c.name}, so nothing "
                    f"says it works with {' '.join(corenames)}",
                    c.file,
                    c.line,
                    severity="warning",
                )
            elif not set(c.compat) & set(corenames):
                at = c.compat_at
                add(
                    "series-compat",
                    f"layer '{c.name}' ({layer.name}) is compatible with {' '.join(c.compat)}, not with the "
                    f"core layer's series {' '.join(corenames)}: use its {series} branch",
                    at.file if at else c.file,
                    at.line if at else c.line,
                )

    # Dependencies
    for layer in layers:
        for c in layer.collections:
            at = c.depends_at
            for dep in c.depends:
                where = (at.file, at.line) if at else (c.file, c.line)
                if dep.name not in collections:
                    add(
                        "layer-depends",
                        f"layer '{c.name}' ({layer.name}) depends on layer '{dep.name}', but no layer of this "
                        f"board provides that collection: add the layer whose conf/layer.conf declares "
                        f"BBFILE_COLLECTIONS \"{dep.name}\"",
                        *where,
                    )
                    continue
                if not dep.op:
                    continue
                dl, dc = providers[dep.name]
                have = dc.version.value if dc.version else ""  # type: ignore[attr-defined]
                if not have:
                    add(
                        "layer-depends-version",
                        f"layer '{c.name}' depends on version {dep.op} {dep.version} of layer '{dep.name}', but "
                        f"{dl.name} sets no LAYERVERSION_{dep.name}: check both layers are on matching branches",
                        *where,
                    )
                elif dep.op not in _OPS:
                    add("layer-depends-syntax", f"unknown version operator '{dep.op}' in {dep}", *where)
                elif not _OPS[dep.op](vercmp(have, dep.version)):
                    add(
                        "layer-depends-version",
                        f"layer '{c.name}' depends on version {dep.op} {dep.version} of layer '{dep.name}', but "
                        f"{dl.name} is version {have}: check both layers are on matching branches",
                        *where,
                    )

    # MACHINE and DISTRO
    machines = {m: conf for layer in reversed(layers) for m, conf in layer.machines.items()}
    machine_conf = machines.get(machine)
    if machine and machine_conf is None:
        w = at_manifest("machine")
        add(
            "machine-missing",
            f"MACHINE '{machine}' is not defined by any layer of this board (no conf/machine/{machine}.conf)"
            + _close(machine, machines),
            w.file,
            w.line,
        )
    distros = {d for layer in layers for d in layer.distros}
    if distro not in NO_DISTRO and distro not in distros:
        w = at_manifest("distro")
        add(
            "distro-missing",
            f"DISTRO '{distro}' is not defined by any layer of this board (no conf/distro/{distro}.conf)"
            + _close(distro, distros),
            w.file,
            w.line,
        )

    # bbappends without a recipe
    recipes: list[Recipe] = [r for l in layers for r in l.recipes if _active(r.dynamic, collections)]
    recipe_index = _RecipeIndex(r.filename for r in recipes)
    for layer in layers:
        for app in layer.bbappends:
            if not _active(app.dynamic, collections):
                continue
            if recipe_index.matches(app.filename):
                continue
            pn = app.filename.split("_")[0].removesuffix(".bbappend")
            have = sorted(r.filename for r in recipes if r.pn == pn)  # only when reporting
            hint = f"; the stack has {', '.join(have)}" if have else f"; no recipe named {pn} in the stack"
            add(
                "bbappend-dangling",
                f"{app.filename} matches no recipe{hint} (BitBake stops: no recipes available for it)",
                app.file,
            )

    # Bootloader integration
    if bootloader and machine_conf is not None:
        out.extend(_check_bootloader(board, layers, machine_conf, bootloader, recipes, at_manifest("bootloader"), list(local_conf)))
    return out


def _check_bootloader(board, layers, conf: ConfFile, bootloader: str, recipes: list[Recipe], w: _Where,
                      local_conf: list[bbconf.Statement]) -> list[Finding]:
    found: list[Finding] = []
    values = machine_variables(layers, conf, local_conf)
    pns = {r.pn for r in recipes}
    provider = values.get("PREFERRED_PROVIDER_virtual/bootloader", "")

    def add(message: str) -> None:
        found.append(Finding(board, "bootloader-unusable", message, w.file or conf.file, w.line if w.file else None))

    bl = bootloader.lower()
    if bl in ("grub-efi", "grub", "efi", "systemd-boot"):
        # meta-mender's GRUB integration does not need 'efi' in MACHINE_FEATURES: it sets
        # EFI_PROVIDER itself and, on ARM, lets U-Boot load the EFI application
        # (qemux86-64 and qemuarm64 are built that way). Only the recipe must exist.
        wanted = "systemd-boot" if bl == "systemd-boot" else "grub-efi"
        if wanted not in pns:
            add(f"bootloader '{bootloader}' needs a {wanted} recipe, but no layer of this board has one")
    elif bl.startswith("u-boot") or bl == "uboot":
        if provider:
            if provider not in pns:
                add(
                    f"MACHINE '{conf.name}' wants virtual/bootloader from '{provider}' ({conf.file}), "
                    f"but no layer of this board has that recipe"
                )
        elif not any(p == "u-boot" or (p.startswith("u-boot-") and p not in _UBOOT_TOOLS) for p in pns):
            add(f"bootloader '{bootloader}' needs a u-boot recipe (virtual/bootloader), but no layer of this board has one")
    return found


_UBOOT_TOOLS = {"u-boot-tools", "u-boot-fw-utils", "u-boot-mkimage", "u-boot-mkenvimage"}


def check_assignments(board: str, statements: Iterable[bbconf.Statement]) -> list[Finding]:
    """Warn where one board's configuration sets the same variable (same override/flag) twice
    with plain `=`/`:=` to different values: only the later one counts, which is rarely meant.
    Statements may come from several files; both places are named."""
    first: dict[tuple[str, str], bbconf.Statement] = {}
    out: list[Finding] = []
    for st in statements:
        if st.kind != "assign" or st.op not in ("=", ":=") or st.operation:
            continue
        key = (st.key, st.flag)
        prev = first.get(key)
        if prev is None:
            first[key] = st
            continue
        if " ".join(prev.value.split()) != " ".join(st.value.split()):
            name = st.key + (f"[{st.flag}]" if st.flag else "")
            out.append(
                Finding(
                    board=board,
                    code="assignment-conflict",
                    message=(
                        f"{name} is set to \"{prev.value.strip()}\" at {prev.filename}:{prev.line} and to "
                        f"\"{st.value.strip()}\" at {st.filename}:{st.line}; only the later value is used"
                    ),
                    file=st.filename,
                    line=st.line,
                    severity="warning",
                )
            )
        first[key] = st
    return out
