#!/usr/bin/env python3
"""Benchmark: `buildctl validate` on a generated 30-board, 40-layer product vs `kas dump`.

Generates (in a temp dir) 10 git repositories holding 40 layers with real layer.conf files,
machine confs, recipes and bbappends, 30 board manifests and a product; then times, in the
same run, `buildctl validate` over the whole matrix (cold git cache and warm) and `kas dump`
once per composed board file. Run: python bench/validate.py [--boards 30] [--layers 40]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers.products import board_data, core_repo, layer_conf, make_repo, write_yaml  # noqa: E402


def generate(root: Path, n_boards: int, n_layers: int, recipes_per_layer: int = 60) -> Path:
    poky = root / "repos" / "poky"
    machines = [f"board{i:02d}" for i in range(n_boards)]
    core_commit = core_repo(poky, machines=("qemux86-64",))
    repos: dict[str, dict] = {}
    layer_names = []
    per_repo = 4
    bsp_layers = n_layers - 2  # the core repo has two
    n_repos = max(1, -(-bsp_layers // per_repo))
    for r in range(n_repos):
        files = {}
        layers = []
        for j in range(min(per_repo, bsp_layers - r * per_repo)):
            coll = f"bsp{r}x{j}"
            layer = f"meta-{coll}"
            layers.append(layer)
            files[f"{layer}/conf/layer.conf"] = layer_conf(coll, depends=["core"])
            for k in range(recipes_per_layer):
                files[f"{layer}/recipes-{k % 6}/pkg{r}{j}{k}/pkg{r}{j}{k}_1.{k}.bb"] = 'SUMMARY = "x"\n'
            files[f"{layer}/recipes-1/busybox/busybox_%.bbappend"] = 'FILESEXTRAPATHS:prepend = "x"\n'
        for m in machines[r::n_repos]:
            files[f"{layers[0]}/conf/machine/{m}.conf"] = f'MACHINE_FEATURES = "efi"\n# {m}\n'
        path = root / "repos" / f"meta-bsp{r}"
        commit = make_repo(path, files)
        repos[f"meta-bsp{r}"] = {"url": path.as_uri(), "layers": layers,
                                 "refs": {"scarthgap": {"branch": "scarthgap", "commit": commit}}}
        layer_names += layers
    for i, m in enumerate(machines):
        own = dict(list(repos.items())[i % n_repos: i % n_repos + 3] or list(repos.items())[:3])
        if not any(m in str(p) for p in own):
            home = f"meta-bsp{i % n_repos}"
            own[home] = repos[home]
        write_yaml(root / "machines" / f"{m}.yml", board_data(m, repos=own))
    return write_yaml(root / "products" / "zoo.yml", {
        "name": "zoo", "series": "scarthgap", "distro": "poky", "target": "core-image-minimal",
        "repos": {"poky": {"url": poky.as_uri(), "layers": ["meta", "meta-poky"],
                           "refs": {"scarthgap": {"branch": "scarthgap", "commit": core_commit}}}},
        "boards": machines, "release": {"version": "1.0"},
    }), len(layer_names) + 2


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return time.perf_counter() - t0, r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--boards", type=int, default=30)
    ap.add_argument("--layers", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        product, n_layers = generate(root, args.boards, args.layers)
        print(f"generated {args.boards} boards over {n_layers} layers in {time.perf_counter() - t0:.1f} s")
        env = dict(os.environ, PYTHONPATH=str(ROOT), BUILDCTL_GIT_CACHE=str(root / "gitcache"))
        bc = [sys.executable, "-m", "buildctl"]
        cold, r = timed(bc + ["validate", str(product), "--json"], env=env)
        if r.returncode not in (0, 1):
            print(r.stderr)
            return 1
        warm, r = timed(bc + ["validate", str(product), "--json"], env=env)
        import json
        report = json.loads(r.stdout)
        print(f"buildctl validate ({args.boards} boards): cold {cold:.2f} s, warm {warm:.2f} s "
              f"(in-process {report['seconds']:.2f} s, {len(report['findings'])} findings)")
        out = root / "kas"
        timed(bc + ["compose", str(product), "--out", str(out)], env=env)
        work = root / "kaswork"
        work.mkdir()
        kenv = dict(os.environ, KAS_WORK_DIR=str(work), HOME=str(root))
        total = 0.0
        for f in sorted(out.glob("*.yml")):
            dt, r = timed(["kas", "dump", str(f)], cwd=work, env=kenv)
            if r.returncode != 0:
                print(r.stderr)
                return 1
            total += dt
        n = len(list(out.glob("*.yml")))
        print(f"kas dump, once per board ({n} boards): total {total:.2f} s, {total / n:.2f} s per board")
        print(f"validate (warm) / kas dumps: {warm / total:.2f}  (target: validate < 2 s and faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
