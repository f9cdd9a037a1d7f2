"""Ask the BSP instead of the user: read a MACHINE's configuration from git objects.

The board's layer stack (OE-core first, then the BSP layers) is read at the pinned commits
with buildctl.layers (no checkout). The machine's `conf/machine/<MACHINE>.conf` is evaluated
with its include/require files found along BBPATH (the including file's directory first, then
the layers in order, as BitBake does), with `MACHINEOVERRIDES ??= "${MACHINE}"` and OVERRIDES
seeded as in PROBE_SEED, so override-qualified assignments (`:rpi`, `:mx8mp-generic-bsp`)
apply. Each probed value keeps the file:line of the assignment that decided it.

What is *not* seen: values that bitbake.conf, the distro or classes add after the machine
conf (IMAGE_FSTYPES defaults, the kernel class's KERNEL_IMAGETYPE default). The proposals in
propose() say so when they fall back to a default.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from buildctl.layers.inline import NotEvaluable, expand_inline
from buildctl.errors import UserError
from buildctl.layers import bbconf
from buildctl.layers.gitfs import GitFS, GitReadError
from buildctl.layers.layerinfo import LayerInfo, LayerRef, read_layers

# What the probe reads from the machine configuration.
PROBED = (
    "KERNEL_IMAGETYPE",
    "IMAGE_FSTYPES",
    "SERIAL_CONSOLES",
    "PREFERRED_PROVIDER_virtual/bootloader",
    "PREFERRED_PROVIDER_virtual/kernel",
    "MACHINE_FEATURES",
    "EFI_PROVIDER",
    "MACHINEOVERRIDES",
    "TRANSLATED_TARGET_ARCH",
    "UBOOT_MACHINE",
    "MKUBIFS_ARGS",
    "UBINIZE_ARGS",
    "MENDER_MTDIDS",
    "MENDER_STORAGE_PEB_SIZE",
    "MENDER_STORAGE_TOTAL_SIZE_MB",
    "MENDER_DATA_PART_SIZE_MB",
    "MACHINE_ESSENTIAL_EXTRA_RRECOMMENDS",
    "DEFAULTTUNE",
)

# What bitbake.conf sets around `include conf/machine/${MACHINE}.conf` that the probe needs:
# before it, the variables OVERRIDES is made of that a machine conf decides (the target
# architecture from the tune files, MACHINEOVERRIDES; TARGET_OS is "linux" with glibc), and
# after it, defaults that apply when the machine set nothing.
PROBE_BEFORE = (
    'TUNE_ARCH ??= "INVALID"\n'
    'TUNE_FEATURES ??= "${TUNE_FEATURES:tune-${DEFAULTTUNE}}"\n'
    'TARGET_ARCH = "${TUNE_ARCH}"\n'
    'TRANSLATED_TARGET_ARCH ??= "${@d.getVar(\'TARGET_ARCH\').replace(\'_\', \'-\')}"\n'
    'OVERRIDES = "linux:${TRANSLATED_TARGET_ARCH}:${MACHINEOVERRIDES}:forcevariable"\n'
    'MACHINEOVERRIDES ?= "${MACHINE}"\n'
)
PROBE_AFTER = 'IMAGE_FSTYPES ?= "tar.gz"\n'

MAX_DEPTH = 30


class ProbeError(UserError):
    pass


@dataclass(frozen=True)
class Probed:
    """One value from the machine configuration and the assignment that decided it."""

    value: str | None
    origin: str  # "meta-raspberrypi/conf/machine/include/rpi-base.inc:45", or "not set"
    computable: bool = True  # False when an inline Python expression could not be evaluated


@dataclass
class MachineProbe:
    machine: str
    conf_file: str  # display path of conf/machine/<MACHINE>.conf
    layer: LayerInfo
    values: dict[str, Probed] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # every file read, in parse order

    def get(self, name: str) -> str:
        p = self.values.get(name)
        return (p.value or "") if p else ""

    def words(self, name: str) -> list[str]:
        return self.get(name).split()


def read_stack(refs: list[LayerRef], fs: GitFS | None = None) -> list[LayerInfo]:
    """The layers at their commits (BBPATH order), or ProbeError naming what cannot be read."""
    try:
        layers = read_layers(refs, fs=fs)
    except GitReadError as e:
        raise ProbeError(str(e)) from None
    for info in layers:
        for p in info.problems:
            if p.code == "layer-conf-missing":
                raise ProbeError(p.message)
    return layers


def find_machine(layers: list[LayerInfo], machine: str) -> LayerInfo:
    owners = [l for l in layers if machine in l.machines]
    if not owners:
        known = sorted({m for l in layers for m in l.machines})
        import difflib

        near = difflib.get_close_matches(machine, known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise ProbeError(f"MACHINE {machine!r} is not defined by any layer of the stack "
                         f"({', '.join(l.name for l in layers)}){hint}")
    return owners[0]  # BitBake takes the first conf/machine/<MACHINE>.conf along BBPATH


def _owner(layers: list[LayerInfo], display: str) -> tuple[LayerInfo, str] | None:
    best = None
    for l in layers:
        if display.startswith(l.name + "/") and (best is None or len(l.name) > len(best.name)):
            best = l
    return (best, display[len(best.name) + 1 :]) if best else None


def probe_machine(layers: list[LayerInfo], machine: str, *,
                  local_conf: list[bbconf.Statement] | None = None) -> MachineProbe:
    """Evaluate MACHINE's configuration over layers (BBPATH order) and read PROBED from it."""
    owner = find_machine(layers, machine)
    rel = f"conf/machine/{machine}.conf"
    result = MachineProbe(machine, owner.display_path(rel), owner)
    try:
        top = bbconf.parse(owner.read_text(rel) or "", result.conf_file)
    except bbconf.ConfSyntaxError as e:
        raise ProbeError(str(e)) from None
    before = bbconf.parse(PROBE_BEFORE, "bitbake.conf (probe seed)")
    after = bbconf.parse(PROBE_AFTER, "bitbake.conf (default)")
    statements = before + list(local_conf or []) + top + after
    # OVERRIDES often holds inline Python (MACHINEOVERRIDES =. "${@...}"), which the datastore
    # leaves as text: evaluate, compute OVERRIDES with the inline parts, evaluate again with
    # that list until it settles (as BitBake's override handling does).
    overrides: list[str] | None = None
    for _ in range(4):
        d, origins, files = _evaluate(layers, machine, statements, overrides)
        raw = d.get("OVERRIDES") or ""
        try:
            new = [o for o in expand_inline(raw, d).split(":") if o]
        except NotEvaluable:
            new = [o for o in raw.split(":") if o and "${" not in o]
        if new == overrides:
            break
        overrides = new
    result.files = [result.conf_file] + files
    for name in PROBED:
        result.values[name] = _value(d, origins.get(name, "not set"), name)
    return result


def _evaluate(layers: list[LayerInfo], machine: str, statements: list[bbconf.Statement],
              overrides: list[str] | None):
    d = bbconf.Datastore({"MACHINE": machine}, overrides)
    origins: dict[str, str] = {}
    files: list[str] = []

    def run(sts: list[bbconf.Statement], depth: int) -> None:
        for st in sts:
            if st.kind in ("include", "require"):
                if depth >= MAX_DEPTH:
                    continue
                for path in d.expand(st.value).split():
                    found = _resolve(layers, st.filename, path)
                    if found is None:
                        if st.kind == "require":
                            raise ProbeError(f"{st.filename}:{st.line}: required file {path} "
                                             "not found in the layer stack")
                        continue
                    layer, lrel = found
                    disp = layer.display_path(lrel)
                    files.append(disp)
                    try:
                        sub = bbconf.parse(layer.read_text(lrel) or "", disp)
                    except bbconf.ConfSyntaxError as e:
                        raise ProbeError(str(e)) from None
                    run(sub, depth + 1)
                continue
            watched = st.kind == "assign" and st.var in PROBED and not st.flag
            before = d.get(st.var, expand_value=False) if watched else None
            d.apply(st)
            if watched and d.get(st.var, expand_value=False) != before:
                origins[st.var] = f"{st.filename}:{st.line}"

    run(statements, 0)
    return d, origins, files


def _resolve(layers: list[LayerInfo], from_display: str, path: str) -> tuple[LayerInfo, str] | None:
    """Where BitBake finds an include: beside the including file, then along BBPATH."""
    if "${" in path or path.startswith("/"):
        return None
    here = _owner(layers, from_display)
    if here is not None:
        layer, rel = here
        cand = posixpath.normpath(posixpath.join(posixpath.dirname(rel), path))
        if layer.read_text(cand) is not None:
            return layer, cand
    for layer in layers:
        if layer.read_text(path) is not None:
            return layer, path
    return None


def _value(d: bbconf.Datastore, origin: str, name: str) -> Probed:
    raw = d.get(name)
    if raw is None:
        return Probed(None, origin)
    try:
        value = " ".join(expand_inline(raw, d).split()) if "${@" in raw else " ".join(raw.split())
    except NotEvaluable:
        return Probed(" ".join(raw.split()), origin, computable=False)
    return Probed(value, origin)
