"""Bundle: ``<out>/<product>/<version>/`` with one directory per ``<board>-<variant>``, a
``SHA256SUMS``, a ``release.json`` and the provenance envelope.

The bundle is assembled in a temporary directory beside its final place and renamed into
place: it is complete or absent. Everything written is a function of the inputs (sorted JSON,
times from SOURCE_DATE_EPOCH): the same inputs give the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

RELEASE_JSON = "release.json"
SUMS = "SHA256SUMS"
FORMAT_VERSION = 1


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dump_json(data) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def files_of(root: Path) -> list[str]:
    """Every regular file under root, as sorted POSIX relative paths."""
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            out.append(Path(dirpath, n).relative_to(root).as_posix())
    return sorted(out)


def sums_text(root: Path, paths: list[str]) -> str:
    return "".join(f"{sha256_file(root / p)}  {p}\n" for p in sorted(paths))


def parse_sums(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        digest, _, path = line.partition("  ")
        out[path] = digest
    return out


def normalise_modes(root: Path) -> None:
    """Same bytes, same modes: files 0644, directories 0755 (signing writes 0600 temp files)."""
    for dirpath, dirs, names in os.walk(root):
        os.chmod(dirpath, 0o755)
        for n in names:
            os.chmod(os.path.join(dirpath, n), 0o644)


def staging_dir(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))


def commit(staging: Path, final: Path) -> None:
    """Rename the finished bundle into place (an older bundle at the same place is replaced)."""
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, old / "b")
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)
