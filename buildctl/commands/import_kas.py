"""Turn existing kas board files (with their includes) into buildctl manifests.

Writes OUT/products/<name>.yml and OUT/machines/<board>.yml (one per kas file; the board is
named after the file). What every file shares becomes the product; local.conf lines map to
typed fields where buildctl has one. Composing the result gives kas files equivalent to the
originals. Nothing is written when any file cannot be imported.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from buildctl.commands._common import add_json_flag, console, path_arg, print_json
from buildctl.fsutil import write_atomic
from buildctl.errors import UserError
from buildctl.importers.kas import import_files


def register(sub) -> None:
    p = sub.add_parser("import-kas", help="convert kas board files into buildctl manifests",
                       description=__doc__)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="kas board files")
    p.add_argument("--out", type=path_arg, default=Path("."), help="where products/ and machines/ go")
    p.add_argument("--product", default="imported", help="product name (default: imported)")
    p.add_argument("--series", help="release series (default: guessed from the branches)")
    p.add_argument("--force", action="store_true", help="overwrite existing manifests")
    add_json_flag(p)
    p.set_defaults(func=run)


class _Dumper(yaml.SafeDumper):
    pass


def _flow_refs(dumper, data):
    # refs entries ({branch, commit}) read best on one line
    if set(data) <= {"branch", "tag", "commit"} or set(data) <= {"op", "value"}:
        return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
    return dumper.represent_mapping("tag:yaml.org,2002:map", data)


_Dumper.add_representer(dict, _flow_refs)


IMPORT_MARK = "# kas: "  # end-of-line comment naming the kas file:line a value came from


def _dump(data: dict, header: str, origins: dict[tuple, str] | None = None,
          base: Path | None = None) -> str:
    """The manifest as YAML; each line a kas value produced ends with `# kas: file:line`
    (the path relative to the manifest's directory), which validate reads back."""
    import os

    from buildctl.manifest.yamlsrc import loads

    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100)
    if origins and base is not None:
        _, smap = loads(body, base / "manifest.yml")
        lines = body.splitlines()
        marks: dict[int, str] = {}
        for kp, origin in sorted(origins.items(), key=lambda x: len(x[0])):
            line = smap.lines.get(tuple(kp))
            if not line or not origin:
                continue
            file, _, num = origin.rpartition(":")
            if not num.isdigit():
                file, num = origin, ""
            rel = os.path.relpath(os.path.abspath(file), os.path.abspath(base))
            marks[line] = f"{rel}:{num}" if num else rel
        for line, mark in marks.items():
            if "#" not in lines[line - 1] and not lines[line - 1].rstrip().endswith("|"):
                lines[line - 1] = f"{lines[line - 1]}  {IMPORT_MARK}{mark}"
        body = "\n".join(lines) + "\n"
    return header + body


def _inside(out: Path, path: Path) -> Path:
    """path, refused unless it stays inside out (symbolic links followed)."""
    real_out = out.resolve()
    real = path.resolve()
    if not real.is_relative_to(real_out):
        raise UserError(f"{path}: would be written outside --out {out}")
    return path


def _check_outputs(imp, files: list[Path]) -> None:
    """What import writes must load again: a value kas accepted but a manifest cannot hold
    (a machine name with a newline...) is refused here, naming the kas file, before writing."""
    from buildctl.errors import ManifestError
    from buildctl.manifest import schema
    from buildctl.manifest.yamlsrc import SourceMap

    source_of = {f.stem: f for f in files}
    items = [(imp.product, "product", files[0])]
    items += [(b, "board", source_of.get(name, files[0])) for name, b in imp.boards.items()]
    for data, kind, source in items:
        try:
            schema.validate(data, kind, SourceMap(Path(source)))
        except ManifestError as exc:
            what = f"{exc.field}: " if exc.field else ""
            raise UserError(f"{source}: cannot import: {what}{exc.message}") from None


def run(args) -> int:
    imp = import_files(args.files, product_name=args.product, out_dir=args.out, series=args.series)
    outputs = {_inside(args.out, args.out / "products" / f"{args.product}.yml"): (imp.product, "product")}
    for name, board in imp.boards.items():
        outputs[_inside(args.out, args.out / "machines" / f"{name}.yml")] = (board, name)
    _check_outputs(imp, args.files)
    existing = [p for p in outputs if p.exists()]
    if existing and not args.force:
        raise UserError(f"{existing[0]}: exists (use --force to overwrite)")
    sources = ", ".join(str(f) for f in args.files)
    texts = {path: _dump(data, f"# Imported by buildctl import-kas from {sources}\n",
                         imp.origins.get(key), path.parent)
             for path, (data, key) in outputs.items()}
    for path, text in texts.items():  # every text is ready before the first file is written
        write_atomic(path, text)
    if args.json:
        print_json({"written": [str(p) for p in outputs], "notes": imp.notes})
    else:
        con = console()
        for p in outputs:
            con.print(f"[green]wrote[/] {p}")
        for n in imp.notes:
            con.print(f"[yellow]note[/] {n}")
    return 0
