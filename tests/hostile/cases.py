"""Hostile inputs for every verb: each must end in one line, with the right exit code, fast,
without a traceback and without writing anything (the table is data; test_hostile.py runs it).

``argv`` runs in a copy of the world (tests/hostile/world.py): products/demo.yml (boards
qemux86-64 and qemuarm64), machines/, repos/poky (git), kas/board.yml, signed.mender,
unsigned.mender, rootfs.ext4 (not a real filesystem), keys/{priv,pub}.pem, ext4.mender and
ext4-signed.mender (a real ext4 payload: /etc/hostname, /etc/empty/), bundle-1.0 and
bundle-2.0 (release bundles of board qemux86-64, as `release delta` reads them). ``files`` are written into the copy first,
``prepare(d)`` may change it further, ``{d}`` in argv is the copy's absolute path.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

USAGE, PROBLEMS = 2, 1


@dataclass
class Case:
    id: str
    argv: list[str]
    rc: int
    msg: str  # regular expression the one error line must contain (re.search)
    files: dict[str, str | bytes] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 3.0  # seconds; the contract says "within a second" on an idle machine
    stream: str = "stderr"  # where the message is printed


CASES: list[Case] = []


def case(id, argv, rc, msg, **kw) -> None:
    assert id not in {c.id for c in CASES}, id
    CASES.append(Case(id, list(argv), rc, msg, **kw))


# -- input generators -----------------------------------------------------------------------
def edit(rel: str, fn: Callable[[dict], None]) -> Callable[[Path], None]:
    """prepare: load a YAML file of the world, let fn change it, write it back."""
    def prepare(d: Path) -> None:
        p = d / rel
        data = yaml.safe_load(p.read_text())
        fn(data)
        p.write_text(yaml.safe_dump(data, sort_keys=False))
    return prepare


def setter(**changes) -> Callable[[dict], None]:
    def fn(data: dict) -> None:
        for dotted, value in changes.items():
            *parents, last = dotted.split("__")
            cur = data
            for k in parents:
                cur = cur.setdefault(k, {})
            if value is _DEL:
                cur.pop(last, None)
            else:
                cur[last] = value
    return fn


_DEL = object()


def alias_bomb(levels: int = 9, width: int = 10) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * width) + "]")
    return "\n".join(lines) + "\nname: demo\n"


def deep_seq(n: int = 5000) -> str:
    return "name: " + "[" * n + "]" * n + "\n"


def deep_map(n: int = 300) -> str:
    return "".join("  " * i + f"k{i}:\n" for i in range(n)) + "  " * n + "v\n"


BINARY = bytes(range(256)) * 64
LATIN1 = "name: caf\xe9\n".encode("latin-1")
RECURSIVE = "name: &n [a, *n]\n"
CYCLIC_MAP = "repos: &r\n  x: *r\n"
BIG_INT = "name: demo\nseries: " + "9" * 50000 + "\n"
BAD_DATE = "name: demo\nseries: 2024-13-45\n"

MANIFEST_BOMBS = {  # name: (file content, what follows the file name in the message)
    "binary": (BINARY, r": binary file"),
    "latin1": (LATIN1, r": not UTF-8"),
    "empty": ("", r": file is empty"),
    "comment-only": ("# nothing\n", r": file is empty"),
    "alias-bomb": (alias_bomb(), r":\d+: document expands to more than"),
    "recursive-alias": (RECURSIVE, r":1: YAML alias refers to a value that contains it"),
    "cyclic-map": (CYCLIC_MAP, r":1: YAML alias refers to a value that contains it"),
    "deep-seq": (deep_seq(), r":1: nested more than 64 levels"),
    "deep-map": (deep_map(), r":\d+: nested more than 64 levels"),
    "big-int": (BIG_INT, r":2: series: value cannot be read"),
    "bad-date": (BAD_DATE, r":2: series: value cannot be read"),
    "python-tag": ("series: x\nname: !!python/object/apply:os.system [true]\n",
                   r":2: name: YAML tag .*python/object.* is not allowed"),
    "merge-key": ("base: &b {name: demo}\nother:\n  <<: *b\n", r":3: YAML merge keys"),
    "dup-key": ("name: a\nname: b\n", r":2: name: duplicate key"),
    "tab-indent": ("name: demo\n\tseries: x\n", r":2: invalid YAML"),
    "unclosed": ("name: [demo\n", r":2: invalid YAML"),
    "top-list": ("- a\n- b\n", r": (a product manifest is a mapping|not a lock file)"),
    "top-scalar": ("just text\n", r": a product manifest is a mapping of fields"),
    "nul-in-text": ("name: de\0mo\n", r": binary file"),
    "control-char": ("name: de\x07mo\n", r": invalid YAML: .*special characters"),
}

# -- CLI flags (usage errors: exit 2, argparse's one line) ----------------------------------
case("flags-no-verb", [], USAGE, r"required: COMMAND|arguments are required")
case("flags-unknown-verb", ["frobnicate"], USAGE, r"invalid choice: 'frobnicate'")
case("flags-unknown-option", ["validate", "products/demo.yml", "--frobnicate"], USAGE,
     r"unrecognized arguments: --frobnicate")
case("flags-validate-no-product", ["validate"], USAGE, r"required: product")
case("flags-compose-no-out", ["compose", "products/demo.yml"], USAGE, r"--out is required")
case("flags-board-no-value", ["validate", "products/demo.yml", "--board"], USAGE,
     r"--board.*expected one argument")
case("flags-build-jobs-text", ["build", "products/demo.yml", "--jobs", "many"], USAGE,
     r"--jobs: invalid int value")
case("flags-build-jobs-zero", ["build", "products/demo.yml", "--jobs", "0"], USAGE,
     r"--jobs: must be at least 1")
case("flags-build-cpus-zero", ["build", "products/demo.yml", "--cpus", "0"], USAGE,
     r"--cpus: must be at least 1")
case("flags-build-modes", ["build", "products/demo.yml", "--dry-run", "--parse-only"], USAGE,
     r"not allowed with argument")
case("flags-build-runtime", ["build", "products/demo.yml", "--runtime", "lxc"], USAGE,
     r"--runtime: invalid choice")
case("flags-lock-update-check", ["lock", "products/demo.yml", "--update", "--check"], USAGE,
     r"not allowed with argument")
case("flags-doctor-runtime", ["doctor", "--runtime", "vmware"], USAGE, r"invalid choice")
case("flags-container-profile", ["container", "tag", "--profile", "huge"], USAGE,
     r"invalid choice: 'huge'")
case("flags-container-no-action", ["container"], USAGE, r"required: ACTION")
case("flags-artifact-no-action", ["artifact"], USAGE, r"required: ACTION")
case("flags-write-no-file", ["artifact", "write", "rootfs-image", "-n", "x", "-t", "d"], USAGE,
     r"required: --file")
case("flags-write-provides-no-colon", ["artifact", "write", "rootfs-image", "-f", "rootfs.ext4",
     "-n", "x", "-t", "d", "-p", "novalue", "-o", "out.mender"], USAGE, r"is not KEY:VALUE")
case("flags-write-compression", ["artifact", "write", "rootfs-image", "-f", "rootfs.ext4",
     "-n", "x", "-t", "d", "--compression", "brotli", "-o", "out.mender"], USAGE,
     r"--compression")
case("flags-write-version-2", ["artifact", "write", "rootfs-image", "-f", "rootfs.ext4",
     "-n", "x", "-t", "d", "-v", "2", "-o", "out.mender"], USAGE, r"invalid choice: 2")
case("flags-verify-max-negative", ["artifact", "verify", "signed.mender",
     "--max-payload-bytes", "-5"], USAGE, r"--max-payload-bytes")
case("flags-import-no-files", ["import-kas", "--product", "x"], USAGE, r"required: FILE")
case("flags-series-empty", ["validate", "products/demo.yml", "--series", ""], USAGE,
     r"--series: '' is not a release series name")
case("flags-series-unknown", ["validate", "products/demo.yml", "--series", "kirkstone\nx"],
     USAGE, r"--series: 'kirkstone\\nx' is not a release series name")

# -- manifests: every bomb through validate, and a spread of them through the other verbs ----
for name, (text, msg) in MANIFEST_BOMBS.items():
    case(f"product-{name}-validate", ["validate", "evil.yml"], USAGE, r"evil\.yml" + msg,
         files={"evil.yml": text})
for name in ("binary", "alias-bomb", "recursive-alias", "deep-seq", "big-int"):
    text, msg = MANIFEST_BOMBS[name]
    case(f"product-{name}-compose", ["compose", "evil.yml", "--out", "kasout"], USAGE,
         r"evil\.yml" + msg, files={"evil.yml": text})
    case(f"product-{name}-build", ["build", "evil.yml", "--dry-run"], USAGE,
         r"evil\.yml" + msg, files={"evil.yml": text})
    case(f"product-{name}-lock", ["lock", "evil.yml", "--offline"], USAGE,
         r"evil\.yml" + msg, files={"evil.yml": text})
    case(f"product-{name}-doctor", ["doctor", "--product", "evil.yml"], USAGE,
         r"evil\.yml" + msg, files={"evil.yml": text})

case("product-missing", ["validate", "nope.yml"], USAGE, r"nope\.yml: file not found")
case("product-is-dir", ["validate", "products"], USAGE, r"products: is a directory")
case("product-dev-zero", ["validate", "/dev/zero"], USAGE, r"/dev/zero: (larger than|binary)")
case("product-huge", ["validate", "huge.yml"], USAGE, r"huge\.yml: larger than",
     files={"huge.yml": "name: demo\n" + "# padding\n" * (2 << 20)})
case("product-unknown-field", ["validate", "products/demo.yml"], USAGE,
     r"demo\.yml:\d+: .*colour", prepare=edit("products/demo.yml", setter(colour="blue")))
case("product-name-traversal", ["compose", "products/demo.yml", "--out", "kasout"], USAGE,
     r"demo\.yml:1: name", prepare=edit("products/demo.yml", setter(name="../../etc")))
case("product-name-newline", ["compose", "products/demo.yml", "--out", "kasout"], USAGE,
     r"demo\.yml:1: name", prepare=edit("products/demo.yml", setter(name="demo\nevil")))
case("product-board-missing", ["compose", "products/demo.yml", "--out", "kasout"], USAGE,
     r"nosuchboard", prepare=edit("products/demo.yml",
                                  setter(boards=["qemux86-64", "nosuchboard"])))
case("product-board-traversal", ["validate", "products/demo.yml"], USAGE,
     r"demo\.yml:\d+: boards", prepare=edit("products/demo.yml", setter(boards=["../../x"])))
case("product-select-unknown-board", ["compose", "products/demo.yml", "--out", "kasout",
     "--board", "zx81"], USAGE, r"zx81")
case("product-select-unknown-variant", ["compose", "products/demo.yml", "--out", "kasout",
     "--variant", "turbo"], USAGE, r"turbo")
case("product-artifact-name-format-spec", ["compose", "products/demo.yml", "--out", "kasout"],
     USAGE, r"demo\.yml:\d+: release\.artifact_name",
     prepare=edit("products/demo.yml", setter(release__artifact_name="{product:>999999999}")))
case("product-artifact-name-attr", ["compose", "products/demo.yml", "--out", "kasout"],
     USAGE, r"demo\.yml:\d+: release\.artifact_name",
     prepare=edit("products/demo.yml", setter(release__artifact_name="{product.__class__}")))
case("product-artifact-name-unknown", ["compose", "products/demo.yml", "--out", "kasout"],
     USAGE, r"demo\.yml:\d+: release\.artifact_name",
     prepare=edit("products/demo.yml", setter(release__artifact_name="{product}-{secret}")))
case("product-artifact-name-brace", ["validate", "products/demo.yml"], USAGE,
     r"demo\.yml:\d+: release\.artifact_name",
     prepare=edit("products/demo.yml", setter(release__artifact_name="{product")))
case("product-version-newline", ["compose", "products/demo.yml", "--out", "kasout"], USAGE,
     r"demo\.yml:\d+: release\.version",
     prepare=edit("products/demo.yml", setter(release__version="1.0\nINHERIT += \"evil\"")))
case("product-local-conf-newline", ["compose", "products/demo.yml", "--out", "kasout"], USAGE,
     r"demo\.yml:\d+: local_conf",
     prepare=edit("products/demo.yml", setter(local_conf={"FOO": "a\nINHERIT += \"evil\""})))
case("product-local-conf-bad-name", ["compose", "products/demo.yml", "--out", "kasout"], USAGE,
     r"demo\.yml:\d+: local_conf",
     prepare=edit("products/demo.yml", setter(local_conf={"FOO = \"x\"\nBAR": "y"})))
case("product-distro-newline", ["validate", "products/demo.yml"], USAGE,
     r"demo\.yml:\d+: distro", prepare=edit("products/demo.yml", setter(distro="poky\nX=1")))
case("product-commit-not-hex", ["validate", "products/demo.yml"], USAGE,
     r"demo\.yml:\d+: repos\.poky\.refs\.scarthgap\.commit",
     prepare=edit("products/demo.yml", lambda d: d["repos"]["poky"]["refs"]["scarthgap"]
                  .update(commit="not-a-commit")))
case("product-signing-key-literal", ["validate", "products/demo.yml"], USAGE,
     r"demo\.yml:\d+: mender\.signing_key",
     prepare=edit("products/demo.yml", setter(mender={"signing_key": "-----BEGIN KEY-----"})))
case("product-boards-dir-file", ["validate", "products/demo.yml"], USAGE,
     r"machines|boards_dir|qemux86-64",
     prepare=edit("products/demo.yml", setter(boards_dir="../rootfs.ext4")))
case("product-series-wrong-type", ["validate", "products/demo.yml"], USAGE,
     r"demo\.yml:\d+: series", prepare=edit("products/demo.yml", setter(series=["a", "b"])))
case("product-variants-list", ["validate", "products/demo.yml"], USAGE,
     r"demo\.yml:\d+: variants", prepare=edit("products/demo.yml", setter(variants=["x"])))

# machine (board) files
for name in ("binary", "alias-bomb", "recursive-alias", "deep-map", "dup-key"):
    text, msg = MANIFEST_BOMBS[name]
    case(f"machine-{name}-validate", ["validate", "products/demo.yml"], USAGE,
         r"qemuarm64\.yml" + msg, files={"machines/qemuarm64.yml": text})
case("machine-storage-device-newline", ["compose", "products/demo.yml", "--out", "kasout"], USAGE,
     r"qemuarm64\.yml:\d+: mender\.storage\.device",
     prepare=edit("machines/qemuarm64.yml",
                  lambda d: d["mender"]["storage"].update(device="/dev/sda\nX = \"1\"")))
case("machine-machine-newline", ["compose", "products/demo.yml", "--out", "kasout"], USAGE,
     r"qemuarm64\.yml:\d+: machine",
     prepare=edit("machines/qemuarm64.yml", setter(machine="qemuarm64\nINHERIT += \"x\"")))

# -- lock files --------------------------------------------------------------------------------
for name in ("binary", "alias-bomb", "recursive-alias", "deep-seq", "top-list"):
    text, msg = MANIFEST_BOMBS[name]
    case(f"lock-{name}-compose", ["compose", "products/demo.yml", "--out", "kasout",
         "--lock", "evil.lock.yml"], USAGE, r"evil\.lock\.yml" + msg,
         files={"evil.lock.yml": text})
    case(f"lock-{name}-check", ["lock", "products/demo.yml", "--check", "--offline",
         "--lock", "evil.lock.yml"], USAGE, r"evil\.lock\.yml" + msg,
         files={"evil.lock.yml": text})
case("lock-missing", ["compose", "products/demo.yml", "--out", "kasout", "--lock", "no.lock.yml"],
     USAGE, r"no\.lock\.yml: lock file not found")
case("lock-is-dir", ["validate", "products/demo.yml", "--lock", "keys"], USAGE,
     r"keys: is a directory")
case("lock-bad-commit", ["compose", "products/demo.yml", "--out", "kasout", "--lock", "x.lock.yml"],
     USAGE, r"x\.lock\.yml:\d+: .*commit",
     files={"x.lock.yml": "header: {version: 14}\noverrides:\n  repos:\n"
                          "    poky: {commit: \"zz; rm -rf /\"}\n"})
case("lock-unknown-repo-shape", ["compose", "products/demo.yml", "--out", "kasout",
     "--lock", "x.lock.yml"], USAGE, r"x\.lock\.yml:\d+",
     files={"x.lock.yml": "header: {version: 14}\noverrides:\n  repos: [1, 2]\n"})

# -- compose output paths: refused before anything is written --------------------------------
case("out-is-file", ["compose", "products/demo.yml", "--out", "rootfs.ext4"], USAGE,
     r"rootfs\.ext4: exists and is not a directory")
case("out-under-file", ["compose", "products/demo.yml", "--out", "rootfs.ext4/sub"], USAGE,
     r"rootfs\.ext4/sub.*(Not a directory|not a directory)")
case("out-dev-null", ["compose", "products/demo.yml", "--out", "/dev/null"], USAGE,
     r"/dev/null")
case("out-proc", ["compose", "products/demo.yml", "--out", "/proc/buildctl-out"], USAGE,
     r"/proc/buildctl-out")
case("out-symlink-loop", ["compose", "products/demo.yml", "--out", "loop/kas"], USAGE,
     r"loop/kas: Too many levels of symbolic links", prepare=lambda d: (d / "loop").symlink_to("loop"))
case("out-empty", ["compose", "products/demo.yml", "--out", ""], USAGE, r"--out: empty path")
case("out-second-board-fails-nothing-written", ["compose", "products/demo.yml", "--out", "kasout"],
     USAGE, r"qemuarm64\.yml:\d+: repos\.poky: repo 'poky' is also a core repo",
     prepare=edit("machines/qemuarm64.yml", setter(repos={"poky": {
         "url": "file:///elsewhere/poky", "layers": ["meta"],
         "refs": {"scarthgap": {"branch": "scarthgap", "commit": "1" * 40}}}})))
case("out-existing-files-untouched", ["compose", "products/demo.yml", "--out", "kasout"], USAGE,
     r"boards\[1\]: no board manifest .*zx81\.yml",
     files={"kasout/qemux86-64.yml": "# the user's earlier output\n"},
     prepare=edit("products/demo.yml", setter(boards=["qemux86-64", "zx81"])))
case("product-deep-seq-255", ["validate", "evil.yml"], USAGE,
     r"evil\.yml:1: nested more than 64 levels", files={"evil.yml": deep_seq(255)})
case("build-out-is-file", ["build", "products/demo.yml", "--dry-run", "--out", "rootfs.ext4"],
     USAGE, r"rootfs\.ext4")
case("build-bad-board-no-out", ["build", "products/demo.yml", "--dry-run", "--board", "zx81"],
     USAGE, r"zx81")
case("build-bad-variant-no-out", ["build", "products/demo.yml", "--dry-run", "--variant", "x"],
     USAGE, r"variant")
case("build-bad-lock-no-out", ["build", "products/demo.yml", "--dry-run", "--lock", "no.lock"],
     USAGE, r"no\.lock")
case("build-missing", ["build", "nope.yml"], USAGE, r"nope\.yml")
case("build-kas-binary", ["build", "kas/evil.yml", "--dry-run"], USAGE, r"kas/evil\.yml",
     files={"kas/evil.yml": BINARY})
case("build-kas-alias-bomb", ["build", "kas/evil.yml", "--dry-run"], USAGE, r"kas/evil\.yml",
     files={"kas/evil.yml": "header: {version: 14}\nrepos: {}\n" + alias_bomb()})
case("build-missing-signing-key", ["build", "products/demo.yml"], USAGE,
     r"signing_key|nokey\.pem",
     prepare=edit("products/demo.yml", setter(mender={"signing_key": "file:../nokey.pem"})))

# -- import-kas ----------------------------------------------------------------------------------
KAS_HEAD = "header:\n  version: 14\n"
case("kas-binary", ["import-kas", "kas/evil.yml", "--out", "imp"], USAGE, r"kas/evil\.yml",
     files={"kas/evil.yml": BINARY})
case("kas-missing", ["import-kas", "kas/none.yml", "--out", "imp"], USAGE, r"kas/none\.yml")
case("kas-is-dir", ["import-kas", "kas", "--out", "imp"], USAGE, r"kas: is a directory")
case("kas-alias-bomb", ["import-kas", "kas/evil.yml", "--out", "imp"], USAGE, r"kas/evil\.yml",
     files={"kas/evil.yml": KAS_HEAD + alias_bomb()})
case("kas-recursive-alias", ["import-kas", "kas/evil.yml", "--out", "imp"], USAGE,
     r"kas/evil\.yml", files={"kas/evil.yml": KAS_HEAD + "repos: &r\n  x: *r\n"})
case("kas-deep", ["import-kas", "kas/evil.yml", "--out", "imp"], USAGE, r"kas/evil\.yml",
     files={"kas/evil.yml": KAS_HEAD + "local_conf_header: " + "[" * 3000 + "]" * 3000 + "\n"})
case("kas-include-self", ["import-kas", "kas/a.yml", "--out", "imp"], USAGE,
     r"kas/a\.yml.*(cycle|includes itself|recursive)",
     files={"kas/a.yml": KAS_HEAD + "  includes: [a.yml]\nmachine: qemux86-64\n"})
case("kas-include-cycle", ["import-kas", "kas/a.yml", "--out", "imp"], USAGE,
     r"(cycle|recursive)",
     files={"kas/a.yml": KAS_HEAD + "  includes: [b.yml]\nmachine: qemux86-64\n",
            "kas/b.yml": KAS_HEAD + "  includes: [a.yml]\n"})
case("kas-include-missing", ["import-kas", "kas/a.yml", "--out", "imp"], USAGE,
     r"include not found|nothere\.yml",
     files={"kas/a.yml": KAS_HEAD + "  includes: [nothere.yml]\nmachine: qemux86-64\n"})
case("kas-header-version-99", ["import-kas", "kas/a.yml", "--out", "imp"], USAGE,
     r"kas/a\.yml:2: header version 99: kas accepts 1 to \d+",
     files={"kas/a.yml": "header:\n  version: 99\nmachine: qemux86-64\n"})
case("kas-no-header", ["import-kas", "kas/a.yml", "--out", "imp"], USAGE,
     r"kas/a\.yml:1: 'header' is a required property",
     files={"kas/a.yml": "machine: qemux86-64\n"})
case("kas-top-list", ["import-kas", "kas/a.yml", "--out", "imp"], USAGE,
     r"kas/a\.yml: not a kas file \(the top level is not a mapping\)",
     files={"kas/a.yml": "- 1\n- 2\n"})
case("kas-product-traversal", ["import-kas", "kas/board.yml", "--out", "imp", "--product",
     "../../escape"], USAGE, r"--product: product name '../../escape' cannot be a file name under --out")
case("kas-product-slash", ["import-kas", "kas/board.yml", "--out", "imp", "--product", "a/b"],
     USAGE, r"--product: product name 'a/b' cannot be a file name under --out")
case("kas-board-name-dots", ["import-kas", "kas/...yml", "--out", "imp"], USAGE,
     r"kas/\.\.\.yml: board name '\.\.' cannot be a file name under --out",
     prepare=lambda d: (d / "kas" / "...yml").write_text((d / "kas" / "board.yml").read_text()))
case("kas-out-is-file", ["import-kas", "kas/board.yml", "--out", "rootfs.ext4"], USAGE,
     r"rootfs\.ext4")
case("kas-machine-newline", ["import-kas", "kas/board.yml", "--out", "imp", "--series",
     "scarthgap"], USAGE, r"kas/board\.yml: cannot import: machine: .* must match",
     prepare=edit("kas/board.yml", setter(machine="qemux86-64\nINHERIT += \"evil\"")))

# -- artifacts -------------------------------------------------------------------------------
def _truncate(rel: str, n: int) -> Callable[[Path], None]:
    def prepare(d: Path) -> None:
        p = d / rel
        p.write_bytes(p.read_bytes()[:n])
    return prepare


def _flip(rel: str, offset: int) -> Callable[[Path], None]:
    def prepare(d: Path) -> None:
        p = d / rel
        b = bytearray(p.read_bytes())
        b[offset] ^= 0xFF
        p.write_bytes(bytes(b))
    return prepare


for verb in ("inspect", "verify"):
    case(f"artifact-{verb}-missing", ["artifact", verb, "none.mender"], USAGE,
         r"(?i)none\.mender.*(no such file|not found)")
    case(f"artifact-{verb}-dir", ["artifact", verb, "keys"], USAGE,
         r"keys: .*(directory|not a regular file)")
    bad = PROBLEMS if verb == "verify" else USAGE  # verify: "invalid" is its finding
    case(f"artifact-{verb}-binary", ["artifact", verb, "evil.mender"], bad, r"evil\.mender",
         files={"evil.mender": BINARY})
    case(f"artifact-{verb}-empty", ["artifact", verb, "evil.mender"], bad, r"evil\.mender",
         files={"evil.mender": b""})
    case(f"artifact-{verb}-yaml", ["artifact", verb, "products/demo.yml"], bad,
         r"demo\.yml")
    case(f"artifact-{verb}-truncated", ["artifact", verb, "signed.mender"], bad,
         r"signed\.mender", prepare=_truncate("signed.mender", 1500))
case("artifact-verify-flipped", ["artifact", "verify", "signed.mender"], PROBLEMS,
     r"signed\.mender.*(checksum|corrupt|decompress)", prepare=_flip("signed.mender", -400))
case("artifact-verify-unsigned-required", ["artifact", "verify", "unsigned.mender",
     "--require-signature", "-k", "keys/pub.pem"], PROBLEMS, r"not signed|unsigned|signature")
case("artifact-verify-wrong-device", ["artifact", "verify", "signed.mender", "-t", "toaster"],
     PROBLEMS, r"toaster")
case("artifact-verify-wrong-name", ["artifact", "verify", "signed.mender", "-n", "other"],
     PROBLEMS, r"other")
case("artifact-verify-key-garbage", ["artifact", "verify", "signed.mender", "-k", "rootfs.ext4"],
     USAGE, r"rootfs\.ext4|key")
case("artifact-verify-key-binary", ["artifact", "verify", "signed.mender", "-k", "evil.pem"],
     USAGE, r"key", files={"evil.pem": BINARY})
case("artifact-verify-key-env-unset", ["artifact", "verify", "signed.mender", "-k",
     "env:HOSTILE_NO_SUCH_VAR"], USAGE, r"HOSTILE_NO_SUCH_VAR.*not set")
case("artifact-verify-key-env-garbage", ["artifact", "verify", "signed.mender", "-k",
     "env:HOSTILE_KEY"], USAGE, r"key", env={"HOSTILE_KEY": "-----BEGIN PUBLIC KEY-----\nzz\n"})
case("artifact-verify-key-missing", ["artifact", "verify", "signed.mender", "-k", "no.pem"],
     USAGE, r"no\.pem")
case("artifact-verify-key-dir", ["artifact", "verify", "signed.mender", "-k", "keys"], USAGE,
     r"keys")
case("artifact-verify-extract-into-file", ["artifact", "verify", "signed.mender", "--extract",
     "rootfs.ext4"], USAGE, r"rootfs\.ext4")
case("artifact-sign-key-missing", ["artifact", "sign", "unsigned.mender", "-k", "no.pem",
     "-o", "out.mender"], USAGE, r"no\.pem")
case("artifact-sign-public-key", ["artifact", "sign", "unsigned.mender", "-k", "keys/pub.pem",
     "-o", "out.mender"], USAGE, r"private key|key")
case("artifact-sign-key-env-garbage", ["artifact", "sign", "unsigned.mender", "-k",
     "env:HOSTILE_KEY", "-o", "out.mender"], USAGE, r"key",
     env={"HOSTILE_KEY": "not a key"})
case("artifact-sign-garbage-artifact", ["artifact", "sign", "evil.mender", "-k", "keys/priv.pem",
     "-o", "out.mender"], USAGE, r"evil\.mender", files={"evil.mender": BINARY})
case("artifact-sign-out-no-dir", ["artifact", "sign", "unsigned.mender", "-k", "keys/priv.pem",
     "-o", "nodir/out.mender"], USAGE, r"nodir")
case("artifact-sign-out-is-dir", ["artifact", "sign", "unsigned.mender", "-k", "keys/priv.pem",
     "-o", "keys"], USAGE, r"keys")
case("artifact-sign-already-signed", ["artifact", "sign", "signed.mender", "-k",
     "keys/priv.pem", "-o", "out.mender"], USAGE, r"already signed|--force")

case("artifact-sign-encrypted-key", ["artifact", "sign", "unsigned.mender", "-k",
     "keys/encrypted.pem", "-o", "out.mender"], USAGE,
     r"encrypted\.pem: encrypted private keys are not supported")
case("artifact-sign-ed25519-key", ["artifact", "sign", "unsigned.mender", "-k",
     "keys/ed25519.pem", "-o", "out.mender"], USAGE, r"ed25519\.pem: only RSA and ECDSA P-256")
case("artifact-verify-key-is-private", ["artifact", "verify", "signed.mender", "-k",
     "keys/priv.pem"], USAGE, r"priv\.pem: is a private key; verification needs the public")
case("artifact-sign-key-file-ref-missing", ["artifact", "sign", "unsigned.mender", "-k",
     "file:keys/none.pem", "-o", "out.mender"], USAGE, r"file:keys/none\.pem")
case("build-signing-key-env-unset", ["build", "products/demo.yml"], USAGE,
     r"env:HOSTILE_UNSET_KEY.*not set",
     prepare=edit("products/demo.yml", setter(mender={"signing_key": "env:HOSTILE_UNSET_KEY"})))
case("build-signing-key-garbage", ["build", "products/demo.yml"], USAGE,
     r"rootfs\.ext4: not a PEM private key",
     prepare=edit("products/demo.yml", setter(mender={"signing_key": "file:../rootfs.ext4"})))
case("doctor-product-alias-in-secret", ["doctor", "--product", "products/demo.yml", "--offline"],
     USAGE, r"demo\.yml:\d+: document expands",
     prepare=lambda d: (d / "products" / "demo.yml").write_text(
         (d / "products" / "demo.yml").read_text() + alias_bomb().replace("name: demo\n", "")))

W = ["artifact", "write", "rootfs-image"]
case("write-file-missing", [*W, "-f", "none.ext4", "-n", "x", "-t", "d", "-o", "o.mender"],
     USAGE, r"none\.ext4")
case("write-file-dir", [*W, "-f", "keys", "-n", "x", "-t", "d", "-o", "o.mender"], USAGE,
     r"keys")
case("write-out-no-dir", [*W, "-f", "rootfs.ext4", "-n", "x", "-t", "d", "-o", "nodir/o.mender"],
     USAGE, r"nodir")
case("write-out-is-dir", [*W, "-f", "rootfs.ext4", "-n", "x", "-t", "d", "-o", "keys"], USAGE,
     r"keys")
case("write-out-under-file", [*W, "-f", "rootfs.ext4", "-n", "x", "-t", "d", "-o",
     "rootfs.ext4/o.mender"], USAGE, r"rootfs\.ext4")
case("write-name-newline", [*W, "-f", "rootfs.ext4", "-n", "x\ny", "-t", "d", "-o", "o.mender"],
     USAGE, r"artifact name 'x\\ny' must be 1-256 printable characters")
case("write-device-empty", [*W, "-f", "rootfs.ext4", "-n", "x", "-t", "", "-o", "o.mender"],
     USAGE, r"device")
case("write-key-garbage", [*W, "-f", "rootfs.ext4", "-n", "x", "-t", "d", "-k", "rootfs.ext4",
     "-o", "o.mender"], USAGE, r"key|rootfs\.ext4")
case("write-key-public", [*W, "-f", "rootfs.ext4", "-n", "x", "-t", "d", "-k", "keys/pub.pem",
     "-o", "o.mender"], USAGE, r"private key|key")
case("write-script-missing", [*W, "-f", "rootfs.ext4", "-n", "x", "-t", "d", "-s", "no.sh",
     "-o", "o.mender"], USAGE, r"no\.sh")
case("write-script-bad-name", [*W, "-f", "rootfs.ext4", "-n", "x", "-t", "d", "-s", "evil.sh",
     "-o", "o.mender"], USAGE, r"evil\.sh", files={"evil.sh": "#!/bin/sh\n"})
case("write-provides-empty-key", [*W, "-f", "rootfs.ext4", "-n", "x", "-t", "d", "-p", ":v",
     "-o", "o.mender"], USAGE, r"KEY:VALUE")
M = ["artifact", "write", "module-image"]
case("write-module-traversal", [*M, "-T", "../../bin/sh", "-n", "x", "-t", "d", "-o",
     "o.mender"], USAGE, r"'\.\./\.\./bin/sh' is not a valid update module name")
case("write-module-meta-not-json", [*M, "-T", "single-file", "-n", "x", "-t", "d", "-m",
     "meta.json", "-o", "o.mender"], USAGE, r"meta\.json", files={"meta.json": "{not json"})
case("write-module-meta-list", [*M, "-T", "x", "-n", "x", "-t", "d", "-m", "meta.json",
     "-o", "o.mender"], USAGE, r"meta\.json.*object|object", files={"meta.json": "[1, 2]"})
case("write-module-meta-binary", [*M, "-T", "x", "-n", "x", "-t", "d", "-m", "meta.json",
     "-o", "o.mender"], USAGE, r"meta\.json", files={"meta.json": BINARY})
case("write-module-meta-deep", [*M, "-T", "x", "-n", "x", "-t", "d", "-m", "meta.json",
     "-o", "o.mender"], USAGE, r"meta\.json",
     files={"meta.json": "[" * 100000 + "]" * 100000})
case("write-module-permissions", [*M, "-T", "single-file", "-n", "x", "-t", "d", "-f",
     "rootfs.ext4", "--dest-dir", "/opt", "--permissions", "rwx", "-o", "o.mender"], USAGE,
     r"permissions")
case("write-module-dir-missing", [*M, "-T", "directory", "-n", "x", "-t", "d", "--dest-dir",
     "/opt", "--directory", "nodir", "-o", "o.mender"], USAGE, r"nodir")

# -- doctor: reads, never writes -------------------------------------------------------------
case("doctor-product-missing", ["doctor", "--product", "nope.yml"], USAGE, r"nope\.yml")
case("doctor-product-dir", ["doctor", "--product", "products"], USAGE, r"products")
case("doctor-product-unknown-field", ["doctor", "--product", "products/demo.yml"], USAGE,
     r"demo\.yml:\d+: .*colour", prepare=edit("products/demo.yml", setter(colour="blue")))

# -- repos, clean, diff, cache prune (issue 15): refused before anything is written --------------
case("repos-no-command", ["repos", "products/demo.yml", "--"], USAGE, r"no command given")
case("repos-unknown-board", ["repos", "products/demo.yml", "--board", "x", "--", "true"], USAGE,
     r"board 'x' is not in this product")
case("clean-unknown-board", ["clean", "products/demo.yml", "--board", "x"], USAGE, r"board 'x'")
case("diff-missing", ["diff", "products/demo.yml", "nope.yml"], USAGE, r"nope\.yml: no such file")
case("diff-binary", ["diff", "signed.mender", "products/demo.yml"], USAGE, r"signed\.mender")
case("diff-product-vs-lock", ["diff", "products/demo.yml", "l.yml"], USAGE,
     r"is a product and l\.yml a lock", files={"l.yml": "overrides: {repos: {}}\n"})
case("diff-revision-not-git", ["diff", "HEAD~1", "HEAD", "--product", "products/demo.yml"],
     USAGE, r"HEAD~1 is not a revision|not in a git repository")
case("prune-no-directory", ["cache", "prune", "--older-than", "3"], USAGE, r"SSTATE_DIR")
case("prune-keep-builds-zero", ["cache", "prune", "machines", "--keep-builds", "0"], USAGE,
     r"--keep-builds: must be at least 1")

# -- the verbs and options of issue 17's session: shell, getvar, repos, clean, diff, prune,
# release delta/apps, artifact dump/cat/cp, -c, pkcs11: keys, private and signed repos ----------
P = "products/demo.yml"


def _json_edit(rel: str, fn: Callable[[dict], None]) -> Callable[[Path], None]:
    """prepare: load a JSON file of the world, let fn change it, write it back."""
    def prepare(d: Path) -> None:
        import json
        p = d / rel
        data = json.loads(p.read_text())
        fn(data)
        p.write_text(json.dumps(data))
    return prepare


def _repo(**changes) -> Callable[[dict], None]:
    return lambda data: data["repos"]["poky"].update(changes)


def _signers(**product) -> Callable[[Path], None]:
    return edit(P, setter(signers={"a": {"type": "ssh", "path": product.pop("path")}},
                          signed=True, allowed_signers=["a"], **product))


# shell and getvar: refused before the board directory or any cache is made
case("shell-empty-command", ["shell", P, "-b", "qemux86-64", "-c", "  "], USAGE,
     r"-c: empty command")
case("shell-no-board", ["shell", P, "-c", "true"], USAGE, r"required: --board")
case("shell-unknown-board", ["shell", P, "-b", "zx81", "-c", "true", "--runtime", "host"],
     USAGE, r"board 'zx81' is not in this product")
case("shell-product-binary", ["shell", "evil.yml", "-b", "qemux86-64", "-c", "true"], USAGE,
     r"evil\.yml: binary file", files={"evil.yml": BINARY})
case("shell-product-missing", ["shell", "nope.yml", "-b", "qemux86-64", "-c", "true"], USAGE,
     r"nope\.yml: no such file")
case("shell-image-newline", ["shell", P, "-b", "qemux86-64", "-c", "true", "--image",
     "builder\nx"], USAGE, r"--image: 'builder\\nx' is not an image reference")
case("getvar-image-space", ["getvar", P, "-b", "qemux86-64", "MACHINE", "--image",
     "builder --privileged"], USAGE, r"--image: 'builder --privileged' is not an image reference")
case("build-image-newline", ["build", P, "--dry-run", "--image", "a\nb"], USAGE,
     r"--image: 'a\\nb' is not an image reference")
case("getvar-name-space", ["getvar", P, "-b", "qemux86-64", "FOO BAR"], USAGE,
     r"VAR: 'FOO BAR' is not a BitBake variable name")
case("getvar-name-newline", ["getvar", P, "-b", "qemux86-64", "FOO\nBAR"], USAGE,
     r"VAR: 'FOO\\nBAR' is not a BitBake variable name")
case("getvar-no-board", ["getvar", P, "MACHINE"], USAGE, r"--board.*--all-boards.*required")
case("getvar-unknown-board", ["getvar", P, "-b", "zx81", "MACHINE", "--runtime", "host"],
     USAGE, r"board 'zx81' is not in this product")
case("getvar-recipe-traversal", ["getvar", P, "-b", "qemux86-64", "MACHINE", "-r", "../../x",
     "--runtime", "host"], USAGE, r"--recipe: '\.\./\.\./x' is not a recipe name")
case("getvar-recipe-option", ["getvar", P, "-b", "qemux86-64", "MACHINE", "-r", "-e",
     "--runtime", "host"], USAGE, r"--recipe")

# repos, clean, diff
case("repos-no-dashes", ["repos", P], USAGE, r"no command given")
case("repos-out-is-file", ["repos", P, "--out", "rootfs.ext4", "--", "true"], USAGE,
     r"rootfs\.ext4/repos: Not a directory")
case("repos-product-binary", ["repos", "evil.yml", "--", "true"], USAGE, r"evil\.yml: binary",
     files={"evil.yml": BINARY})

case("clean-product-binary", ["clean", "signed.mender"], USAGE, r"signed\.mender: binary file")
case("clean-product-missing", ["clean", "nope.yml"], USAGE, r"nope\.yml: file not found")
case("clean-product-is-dir", ["clean", "products"], USAGE, r"products: is a directory")
case("clean-out-is-file", ["clean", P, "--out", "rootfs.ext4"], USAGE,
     r"--out rootfs\.ext4: exists and is not a directory")


def _board_link(sub: str = "") -> Callable[[Path], None]:
    """prepare: the first board directory (or its work/) is a link out of the output dir."""
    def prepare(d: Path) -> None:
        (d / "outside" / "build" / "tmp").mkdir(parents=True)
        (d / "outside" / "build" / "tmp" / "precious").write_text("not the build's\n")
        board = d / "out" / "demo" / "qemux86-64-release"
        link = board / sub if sub else board
        link.parent.mkdir(parents=True)
        link.symlink_to(d / "outside")
    return prepare


# a board directory, or its work/, linked out of the output directory: clean removed (or, with
# --all, crashed on) what the link points to and wrote its lock file there
case("clean-board-dir-is-link", ["clean", P], PROBLEMS,
     r"qemux86-64-release: a symbolic link .*clean does not follow it", stream="stdout",
     prepare=_board_link())
case("clean-all-board-dir-is-link", ["clean", P, "--all"], PROBLEMS,
     r"qemux86-64-release: a symbolic link .*clean does not follow it", stream="stdout",
     prepare=_board_link())
case("clean-work-is-link", ["clean", P], PROBLEMS,
     r"qemux86-64-release/work: a symbolic link .*clean does not follow it", stream="stdout",
     prepare=_board_link("work"))
case("diff-unknown-revisions", ["diff", "nosuchrev", "HEAD", "--product", P], USAGE,
     r"nosuchrev is not a revision|not in a git repository")
case("diff-directories", ["diff", "keys", "machines"], USAGE,
     r"diff: keys is a directory, not a manifest or a lock file")
case("diff-alias-bomb", ["diff", P, "evil.yml"], USAGE, r"evil\.yml:\d+: document expands",
     files={"evil.yml": alias_bomb()})
case("diff-deep-product", ["diff", P, "evil.yml"], USAGE,
     r"evil\.yml:1: nested more than 64 levels", files={"evil.yml": deep_seq()})
case("diff-deep-lock", ["diff", "a.lock.yml", "evil.yml"], USAGE,
     r"evil\.yml:2: nested more than 64 levels",
     files={"a.lock.yml": "overrides: {repos: {}}\n",
            "evil.yml": "overrides:\n  repos: " + "[" * 5000 + "]" * 5000 + "\n"})
case("diff-binary-lock", ["diff", "a.lock.yml", "signed.mender"], USAGE,
     r"signed\.mender: binary file", files={"a.lock.yml": "overrides: {repos: {}}\n"})


def _git_world(change: dict[str, str] | None = None) -> Callable[[Path], None]:
    """prepare: the case's manifests committed in a git repository (then changed, committed)."""
    def prepare(d: Path) -> None:
        import os
        import subprocess
        env = dict(os.environ, GIT_AUTHOR_NAME="h", GIT_AUTHOR_EMAIL="h@h.invalid",
                   GIT_COMMITTER_NAME="h", GIT_COMMITTER_EMAIL="h@h.invalid")
        steps = [["init", "-q"], ["add", "products", "machines"], ["commit", "-qm", "a"]]
        for i, args in enumerate(steps + ([["commit", "-qam", "b"]] if change else [])):
            if i == len(steps) and change:
                for rel, text in change.items():
                    (d / rel).write_text(text)
            subprocess.run(["git", *args], cwd=d, env=env, check=True, capture_output=True)
    return prepare


case("diff-revision-unknown", ["diff", "nosuchrev", "HEAD", "--product", P], USAGE,
     r"diff: nosuchrev is not a revision of", prepare=_git_world())
case("diff-revision-too-far-back", ["diff", "HEAD~5", "HEAD", "--product", P], USAGE,
     r"diff: HEAD~5 is not a revision of", prepare=_git_world())
case("diff-revision-option", ["diff", "--product", P, "--", "--output=x", "HEAD"], USAGE,
     r"diff: '--output=x' is not a git revision", prepare=_git_world())
case("diff-revision-deep-product", ["diff", "HEAD~1", "HEAD", "--product", P], USAGE,
     r"HEAD:products/demo\.yml:1: nested more than 64 levels",
     prepare=_git_world({P: deep_seq()}))

# cache prune: absurd windows are refused before the cache is locked (nothing written in it)
case("prune-keep-builds-negative", ["cache", "prune", "machines", "--keep-builds", "-5"], USAGE,
     r"--keep-builds: must be at least 1")
case("prune-older-than-negative", ["cache", "prune", "machines", "--older-than", "-1"], USAGE,
     r"--older-than: -1 is not a number of days")
case("prune-older-than-nan", ["cache", "prune", "machines", "--older-than", "nan"], USAGE,
     r"--older-than: nan is not a number of days")
case("prune-older-than-inf", ["cache", "prune", "machines", "--older-than", "inf"], USAGE,
     r"--older-than: inf is not a number of days")
case("prune-older-than-text", ["cache", "prune", "machines", "--older-than", "week"], USAGE,
     r"--older-than: invalid float value")
case("prune-sstate-is-file", ["cache", "prune", "rootfs.ext4", "--older-than", "3"], USAGE,
     r"rootfs\.ext4: no such directory \(the sstate cache to prune\)")
case("prune-downloads-is-file", ["cache", "prune", "machines", "--downloads", "rootfs.ext4",
     "--older-than", "3"], USAGE, r"rootfs\.ext4: no such directory \(the downloads")
case("prune-product-binary", ["cache", "prune", "--product", "signed.mender", "--older-than",
     "3"], USAGE, r"signed\.mender: binary file")

# release delta and apps (bundle-1.0, bundle-2.0: one board each, unsigned artifacts)
D = ["release", "delta", "--from", "bundle-1.0", "--to", "bundle-2.0", "--out", "dout"]
NEW_MENDER = "bundle-2.0/qemux86-64-release/demo.mender"
case("delta-same-bundle-twice", ["release", "delta", "--from", "bundle-1.0", "--to",
     "bundle-1.0", "--out", "dout"], USAGE, r"are the same release \(demo 1\.0\)")
case("delta-same-version", D, USAGE, r"are the same release",
     prepare=_json_edit("bundle-2.0/release.json", lambda r: r.update(version="1.0")))
case("delta-not-a-bundle", ["release", "delta", "--from", "keys", "--to", "bundle-2.0"], USAGE,
     r"--from keys: no release\.json, not a release bundle")
case("delta-bundle-is-file", ["release", "delta", "--from", "rootfs.ext4", "--to",
     "bundle-2.0"], USAGE, r"--from rootfs\.ext4: not a directory")
case("delta-truncated-mender", D, USAGE, r"demo\.mender: not a readable Mender artifact",
     prepare=_truncate(NEW_MENDER, 1500))
case("delta-garbage-mender", D, USAGE, r"demo\.mender: not a readable Mender artifact",
     files={NEW_MENDER: BINARY})
case("delta-release-json-binary", D, USAGE, r"bundle-2\.0/release\.json: cannot read",
     files={"bundle-2.0/release.json": BINARY})
case("delta-release-json-deep", D, USAGE, r"bundle-2\.0/release\.json: cannot read",
     files={"bundle-2.0/release.json": "[" * 100000 + "]" * 100000})
case("delta-board-dir-escapes", D, USAGE, r"release\.json: board qemux86-64: dir '\.\.' is not",
     prepare=_json_edit("bundle-2.0/release.json", lambda r: (
         r["boards"][0].update(dir=".."), r["files"][0].update(path="../unsigned.mender"))))
case("delta-mender-path-escapes", D, USAGE, r"release\.json: board qemux86-64: a \.mender "
     r"path with '\.\.' in it", prepare=_json_edit("bundle-2.0/release.json", lambda r: r[
         "files"][0].update(path="qemux86-64-release/../../unsigned.mender")))
case("delta-out-is-file", [*D[:-1], "rootfs.ext4"], USAGE,
     r"--out rootfs\.ext4: exists and is not a directory")
case("delta-only-from", ["release", "delta", "--from", "bundle-1.0"], USAGE,
     r"give both --from OLD_BUNDLE and --to NEW_BUNDLE")
case("delta-from-not-a-bundle", ["release", P, "--delta-from", "keys", "--deploy-dir", "keys",
     "-b", "qemux86-64", "--out", "rel"], USAGE, r"--delta-from keys: no release\.json")
case("delta-from-same-version", ["release", P, "--delta-from", "bundle-1.0", "--deploy-dir",
     "keys", "-b", "qemux86-64", "--out", "rel"], USAGE,
     r"--delta-from bundle-1\.0: is version 1\.0, the one being released")
case("apps-feed-is-file", ["release", "apps", P, "-b", "qemux86-64", "--feed", "rootfs.ext4",
     "--out", "ao"], USAGE, r"no package feed in rootfs\.ext4")
case("apps-no-board", ["release", "apps", P, "--feed", "keys"], USAGE, r"--board")
case("apps-option-elsewhere", ["release", "verify", "keys", "--package", "x"], USAGE,
     r"--package is an option of `release apps`")



def _feed(files: dict[str, bytes | None]) -> Callable[[Path], None]:
    """prepare: the product has the application package hello; deploy/ is a DEPLOY_DIR with
    files (None: a directory) under it."""
    def prepare(d: Path) -> None:
        edit(P, setter(packages=["hello"]))(d)
        for rel, content in files.items():
            p = d / "deploy" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.mkdir() if content is None else p.write_bytes(content)
    return prepare


A = ["release", "apps", P, "-b", "qemux86-64", "--feed", "deploy", "--out", "ao"]
IPK = "ipk/core2-64/hello_1.0-r0_core2-64.ipk"
# a file named like a package became an artifact whatever it held; a failed run left empty
# directories under --out
case("apps-garbage-ipk", A, USAGE, r"hello_1\.0-r0_core2-64\.ipk: not an ipk package",
     prepare=_feed({IPK: BINARY}))
case("apps-empty-ipk", A, USAGE, r"hello_1\.0-r0_core2-64\.ipk: an empty file",
     prepare=_feed({IPK: b""}))
case("apps-garbage-deb", A, USAGE, r"hello_1\.0-r0_amd64\.deb: not a deb package",
     prepare=_feed({"deb/core2-64/hello_1.0-r0_amd64.deb": b"<html>404</html>"}))
case("apps-garbage-rpm", A, USAGE, r"hello-1\.0-r0\.core2_64\.rpm: not an rpm package",
     prepare=_feed({"rpm/core2-64/hello-1.0-r0.core2_64.rpm": BINARY}))
case("apps-package-is-dir", A, USAGE, r"package hello is not in the feed deploy/ipk",
     prepare=_feed({IPK: None}))
case("apps-version-newline", A, USAGE, r"artifact name '.*hello-1\.0\\n-r0' must be 1-256",
     prepare=_feed({"ipk/core2-64/hello_1.0\n-r0_core2-64.ipk": b"!<arch>\n"}))
case("apps-two-feeds", A, USAGE, r"deploy holds ipk and deb feeds: say which one",
     prepare=_feed({IPK: b"!<arch>\n", "deb/a/hello_1.0-r0_a.deb": b"!<arch>\n"}))
case("apps-bundle-garbage", [*A, "--bundle", "bundle-2.0"], USAGE,
     r"--bundle: bundle-2\.0/qemux86-64-release/demo\.mender: artifact: tar header",
     prepare=lambda d: (_feed({IPK: b"!<arch>\n"})(d),
                        (d / NEW_MENDER).write_bytes(BINARY)))
case("apps-packages-not-a-list", ["validate", P], USAGE, r"demo\.yml:\d+: packages: must be an array",
     prepare=edit(P, setter(packages=5)))
case("apps-package-name-traversal", ["validate", P], USAGE, r"demo\.yml:\d+: packages\[0\]",
     prepare=edit(P, setter(packages=["../x"])))

# artifact cat / cp / dump (ext4[-signed].mender: a real ext4 payload; signed.mender: not ext4)
case("cat-path-escapes", ["artifact", "cat", "ext4.mender:/etc/../../etc/passwd"], USAGE,
     r"unsupported characters or '\.\.' in the path inside the artifact")
case("cat-relative-path", ["artifact", "cat", "ext4.mender:etc/hostname"], USAGE,
     r"the path inside the artifact must be absolute")
case("cat-quote-in-path", ["artifact", "cat", 'ext4.mender:/etc/"x'], USAGE,
     r"unsupported characters")
case("cat-directory", ["artifact", "cat", "ext4.mender:/etc"], USAGE,
     r"ext4\.mender:/etc: is a directory, not a regular file")
case("cat-missing-inside", ["artifact", "cat", "ext4.mender:/etc/nope"], USAGE,
     r"ext4\.mender:/etc/nope: no such file in the payload image")
case("cat-not-ext4", ["artifact", "cat", "signed.mender:/etc/hostname"], USAGE,
     r"signed\.mender: payload rootfs\.ext4 is not a readable ext2/3/4 filesystem")
case("cat-missing-artifact", ["artifact", "cat", "none.mender:/etc/hostname"], USAGE,
     r"none\.mender:/etc/hostname: give ARTIFACT:/path with an existing artifact")
case("cat-garbage-artifact", ["artifact", "cat", "evil.mender:/etc/hostname"], USAGE,
     r"evil\.mender: artifact: tar header", files={"evil.mender": BINARY})
case("cat-prints-the-file", ["artifact", "cat", "ext4.mender:/etc/hostname"], 0, r"^demo$",
     stream="stdout")
case("cp-out-path-escapes", ["artifact", "cp", "ext4.mender:/../etc/hostname", "out.txt"],
     USAGE, r"'\.\.' in the path inside the artifact")
case("cp-out-no-dir", ["artifact", "cp", "ext4.mender:/etc/hostname", "nodir/out.txt"], USAGE,
     r"artifact cp: nodir: no such directory")
case("cp-in-not-ext4", ["artifact", "cp", "rootfs.ext4", "unsigned.mender:/etc/x"], USAGE,
     r"unsigned\.mender: payload rootfs\.ext4 is not a readable ext2/3/4 filesystem")
case("cp-in-source-missing", ["artifact", "cp", "none.txt", "ext4.mender:/etc/x"], USAGE,
     r"none\.txt: no such file")
case("cp-in-source-dir", ["artifact", "cp", "keys", "ext4.mender:/etc/x"], USAGE,
     r"keys: not a regular file")
case("cp-in-source-dev-zero", ["artifact", "cp", "/dev/zero", "ext4.mender:/etc/x"], USAGE,
     r"/dev/zero: not a regular file")
case("cp-in-no-parent-inside", ["artifact", "cp", "rootfs.ext4", "ext4.mender:/nodir/x"], USAGE,
     r"directory /nodir does not exist in the image")
case("cp-in-onto-directory", ["artifact", "cp", "rootfs.ext4", "ext4.mender:/etc/empty"], USAGE,
     r"ext4\.mender:/etc/empty: is a directory; only regular files are replaced")
case("cp-in-signed-no-key", ["artifact", "cp", "rootfs.ext4", "ext4-signed.mender:/etc/x"],
     USAGE, r"ext4-signed\.mender: is signed; changing it needs the key")
case("cp-in-key-garbage", ["artifact", "cp", "rootfs.ext4", "ext4.mender:/etc/x", "-k",
     "rootfs.ext4"], USAGE, r"rootfs\.ext4: not a PEM private key")
case("cp-artifact-to-artifact", ["artifact", "cp", "ext4.mender:/etc/hostname",
     "unsigned.mender:/etc/x"], USAGE, r"from one artifact into another is not supported")
case("cp-neither-is-artifact", ["artifact", "cp", "a", "b"], USAGE,
     r"neither a nor b is ARTIFACT:/path")
case("dump-garbage", ["artifact", "dump", "evil.mender", "--files", "df"], USAGE,
     r"evil\.mender: artifact: tar header", files={"evil.mender": BINARY})
case("dump-truncated", ["artifact", "dump", "signed.mender", "--files", "df"], USAGE,
     r"signed\.mender: artifact: truncated", prepare=_truncate("signed.mender", 1500))
case("dump-missing", ["artifact", "dump", "none.mender", "--files", "df"], USAGE,
     r"none\.mender: cannot open")
case("dump-artifact-is-dir", ["artifact", "dump", "keys", "--files", "df"], USAGE,
     r"keys: cannot open: Is a directory")
case("dump-files-is-file", ["artifact", "dump", "ext4.mender", "--files", "rootfs.ext4"], USAGE,
     r"--files rootfs\.ext4: exists and is not a directory")
case("dump-files-under-file", ["artifact", "dump", "ext4.mender", "--files", "rootfs.ext4/x"],
     USAGE, r"rootfs\.ext4/x: Not a directory")



def _fifo(d: Path) -> None:
    os.mkfifo(d / "fifo")


# outputs that are devices or FIFOs: a rename onto them replaced them with a file (as root,
# `-o /dev/null` replaced /dev/null); a FIFO in the case directory stands for them
case("cp-out-onto-fifo", ["artifact", "cp", "ext4.mender:/etc/hostname", "fifo"], USAGE,
     r"artifact cp: fifo: is a FIFO; cp writes a file", prepare=_fifo)
case("cp-out-unwritable-dir", ["artifact", "cp", "ext4.mender:/etc/hostname",
     "/proc/buildctl-hostile.txt"], USAGE, r"artifact cp: /proc/buildctl-hostile\.txt: cannot write")
case("write-out-onto-fifo", [*W, "-f", "rootfs.ext4", "-n", "x", "-t", "d", "-o", "fifo"], USAGE,
     r"cannot write fifo: it is a FIFO, not a file", prepare=_fifo)
case("write-bootstrap-onto-fifo", ["artifact", "write", "bootstrap-artifact", "-n", "x", "-c",
     "d", "-o", "fifo"], USAGE, r"cannot write fifo: it is a FIFO", prepare=_fifo)
case("sign-out-onto-fifo", ["artifact", "sign", "unsigned.mender", "-k", "keys/priv.pem", "-o",
     "fifo"], USAGE, r"cannot write fifo: it is a FIFO, not a file", prepare=_fifo)
case("repos-empty-command", ["repos", P, "--offline", "--", ""], USAGE, r"no command given")

# -c/--compatible-types and pkcs11: keys on the command line
CW = ["artifact", "write", "rootfs-image", "-f", "rootfs.ext4", "-n", "x", "-o", "o.mender"]
case("write-compatible-empty", [*CW, "-c", ""], USAGE, r"device type .*'' must be 1-256")
case("write-compatible-newline", [*CW, "-c", "a\nb"], USAGE, r"'a\\nb' must be 1-256")
case("write-compatible-missing", CW, USAGE, r"required: --device-type/-t/--compatible-types/-c")
case("write-pkcs11-empty-uri", [*CW, "-c", "d", "-k", "pkcs11:"], USAGE,
     r"pkcs11 URI names no key")
case("write-pkcs11-garbage-uri", [*CW, "-c", "d", "-k", "pkcs11:%zz;;=="], USAGE,
     r"pkcs11 URI: unknown or empty path attribute")
case("write-pkcs11-module-missing", [*CW, "-c", "d", "-k",
     "pkcs11:token=t;object=k?module-path=/nonexistent/lib.so"], USAGE,
     r"PKCS#11 module /nonexistent/lib\.so: no such file")
case("write-pkcs11-module-not-a-library", [*CW, "-c", "d", "-k",
     "pkcs11:token=t;object=k?module-path={d}/rootfs.ext4"], USAGE,
     r"rootfs\.ext4: not a shared library")
case("write-pkcs11-module-name", [*CW, "-c", "d", "-k",
     "pkcs11:object=k?module-name=softhsm2"], USAGE, r"module-name is not supported")
case("verify-pkcs11-uri", ["artifact", "verify", "signed.mender", "-k", "pkcs11:token=t"],
     USAGE, r"key pkcs11:token=t: a pkcs11: URI names a signing key; verification needs")

# manifests: pkcs11: signing keys, private repositories, signed sources
case("manifest-pkcs11-pin-value", ["validate", P], USAGE,
     r"demo\.yml:\d+: mender\.signing_key: .*not pin-value",
     prepare=edit(P, setter(mender={"signing_key": "pkcs11:token=t;object=k?pin-value=1234"})))
case("manifest-pkcs11-empty", ["validate", P], USAGE, r"demo\.yml:\d+: mender\.signing_key",
     prepare=edit(P, setter(mender={"signing_key": "pkcs11:"})))
case("manifest-signing-key-list", ["validate", P], USAGE, r"demo\.yml:\d+: mender\.signing_key",
     prepare=edit(P, setter(mender={"signing_key": ["pkcs11:object=k"]})))
case("manifest-url-password-https", ["validate", P], USAGE,
     r"demo\.yml:\d+: repos\.poky\.url: holds a password or token",
     prepare=edit(P, _repo(url="https://user:hunter2@example.com/poky.git")))
case("manifest-url-password-ssh", ["validate", P], USAGE,
     r"demo\.yml:\d+: repos\.poky\.url: holds a password or token",
     prepare=edit(P, _repo(url="ssh://git:hunter2@example.com/poky.git")))
case("manifest-credentials-int", ["validate", P], USAGE,
     r"demo\.yml:\d+: repos\.poky\.credentials: must be a string",
     prepare=edit(P, _repo(url="https://example.com/poky.git", credentials=5)))
case("manifest-credentials-literal", ["validate", P], USAGE,
     r"repos\.poky\.credentials: the value is not a secret reference",
     prepare=edit(P, _repo(url="https://example.com/poky.git", credentials="hunter2")))
case("manifest-credentials-on-ssh", ["validate", P], USAGE,
     r"repos\.poky\.credentials: credentials are for https:// URLs",
     prepare=edit(P, _repo(url="ssh://git@example.com/poky.git", credentials="env:TOK")))
case("manifest-fetch-list", ["validate", P], USAGE, r"demo\.yml:\d+: fetch: must be an object",
     prepare=edit(P, setter(fetch=["x"])))
case("manifest-known-hosts-missing", ["validate", P], USAGE,
     r"demo\.yml:\d+: fetch\.known_hosts: no known_hosts file",
     prepare=edit(P, setter(fetch={"known_hosts": "nope"})))
case("manifest-known-hosts-dir", ["validate", P], USAGE,
     r"demo\.yml:\d+: fetch\.known_hosts: no known_hosts file",
     prepare=edit(P, setter(fetch={"known_hosts": "../keys"})))
case("manifest-signers-list", ["validate", P], USAGE, r"demo\.yml:\d+: signers: must be an object",
     prepare=edit(P, setter(signers=["a"])))
case("manifest-signers-type", ["validate", P], USAGE, r"signers\.a\.type: 'x509' is not one of",
     prepare=edit(P, setter(signers={"a": {"type": "x509", "path": "k"}})))
case("manifest-signers-name-traversal", ["validate", P], USAGE, r"invalid name '\.\./x'",
     prepare=edit(P, setter(signers={"../x": {"path": "k"}})))
case("manifest-signed-string", ["validate", P], USAGE, r"demo\.yml:\d+: signed: must be a boolean",
     prepare=edit(P, setter(signed="yes")))
case("manifest-signed-without-signers", ["validate", P], USAGE,
     r"signed: signed needs allowed_signers", prepare=edit(P, setter(signed=True)))
case("manifest-allowed-signer-unknown", ["validate", P], USAGE,
     r"allowed_signers\[0\]: unknown signer 'b'",
     prepare=edit(P, setter(signers={"a": {"path": "../keys/pub.pem"}}, allowed_signers=["b"])))
case("manifest-signer-key-missing", ["validate", P], USAGE,
     r"signers\.a\.path: no key file", prepare=_signers(path="../nope.pub"))
case("manifest-signer-key-dir", ["validate", P], USAGE,
     r"signers\.a\.path: no key file", prepare=_signers(path="../keys"))

# -- help: every verb answers --help with exit 0 -----------------------------------------------
# (not hostile, but the contract: they must not crash either)
