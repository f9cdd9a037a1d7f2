"""SOURCE_DATE_EPOCH for a build: the time of the product repository's last commit."""
from __future__ import annotations

import subprocess
from pathlib import Path


def source_date_epoch(repo: Path) -> int | None:
    """Committer time of HEAD, or None when ``repo`` is not inside a git work tree."""
    proc = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%ct", "HEAD"],
                          capture_output=True, text=True)
    out = proc.stdout.strip()
    return int(out) if proc.returncode == 0 and out.isdigit() else None
