"""Check what this host needs for `buildctl build`, without changing anything.

Checks the container engine (and your access to it), the builder image, disk space and the
cache directories, user namespaces and host tools. With --product (default:
products/demo.yml when it exists) also: every repository the product fetches (private ones
with your SSH agent, known_hosts and the credentials: tokens, as the build's checkout uses
them; an unreachable one is named in one line with git's reason) and the Debian
mirror the builder image comes from are reachable, the product's signing key loads, and every
env:/file: secret the product names is there. --offline skips the network checks. Nothing is
written. Exit 1 when an error-level check fails (warnings alone exit 0); each failure comes
with what to run to fix it.
"""
from __future__ import annotations

from pathlib import Path

from buildctl.commands._common import add_json_flag, console, path_arg, print_json

DEFAULT_PRODUCT = Path("products/demo.yml")


def register(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="check this host for building (changes nothing)",
                              description=__doc__)
    p.add_argument("--runtime", choices=("docker", "podman", "host"),
                   help="where builds run (default: the product's runtime, else docker)")
    p.add_argument("--product", type=path_arg,
                   help=f"also check this product's repositories, key and secrets "
                        f"(default: {DEFAULT_PRODUCT} when it exists)")
    p.add_argument("--offline", action="store_true",
                   help="skip the network checks (repositories, Debian mirror)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from buildctl.builder import doctor
    from buildctl.builder.caches import settings_from_manifest

    settings = args.settings
    path = args.product or (DEFAULT_PRODUCT if DEFAULT_PRODUCT.is_file() else None)
    product = None
    if path is not None:
        from buildctl.manifest import load_product

        product = load_product(path)  # a broken product is bad input: one line, exit 2
    runtime = args.runtime or (product.runtime if product else None) or "docker"
    image = (product.container_image if product else None) or _default_image(runtime)
    caches = settings_from_manifest(product.cache if product else None,
                                    base=path.resolve().parent if path else None,
                                    root=settings.cache_root)
    checks = doctor.run_checks(caches, runtime, image,
                               docker_host=os.environ.get("DOCKER_HOST"))
    if product is not None:
        checks += _product_checks(product, path, runtime, args.offline, doctor, settings,
                                  args.settings.pkcs11_module)
    failed = [c for c in checks if not c.ok and c.severity == "error"]
    if args.json:
        print_json({"ok": not failed, "product": str(path) if path else None,
                    "checks": [c.to_dict() for c in checks]})
    else:
        from rich.markup import escape

        con = console()
        for c in checks:
            mark = "[green]ok[/]" if c.ok else ("[red]FAIL[/]" if c.severity == "error"
                                                 else "[yellow]warn[/]")
            con.print(f"{mark:>14} {escape(c.name):<24} {escape(c.detail)}")
            if c.advice and not c.ok:
                con.print(f"{'':>5} {'':<24} [dim]fix:[/] {escape(c.advice)}")
    return 1 if failed else 0


def _default_image(runtime: str) -> str | None:
    if runtime == "host":
        return None
    from buildctl.builder.api import default_image

    return default_image()


def _product_checks(product, path: Path, runtime: str, offline: bool, doctor, settings=None,
                    pkcs11_module: str | None = None) -> list:
    import os

    from buildctl.commands._product import git_auth

    from buildctl.manifest.yamlsrc import load as load_yaml

    data, _ = load_yaml(path)
    checks = doctor.check_secrets(list(doctor.secret_refs(data)), path.resolve().parent,
                                  dict(os.environ), pkcs11_module=pkcs11_module)
    if offline:
        return checks
    auth = git_auth(product, settings)
    urls = {name: r.url for name, r in product.repos.items() if r.url}
    for board in product.boards.values():
        urls.update({name: r.url for name, r in board.repos.items() if r.url})
    mirror = None
    if runtime != "host":
        from buildctl.builder.image import SUITE, debian_mirror
        from buildctl.errors import UserError

        try:
            mirror = debian_mirror()
        except UserError as exc:
            checks.append(doctor.Check("debian-mirror", False, str(exc), "warning",
                                       advice="buildctl container build --mirror URL"))
        return checks + doctor.check_network(urls, mirror, SUITE, auth)
    return checks + doctor.check_network(urls, None, "", auth)
