"""A small meta-mender-community-shaped checkout for board-check tests (own content)."""
from __future__ import annotations

from pathlib import Path

SHA_A = "a" * 40
SHA_B = "b" * 40

BASE = {
    "kas/include/mender-base.yml": f"""header:
  version: 14

repos:
  openembedded-core:
    url: https://git.openembedded.org/openembedded-core
    branch: scarthgap
    commit: {SHA_A}
    layers:
      meta:

target:
  - core-image-minimal
""",
    "kas/include/mender-full.yml": """header:
  version: 14
  includes:
    - kas/include/mender-base.yml

local_conf_header:
  mender-full: |
    INHERIT += "mender-full"
""",
    "kas/include/acme.yml": f"""header:
  version: 14

repos:
  meta-acme:
    url: https://example.invalid/meta-acme.git
    branch: scarthgap
    commit: {SHA_B}

  meta-mender-community:
    layers:
      meta-mender-acme:
""",
    "kas/acme-board.yml": """header:
  version: 14
  includes:
    - kas/include/mender-full.yml
    - kas/include/acme.yml

machine: acme-board

local_conf_header:
  acme-board: |
    MENDER_STORAGE_DEVICE = "/dev/mmcblk0"
    MENDER_BOOT_PART_SIZE_MB = "64"
""",
    "meta-mender-acme/conf/layer.conf": """BBPATH .= ":${LAYERDIR}"
BBFILE_COLLECTIONS += "mender-acme"
BBFILE_PATTERN_mender-acme = "^${LAYERDIR}/"
LAYERDEPENDS_mender-acme = "mender acme"
LAYERSERIES_COMPAT_mender-acme = "scarthgap"
""",
    ".github/workflows/build.yml": """name: build
on: [workflow_dispatch]
jobs:
  build:
    strategy:
      matrix:
        board: [acme-board]
        experimental: [false]
        include:
          - board: other-board
            experimental: true
    runs-on: ubuntu-latest
    steps:
      - run: kas build kas/${{ matrix.board }}.yml
""",
}


def write_tree(root: Path, files: dict[str, str | None]) -> Path:
    for rel, text in files.items():
        p = root / rel
        if text is None:
            if p.exists():
                p.unlink()
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def community_tree(root: Path, changes: dict[str, str | None] | None = None) -> Path:
    files = dict(BASE)
    files.update(changes or {})
    return write_tree(root, files)
