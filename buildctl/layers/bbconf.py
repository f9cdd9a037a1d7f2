"""BitBake configuration syntax: parse `.conf` text into statements and evaluate them.

Why not a library: BitBake's own parser (`bb.parse`, shipped by `bitbake-setup`) imports
modules that package does not ship (`hashserv`), reads files by path rather than text, and
is BitBake's private API; `oelint-parser` also reads by path, treats every file as a recipe
(injecting recipe defaults) and expands deferred `=` values at the wrong time. Pre-flight
checks read blobs from git and need line numbers, so this module is a small parser plus an
evaluator of BitBake's datastore rules (tested against the real `bb` datastore).

Supported: `=`, `?=`, `??=`, `:=`, `+=`, `=+`, `.=`, `=.`, `VAR:append`/`:prepend`/`:remove`
(optionally conditional, e.g. `VAR:append:rpi`), override variants `VAR:override`, flags
`VAR[flag]`, `export`, single/double quotes, `\\` continuations, comments, `${VAR}` expansion
(inline Python `${@...}` is kept verbatim), `include`/`require`/`include_all`, `inherit`,
`unset`, `addpylib`/`addfragments`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

__all__ = [
    "ConfSyntaxError",
    "Statement",
    "Datastore",
    "parse",
    "evaluate",
    "expand",
]

ASSIGN_OPS = ("=", "?=", "??=", ":=", "+=", "=+", ".=", "=.")
OPERATIONS = ("append", "prepend", "remove")
MAX_INCLUDE_DEPTH = 30

_NAME = r"[a-zA-Z0-9\-_+.${}/~:]+?"
_ASSIGN_RE = re.compile(
    r"""^(?P<export>export\s+)?
    (?P<key>[a-zA-Z0-9\-_+.${}/~:]+?)
    (?:\[(?P<flag>[a-zA-Z0-9\-_+.][a-zA-Z0-9\-_+.@/]*)\])?
    \s*(?P<op>\?\?=|\?=|:=|\+=|=\+|=\.|\.=|=)\s*
    (?P<quote>['"])(?P<value>.*)(?P=quote)\s*$""",
    re.X,
)
_DIRECTIVE_RE = re.compile(r"^(?P<kind>include_all|include|require|inherit|addpylib|addfragments)\s+(?P<arg>.+?)\s*$")
_EXPORT_RE = re.compile(r"^export\s+(?P<key>[a-zA-Z0-9\-_+.${}/~]+)\s*$")
_UNSET_RE = re.compile(
    r"^unset\s+(?P<key>[a-zA-Z0-9\-_+.${}/~]+)(?:\[(?P<flag>[a-zA-Z0-9\-_+.][a-zA-Z0-9\-_+.@]*)\])?\s*$"
)
# The operation keyword in a key: everything before it is the variable (which may itself carry
# an override, e.g. VAR:rpi:append), everything after it the condition (lower case only).
_OPERATION_RE = re.compile(r"^(?P<base>.*?):(?P<kw>append|prepend|remove)(?::(?P<cond>[^A-Z]*))?$")
_VARREF_RE = re.compile(r"\$\{([a-zA-Z0-9\-_+./~:]+)\}")
_NESTED_RE = re.compile(r"\$\{[^}]*\$\{")  # `${${X}}`: the inner reference forms the outer name
_OVERRIDE_RE = re.compile(r"^[a-z0-9]+")
_WS_SPLIT = re.compile(r"(\s)")


class ConfSyntaxError(ValueError):
    """A line BitBake would refuse; carries file and line for a Finding."""

    def __init__(self, filename: str, line: int, message: str):
        super().__init__(f"{filename}:{line}: {message}")
        self.filename = filename
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Statement:
    """One logical line of a configuration file.

    kind: "assign" | "include" | "require" | "include_all" | "inherit" | "export" | "unset" |
    "addpylib" | "addfragments". For assignments `var` is the variable name without override
    (`DEFAULT_TEST_SUITES` for `DEFAULT_TEST_SUITES:remove:rpi`), `override` the rest
    (`remove:rpi`), `key` the name as written. For directives `value` is the argument text.
    `line` is where the statement starts, `end_line` where its continuation ends.
    """

    kind: str
    var: str = ""
    op: str = ""
    value: str = ""
    override: str = ""
    flag: str = ""
    exported: bool = False
    filename: str = ""
    line: int = 0
    end_line: int = 0

    @property
    def key(self) -> str:
        return f"{self.var}:{self.override}" if self.override else self.var

    @property
    def operation(self) -> str:
        """"append", "prepend" or "remove" for `VAR:append...` keys, else ""."""
        m = _OPERATION_RE.match(self.key)
        return m.group("kw") if m else ""

    @property
    def location(self) -> str:
        return f"{self.filename}:{self.line}"


def _logical_lines(text: str, filename: str = "<string>") -> Iterable[tuple[int, int, str]]:
    """Yield (first line, last line, joined text) with `\\` continuations folded in."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i + 1
        s = lines[i].rstrip()
        i += 1
        while s.endswith("\\") and i < len(lines):
            nxt = lines[i].rstrip()
            if s.startswith("#") and not nxt.startswith("#"):
                # BitBake refuses this: is the next line meant as code or as comment?
                raise ConfSyntaxError(filename, start, "comment ends with \\ but the next line is not a comment")
            s = s[:-1] + nxt
            i += 1
        if s.endswith("\\"):  # continuation at end of file
            s = s[:-1]
        yield start, i, s


def _split_key(key: str) -> tuple[str, str]:
    var, _, override = key.partition(":")
    return var, override


RECIPE_SUFFIXES = (".bb", ".bbappend", ".bbclass", ".inc")
_FUNC_START_RE = re.compile(r"^(?:(?:fakeroot|python)\s+)*(?:[\w.+${}:/-]+\s*)?\(\s*\)\s*\{")
_RECIPE_DIRECTIVE_RE = re.compile(
    r"^(?P<kind>addtask|deltask|addhandler|EXPORT_FUNCTIONS|inherit_defer)\b\s*(?P<arg>.*?)\s*$"
)


def parse(text: str, filename: str = "<string>", *, recipe_syntax: bool | None = None) -> list[Statement]:
    """Parse configuration text into statements; raise ConfSyntaxError on a line BitBake rejects.

    recipe_syntax (default: by file name, .bb/.bbappend/.bbclass/.inc) also accepts what BitBake
    allows there: `def` and shell/python function blocks and task directives. They are recorded
    as kind "function"/"addtask"/... statements and never evaluated.
    """
    if recipe_syntax is None:
        recipe_syntax = filename.endswith(RECIPE_SUFFIXES)
    out: list[Statement] = []
    lines = list(_logical_lines(text, filename))
    i = 0
    while i < len(lines):
        start, end, s = lines[i]
        i += 1
        stripped = s.strip()
        if not stripped or s.startswith("#"):
            continue
        if recipe_syntax:
            if stripped.startswith("def ") and not s[0].isspace():
                # A Python function: its body is every following indented (or blank) line.
                while i < len(lines) and (not lines[i][2].strip() or lines[i][2][0].isspace()):
                    end = lines[i][1]
                    i += 1
                out.append(Statement(kind="function", value=stripped, filename=filename, line=start, end_line=end))
                continue
            if _FUNC_START_RE.match(stripped) and not stripped.rstrip().endswith("}"):
                while i < len(lines) and lines[i][2].rstrip() != "}":
                    i += 1
                if i < len(lines):
                    end = lines[i][1]
                    i += 1
                out.append(Statement(kind="function", value=stripped, filename=filename, line=start, end_line=end))
                continue
            if _FUNC_START_RE.match(stripped):
                out.append(Statement(kind="function", value=stripped, filename=filename, line=start, end_line=end))
                continue
            m = _RECIPE_DIRECTIVE_RE.match(stripped)
            if m:
                out.append(Statement(kind=m.group("kind"), value=m.group("arg"), filename=filename, line=start, end_line=end))
                continue
        if s[0].isspace():
            # BitBake only accepts statements (and comments) starting in the first column.
            raise ConfSyntaxError(filename, start, f"unparsed line: {stripped[:80]} (indented)")
        m = _ASSIGN_RE.match(stripped)
        if m:
            value = m.group("value")
            q = m.group("quote")
            if value.count(q) == 1:
                # BitBake's one odd case: exactly three quote characters (`A = "a"b"`) is refused;
                # other embedded quotes (`"${@f("x")}"`) are part of the value.
                raise ConfSyntaxError(filename, start, f"unparsed line: {stripped[:80]}")
            var, override = _split_key(m.group("key"))
            out.append(
                Statement(
                    kind="assign",
                    var=var,
                    op=m.group("op"),
                    value=value,
                    override=override,
                    flag=m.group("flag") or "",
                    exported=bool(m.group("export")),
                    filename=filename,
                    line=start,
                    end_line=end,
                )
            )
            continue
        m = _DIRECTIVE_RE.match(stripped)
        if m:
            out.append(Statement(kind=m.group("kind"), value=m.group("arg"), filename=filename, line=start, end_line=end))
            continue
        m = _EXPORT_RE.match(stripped)
        if m:
            var, override = _split_key(m.group("key"))
            out.append(Statement(kind="export", var=var, override=override, exported=True,
                                 filename=filename, line=start, end_line=end))
            continue
        m = _UNSET_RE.match(stripped)
        if m:
            var, override = _split_key(m.group("key"))
            out.append(Statement(kind="unset", var=var, override=override, flag=m.group("flag") or "",
                                 filename=filename, line=start, end_line=end))
            continue
        raise ConfSyntaxError(filename, start, f"unparsed line: {stripped[:80]}")
    return out


@dataclass
class _Var:
    content: str | None = None
    weak: str | None = None
    flags: dict[str, str] = field(default_factory=dict)
    weak_flags: dict[str, str] = field(default_factory=dict)
    # (value, condition) in statement order, condition "" = unconditional
    ops: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: {k: [] for k in OPERATIONS})


class Datastore:
    """A minimal BitBake datastore: deferred values, weak defaults, overrides, append/prepend/remove.

    `overrides` is the active override list in priority order (later wins), as OVERRIDES would be.
    """

    def __init__(self, initial: Mapping[str, str] | None = None, overrides: Iterable[str] | None = None,
                 inline: Callable[[str, "Datastore"], str | None] | None = None):
        # inline(code, d): the value of an inline Python expression `${@code}` (after `${VAR}`
        # expansion), or None to keep it verbatim (the default for every expression).
        self.inline = inline
        self._vars: dict[str, _Var] = {}
        # base var -> list of (full variant name, override string) e.g. ("A:rpi", "rpi")
        self._variants: dict[str, list[tuple[str, str]]] = {}
        self._fixed_overrides = None if overrides is None else list(overrides)
        self._overrides_cache: list[str] | None = None
        # Variables OVERRIDES was computed from: only writing one of them invalidates it.
        self._overrides_deps: set[str] | None = None
        self._reads: set[str] | None = None
        for k, v in (initial or {}).items():
            self.set(k, v)

    @property
    def overrides(self) -> list[str]:
        """Active overrides: the fixed list given, else the OVERRIDES variable (as BitBake)."""
        if self._fixed_overrides is not None:
            return self._fixed_overrides
        if self._overrides_cache is None:
            # OVERRIDES may itself depend on overrides: settle it the way BitBake does.
            self._overrides_cache = []
            outer, self._reads = self._reads, set()
            try:
                for _ in range(5):
                    val = self.get("OVERRIDES") or ""
                    new = [o for o in val.split(":") if o]
                    if new == self._overrides_cache:
                        break
                    self._overrides_cache = new
                self._overrides_deps = self._reads
            finally:
                self._reads = outer if outer is None else outer | self._reads
        return self._overrides_cache

    def _invalidate(self, name: str) -> None:
        if self._overrides_deps is None or name.split(":", 1)[0] in self._overrides_deps:
            self._overrides_cache = None
            self._overrides_deps = None

    # -- writing -----------------------------------------------------------------------
    def _var(self, name: str) -> _Var:
        self._invalidate(name)
        v = self._vars.get(name)
        if v is None:
            v = self._vars[name] = _Var()
            self._note_variant(name)
        return v

    def _note_variant(self, name: str) -> None:
        # "A:b:c" is a variant of "A:b" (override "c") and of "A" (override "b:c")
        idx = name.rfind(":")
        while idx > 0:
            base, ov = name[:idx], name[idx + 1 :]
            if not _OVERRIDE_RE.match(name[idx + 1 :].split(":")[0]):
                break
            ov = name[len(base) + 1 :]
            lst = self._variants.setdefault(base, [])
            if (name, ov) not in lst:
                lst.append((name, ov))
            idx = base.rfind(":")

    def set(self, name: str, value: str) -> None:
        m = _OPERATION_RE.match(name)
        if m:
            self._var(m.group("base")).ops[m.group("kw")].append((value, m.group("cond") or ""))
            return
        self._var(name).content = value

    def raw(self, name: str, weak: bool = False) -> str | None:
        """The stored value without overrides, appends or expansion (what `+=` builds on)."""
        v = self._vars.get(name)
        if v is None:
            return None
        if v.content is None and weak:
            return v.weak
        return v.content

    def set_weak(self, name: str, value: str) -> None:
        self._var(name).weak = value

    def set_flag(self, name: str, flag: str, value: str, weak: bool = False) -> None:
        v = self._var(name)
        (v.weak_flags if weak else v.flags)[flag] = value

    def get_flag(self, name: str, flag: str, expand_value: bool = True) -> str | None:
        v = self._vars.get(name)
        if v is None:
            return None
        val = v.flags.get(flag, v.weak_flags.get(flag))
        return self.expand(val) if (val is not None and expand_value) else val

    def unset(self, name: str, flag: str = "") -> None:
        self._invalidate(name)
        if flag:
            v = self._vars.get(name)
            if v:
                v.flags.pop(flag, None)
            return
        self._vars.pop(name, None)

    # -- reading -----------------------------------------------------------------------
    def _active(self, cond: str) -> bool:
        return all(c in self.overrides for c in cond.split(":")) if cond else True

    def _unexpanded(self, name: str) -> tuple[str | None, list[str]]:
        """Value with override selection, appends and prepends; plus the removes to apply."""
        value: str | None = None
        removes: list[str] = []
        active: dict[str, str] = {}
        ovset = set(self.overrides)
        for full, ov in self._variants.get(name, []):
            if full in self._vars and set(ov.split(":")) <= ovset:
                active[ov] = full
        if active:
            # The variant whose override comes latest in OVERRIDES wins; compound overrides
            # ("a:b") are peeled from the right the way BitBake does.
            match = None
            changed = True
            while changed:
                changed = False
                for o in self.overrides:
                    for ov in list(active):
                        if ov.endswith(":" + o):
                            active[ov[: -len(o) - 1]] = active.pop(ov)
                            changed = True
                        elif ov == o:
                            match = active.pop(ov)
            if match is not None:
                value, removes = self._unexpanded(match)
        var = self._vars.get(name)
        if var is not None:
            if value is None:
                value = var.content if var.content is not None else var.weak
            for r, cond in var.ops["append"]:
                if self._active(cond):
                    value = (value or "") + r
            for r, cond in var.ops["prepend"]:
                if self._active(cond):
                    value = r + (value or "")
            removes = removes + [r for r, cond in var.ops["remove"] if self._active(cond)]
        return value, removes

    def get(self, name: str, expand_value: bool = True) -> str | None:
        return self._get(name, expand_value, ())

    def _get(self, name: str, expand_value: bool, seen: tuple[str, ...]) -> str | None:
        if self._reads is not None:
            self._reads.add(name.split(":", 1)[0])
        value, removes = self._unexpanded(name)
        if value is None:
            return None
        if expand_value:
            value = self._expand(value, seen + (name,))
        if value and removes:
            drop: set[str] = set()
            for r in removes:
                drop.update(self._expand(r, seen + (name,)).split())
            value = "".join(w for w in _WS_SPLIT.split(value) if w not in drop)
        return value

    def expand(self, value: str) -> str:
        return self._expand(value, ())

    def _expand(self, value: str, seen: tuple[str, ...]) -> str:
        if "${" not in value:
            return value

        recursed = False

        def sub(m: re.Match[str]) -> str:
            nonlocal recursed
            ref = m.group(1)
            if ref in seen:  # BitBake stops with "references itself"; keep it literal
                recursed = True
                return m.group(0)
            got = self._get(ref, True, seen)
            return m.group(0) if got is None else got

        # Expand again while a pass formed new references (`${${X}}`), like BitBake; a
        # self-reference ends it (BitBake raises there, we keep the text).
        nested = _NESTED_RE.search(value) is not None
        for _ in range(20):
            new = _VARREF_RE.sub(sub, value)
            if new == value or recursed or not nested:
                value = new
                break
            value = new
        if self.inline is not None and "${@" in value:
            value = self._expand_inline(value)
        return value

    def _expand_inline(self, value: str) -> str:
        """Replace each `${@...}` (braces balanced) the inline callback can evaluate."""
        out: list[str] = []
        pos = 0
        while True:
            start = value.find("${@", pos)
            if start < 0:
                out.append(value[pos:])
                return "".join(out)
            depth, i = 0, start + 1
            while i < len(value):
                if value[i] == "{":
                    depth += 1
                elif value[i] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            if i >= len(value):  # unbalanced: BitBake keeps such text as it is
                out.append(value[pos:])
                return "".join(out)
            got = self.inline(value[start + 3 : i], self)
            out.append(value[pos:start])
            out.append(value[start : i + 1] if got is None else got)
            pos = i + 1

    def keys(self) -> list[str]:
        names = []
        for name, v in self._vars.items():
            if v.content is not None or v.weak is not None or any(v.ops[k] for k in ("append", "prepend")):
                names.append(name)
        names.extend(self._variants)  # a base that only has override variants (`M:rpi`)
        return list(dict.fromkeys(names))

    def as_dict(self) -> dict[str, str]:
        out = {}
        for name in self.keys():
            val = self.get(name)
            if val is not None:
                out[name] = val
        return out

    # -- statements --------------------------------------------------------------------
    def apply(
        self,
        st: Statement,
        resolver: Callable[[Statement, "Datastore"], list[Statement] | None] | None = None,
        _depth: int = 0,
    ) -> None:
        if st.kind in ("include", "require", "include_all"):
            # Includes nest at most MAX_INCLUDE_DEPTH deep (a file including itself stops here).
            if resolver is not None and _depth < MAX_INCLUDE_DEPTH:
                for sub in resolver(st, self) or []:
                    self.apply(sub, resolver, _depth + 1)
            return
        if st.kind == "unset":
            self.unset(self._key(st), st.flag)
            return
        if st.kind == "export":
            self.set_flag(self._key(st), "export", "1")
            return
        if st.kind != "assign":
            return
        key = self._key(st)
        if st.exported:
            self.set_flag(key, "export", "1")
        op, value = st.op, st.value
        if st.flag:
            if op == "??=":
                self.set_flag(key, st.flag, value, weak=True)
                return
            cur = (self._vars[key].flags.get(st.flag) if key in self._vars else None)
            new = _combine(op, cur, value, self)
            if new is not None:
                self.set_flag(key, st.flag, new)
            return
        if op == "??=":
            self.set_weak(key, value)
            return
        new = _combine(op, self.raw(key), value, self)
        if new is not None:
            self.set(key, new)

    def _key(self, st: Statement) -> str:
        key = st.key
        return self.expand(key) if "${" in key else key


def _combine(op: str, cur: str | None, value: str, d: Datastore) -> str | None:
    if op == "=":
        return value
    if op == "?=":
        return value if cur is None else None
    if op == ":=":
        return d.expand(value)
    if op == "+=":
        return f"{cur or ''} {value}"
    if op == "=+":
        return f"{value} {cur or ''}"
    if op == ".=":
        return f"{cur or ''}{value}"
    if op == "=.":
        return f"{value}{cur or ''}"
    raise ValueError(f"unknown operator {op!r}")


def evaluate(
    statements: Iterable[Statement],
    initial: Mapping[str, str] | None = None,
    *,
    overrides: Iterable[str] | None = None,
    resolver: Callable[[Statement, Datastore], list[Statement] | None] | None = None,
) -> dict[str, str]:
    """Run statements in order and return every variable's final, expanded value.

    `initial` seeds the datastore (e.g. {"LAYERDIR": "/path"}); `overrides` are the active
    overrides (OVERRIDES order; default: taken from the OVERRIDES variable); `resolver(statement, datastore)` may return the statements of
    an included file, otherwise include/require lines are recorded but not followed.
    """
    return datastore(statements, initial, overrides=overrides, resolver=resolver).as_dict()


def datastore(
    statements: Iterable[Statement],
    initial: Mapping[str, str] | None = None,
    *,
    overrides: Iterable[str] | None = None,
    resolver: Callable[[Statement, Datastore], list[Statement] | None] | None = None,
) -> Datastore:
    """Like evaluate() but returns the Datastore (for flags, unexpanded values, later lookups)."""
    d = Datastore(initial, overrides)
    for st in statements:
        d.apply(st, resolver)
    return d


def expand(value: str, variables: Mapping[str, str]) -> str:
    """Expand `${VAR}` references in value against plain values (unknown ones stay literal)."""
    return Datastore(variables).expand(value)
