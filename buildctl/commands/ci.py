"""Generate the CI pipeline of a product, or check that the committed one is current.

  buildctl ci generate PRODUCT --provider jenkins|github|gitlab [--out FILE]
  buildctl ci check PRODUCT --provider P --file FILE

One build job per board x variant (a board sharing its CPU tune with an earlier one waits for
it, as a local build does), then for the default variant a device test per board (`buildctl
test`: QEMU on the runner for emulated boards; real boards in a LAVA lab with --lava URL and
--lava-images BASE, the URL the lab fetches out/<product>/ from), release, publish and a staged
rollout with a manual approval before the field stage. Boards no test covers are released
with --untested-board, named in the pipeline. The builder image is pinned, secrets come
from the provider's store under the names the manifest's env:/file: references give, and no
job stops the others when it fails. The output depends only on its inputs: `ci check` exits 1
when FILE differs from what `ci generate` writes now.
"""
from __future__ import annotations

import argparse
import sys

from buildctl.commands._common import path_arg


def register(subparsers) -> None:
    p = subparsers.add_parser("ci", help="generate or check a CI pipeline (Jenkins, GitHub, GitLab)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="ci_cmd", metavar="ACTION")
    sub.required = True
    g = sub.add_parser("generate", help="write the pipeline", description=__doc__)
    c = sub.add_parser("check", help="exit 1 when the committed pipeline is stale",
                       description=__doc__)
    for q in (g, c):
        q.add_argument("product", type=path_arg, help="product manifest (products/<name>.yml)")
        q.add_argument("--provider", required=True, choices=("jenkins", "github", "gitlab"))
        q.add_argument("--variant", action="append", metavar="V",
                       help="build only this variant (repeatable; default: every variant)")
        q.add_argument("--image", metavar="REF", help="builder image (default: the product's, "
                       "else the tag `buildctl container build` makes)")
        q.add_argument("--rollout-token", metavar="REF", help="Mender management token for "
                       "the rollout stages, env:NAME or file:PATH (default env:MENDER_PAT)")
        q.add_argument("--lava", metavar="URL", help="LAVA lab that tests the real boards")
        q.add_argument("--lava-images", metavar="URL",
                       help="base URL the lab fetches out/<product>/ from (with --lava)")
        q.add_argument("--lava-token", metavar="REF",
                       help="LAVA API token, env:NAME or file:PATH (default env:LAVA_TOKEN)")
    g.add_argument("--out", type=path_arg, metavar="FILE", help="write here (default: stdout)")
    c.add_argument("--file", type=path_arg, required=True, metavar="FILE",
                   help="the committed pipeline")
    g.set_defaults(func=run_generate)
    c.set_defaults(func=run_check)


def _text(args) -> str:
    from buildctl.ci.plan import builder_image, plan_pipeline
    from buildctl.ci.render import render
    from buildctl.commands._product import open_product

    product = open_product(args)
    pipeline = plan_pipeline(product, builder_image(product, args.image),
                             variants=args.variant, rollout_token=args.rollout_token,
                             lava_url=args.lava, lava_images=args.lava_images,
                             lava_token=args.lava_token)
    opts = "".join(f" --variant {v}" for v in args.variant or []) + \
        (f" --image {args.image}" if args.image else "") + \
        (f" --rollout-token {args.rollout_token}" if args.rollout_token else "") + \
        "".join(f" --{k.replace('_', '-')} {v}" for k, v in
                (("lava", args.lava), ("lava_images", args.lava_images),
                 ("lava_token", args.lava_token)) if v)
    return render(pipeline, args.provider,
                  generated_by=f"buildctl ci generate {pipeline.manifest} "
                               f"--provider {args.provider}{opts}")


def run_generate(args) -> int:
    from buildctl.fsutil import write_atomic

    text = _text(args)
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_atomic(args.out, text)
    return 0


def run_check(args) -> int:
    from buildctl.errors import EXIT_PROBLEMS, UserError

    want = _text(args)
    try:
        have = args.file.read_text()
    except FileNotFoundError:
        raise UserError(f"{args.file}: no such file (write it with `buildctl ci generate`)") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{args.file}: cannot read: {getattr(exc, 'strerror', None) or exc}") \
            from None
    if have == want:
        print(f"ok {args.file} matches {args.product}")
        return 0
    line = next((i for i, (a, b) in enumerate(zip(have.splitlines(), want.splitlines()), 1)
                 if a != b), min(len(have.splitlines()), len(want.splitlines())) + 1)
    print(f"{args.file}:{line}: stale: differs from what `buildctl ci generate` writes now "
          f"(regenerate it)", file=sys.stderr)
    return EXIT_PROBLEMS
