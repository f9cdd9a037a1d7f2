"""Two ext4 root filesystems, an old and a new one that differs in a share of its files, made
with mke2fs -d from generated trees: deterministic (seeded content, fixed UUID, hash seed,
times), so the same arguments give the same bytes on any machine with e2fsprogs.

The content is a mix that compresses like a real root filesystem (about 2:1 with gzip):
files of repeated "words" (text and code) and of random bytes (compressed data, stripped
code). The new tree changes a share of the files the way a package upgrade does: some edited
in place (a few bytes), some rewritten with a new size (so later files move on disk), one
removed and one added per 50 changes.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

UUID = "6b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
EPOCH = 1704067200


@dataclass(frozen=True)
class Pair:
    old: Path
    new: Path
    files: int  # files in the old tree
    changed: int  # files changed, removed or added


def _content(rng: random.Random, words: list[bytes], size: int) -> bytes:
    if rng.random() < 0.5:  # text-like: compresses well
        out = b" ".join(rng.choices(words, k=size // 6 + 1))
    else:  # binary-like: half random, half repeated blocks
        parts = []
        while sum(map(len, parts)) < size:
            parts.append(rng.randbytes(512) if rng.random() < 0.5 else rng.choice(words) * 64)
        out = b"".join(parts)
    return out[:size]


def make_tree(root: Path, total: int, seed: int) -> list[Path]:
    """Files of about ``total`` bytes under root, in 16 directories; returns them in order."""
    rng = random.Random(seed)
    words = [bytes(rng.choices(range(97, 123), k=rng.randint(2, 10))) for _ in range(2000)]
    files, used, i = [], 0, 0
    while used < total:
        size = int(min(2 << 20, max(200, rng.lognormvariate(9.5, 1.6))))
        path = root / f"d{i % 16:02d}" / f"f{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_content(rng, words, size))
        files.append(path)
        used += size
        i += 1
    return files


def change_tree(files: list[Path], share: float, seed: int) -> int:
    """Change ``share`` of the files in place (edit, rewrite, remove; add one per 50)."""
    rng = random.Random(seed)
    picked = rng.sample(files, max(1, round(len(files) * share)))
    words = [bytes(rng.choices(range(97, 123), k=6)) for _ in range(200)]
    for n, path in enumerate(picked):
        data = path.read_bytes()
        if n % 50 == 49:
            path.unlink()
        elif n % 2 == 0 and len(data) > 64:  # a small edit: a version string, a constant
            at = rng.randrange(0, len(data) - 16)
            path.write_bytes(data[:at] + rng.randbytes(16) + data[at + 16:])
        else:  # rebuilt: new content of another size
            path.write_bytes(_content(rng, words, max(100, int(len(data) * rng.uniform(0.8, 1.3)))))
    added = max(1, len(picked) // 50)
    for n in range(added):
        extra = files[0].parent / f"new{n:03d}.bin"
        extra.write_bytes(_content(rng, words, 20000))
    return len(picked) + added


def _stamp(root: Path) -> None:
    for dirpath, dirs, names in os.walk(root):
        for n in names + dirs:
            os.utime(os.path.join(dirpath, n), (EPOCH, EPOCH))
    os.utime(root, (EPOCH, EPOCH))


def mkfs(tree: Path, image: Path, size_mib: int) -> None:
    """mke2fs -d, then every inode's change and access time set to EPOCH (mke2fs 1.47.0
    copies the tree's ctimes, which no program can set, and reading the tree moves its
    directories' atimes; later versions honour SOURCE_DATE_EPOCH)."""
    _stamp(tree)
    image.unlink(missing_ok=True)
    with open(image, "wb") as f:
        f.truncate(size_mib << 20)
    env = dict(os.environ, E2FSPROGS_FAKE_TIME=str(EPOCH), SOURCE_DATE_EPOCH=str(EPOCH))
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "rootfs",
                    "-U", UUID, "-E", f"hash_seed={UUID},root_owner=0:0", "-d", str(tree),
                    str(image)], check=True, env=env)
    paths = ["/"] + sorted("/" + p.relative_to(tree).as_posix() for p in tree.rglob("*"))
    script = image.with_name(image.name + ".debugfs")
    script.write_text("".join(f"sif {p} {t} 0x{EPOCH:x}\n" for p in paths
                              for t in ("ctime", "atime")))
    subprocess.run(["debugfs", "-w", "-f", str(script), str(image)], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    script.unlink()


def make_pair(dest: Path, size_mib: int, share: float, *, fill: float = 0.7,
              seed: int = 1) -> Pair:
    """dest/old.ext4 and dest/new.ext4 (size_mib each, ``fill`` of it files), the new one with
    ``share`` of the files changed. At least 24 MiB at the default fill: below that ext4's
    journal and metadata leave too little room for the files."""
    dest.mkdir(parents=True, exist_ok=True)
    tree = dest / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    files = make_tree(tree, int(size_mib * (1 << 20) * fill), seed)
    mkfs(tree, dest / "old.ext4", size_mib)
    changed = change_tree(files, share, seed + 1)
    mkfs(tree, dest / "new.ext4", size_mib)
    shutil.rmtree(tree)
    return Pair(dest / "old.ext4", dest / "new.ext4", len(files), changed)
