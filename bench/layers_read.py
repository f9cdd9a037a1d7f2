"""Benchmark: pre-flight layer reading + stack checks for a generated product.

    python bench/layers_read.py [--boards 30] [--layers 40] [--recipes 100] [--distinct] [--no-prefetch]

Generates git repositories of fixture layers (an OE-core-like core with ~900 recipes, shared
layers spread over multi-layer repositories, and per-board BSP layers), then times reading every
board's 40 layers from git at pinned commits and running check_stack for every board. With
--distinct every board pins its own repositories (worst case: nothing shared).
Prints the figures; nothing is asserted (targets live here, not in unit tests).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from buildctl.layers.checks import check_stack  # noqa: E402
from buildctl.layers.gitfs import GitFS  # noqa: E402
from buildctl.layers.layerinfo import LayerRef, read_layer, read_layers  # noqa: E402
from tests.helpers.fixture_layers import LayerSpec, core_layer, make_layer_repo  # noqa: E402


def generate(base: Path, boards: int, layers: int, recipes: int, distinct: bool):
    """Return per-board stacks: list of (board, machine, [(repo_path, commit, layer_dir, repo_name)])."""
    core_recipes = [f"core-r{i}_1.{i}.bb" for i in range(900)] + ["u-boot_2024.01.bb", "busybox_1.36.1.bb"]
    per_board_bsp = 5
    shared_count = layers - 1 - per_board_bsp
    layers_per_repo = 4

    def shared_set(tag: str, where: Path):
        core_path, core_commit = make_layer_repo(
            where, f"openembedded-core{tag}", {"meta": core_layer(recipes=core_recipes)}
        )
        stack = [(core_path, core_commit, "meta", "openembedded-core")]
        for r in range(0, shared_count, layers_per_repo):
            specs = {}
            for li in range(r, min(r + layers_per_repo, shared_count)):
                specs[f"meta-s{li}"] = LayerSpec(
                    collection=f"s{li}",
                    depends=["core"] + ([f"s{li - 1}"] if li % layers_per_repo else []),
                    recipes=[f"s{li}-r{k}_1.0.bb" for k in range(recipes)],
                    bbappends=["busybox_%.bbappend", f"core-r{li}_1.%.bbappend"],
                    distros=[f"distro{li}"] if li == 0 else [],
                )
            name = f"meta-shared{r // layers_per_repo}{tag}"
            path, commit = make_layer_repo(where, name, specs)
            stack += [(path, commit, d, name) for d in specs]
        return stack

    shared = None if distinct else shared_set("", base)
    out = []
    for b in range(boards):
        where = base / f"board{b}"
        stack = list(shared_set(f"-b{b}", where) if distinct else shared)
        specs = {
            f"meta-b{b}-{k}": LayerSpec(
                collection=f"b{b}x{k}",
                depends=["core", "s0"],
                machines=[f"board{b}"] if k == 0 else [],
                recipes=[f"b{b}-{k}-r{j}_2.0.bb" for j in range(recipes)],
                bbappends=["u-boot_%.bbappend"],
            )
            for k in range(per_board_bsp)
        }
        name = f"meta-bsp-b{b}"
        path, commit = make_layer_repo(where, name, specs)
        stack += [(path, commit, d, name) for d in specs]
        out.append((f"board{b}", f"board{b}", stack))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", type=int, default=30)
    ap.add_argument("--layers", type=int, default=40)
    ap.add_argument("--recipes", type=int, default=100)
    ap.add_argument("--distinct", action="store_true", help="every board pins its own repositories")
    ap.add_argument("--prefetch", action=argparse.BooleanOptionalAction, default=True,
                    help="read all boards' layers with read_layers() first (default) or board by board")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        boards = generate(Path(tmp), args.boards, args.layers, args.recipes, args.distinct)
        t_gen = time.perf_counter() - t0
        fs = GitFS()
        t1 = time.perf_counter()
        total_findings = 0
        layer_reads = 0
        t_read = t_check = 0.0
        if args.prefetch:
            # What validate does: read every board's layers at once (concurrently per repo).
            ta = time.perf_counter()
            read_layers([LayerRef(str(p), c, d, n) for _, _, s in boards for p, c, d, n in s], fs=fs)
            t_read += time.perf_counter() - ta
        for board, machine, stack in boards:
            ta = time.perf_counter()
            infos = [read_layer(p, c, d, n, fs=fs) for p, c, d, n in stack]
            tb = time.perf_counter()
            layer_reads += len(infos)
            found = check_stack(board, infos, series="scarthgap", machine=machine, distro="distro0", bootloader="u-boot")
            t_read += tb - ta
            t_check += time.perf_counter() - tb
            total_findings += len(found)
        t_total = time.perf_counter() - t1
        distinct_layers = len({(str(p), c, d) for _, _, s in boards for p, c, d, _ in s})
        fs.close()
    print(f"mode: {'read_layers() for all boards, then per board' if args.prefetch else 'read_layer() board by board'}")
    print(f"generated {len(boards)} boards x {args.layers} layers ({distinct_layers} distinct layers, "
          f"{args.recipes} recipes each, core 902) in {t_gen:.1f} s")
    print(f"read + check: {t_total:.3f} s total, {t_total / len(boards) * 1000:.1f} ms per board, "
          f"{layer_reads} layer reads, {total_findings} findings")
    print(f"  of which reading layers from git: {t_read:.3f} s, check_stack: {t_check:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
