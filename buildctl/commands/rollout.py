"""Roll a release out through a Mender server in stages, or show how the last one went.

  buildctl rollout RELEASE_DIR --server URL (--token REF | --user NAME --password REF)
                   --stages canary:group=canary,field:group=field
                   [--success 100%] [--max-failures 1] [--timeout 2h] [--json]
  buildctl rollout status [--json]

RELEASE_DIR is a bundle written by `buildctl release`; it is verified first, and refused
when a board's image did not pass `buildctl test` (unless --untested, or --untested-board B
for that board). Every board's
.mender is uploaded (an artifact already on the server with the same payload checksums is not
sent again) and found in the server's listing before any deployment starts. Then each stage's
static group gets its deployment; the next stage starts once the success threshold is reached.
When failures exceed --max-failures (or a stage ends below the threshold, or --timeout passes)
the running deployment is aborted and later stages never start.
Credentials are references only: env:NAME or file:PATH (a personal access token, or the
password for a user login); they are never printed. The run is recorded in --state
(default .buildctl/rollout.json) for `rollout status`.
Exit codes: 0 every stage succeeded, 1 the rollout stopped or the server failed, 2 usage.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from buildctl.commands._common import add_json_flag, console, print_json
from buildctl.commands.test import add_untested_flags, untested_of
from buildctl.errors import UserError

DEFAULT_STATE = Path(".buildctl/rollout.json")


def register(subparsers) -> None:
    p = subparsers.add_parser("rollout", help="staged Mender rollout of a release; `rollout status`",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="RELEASE_DIR|status")
    p.add_argument("--product", type=Path, metavar="FILE",
                   help="product manifest whose publish.mender gives --server and --token defaults")
    p.add_argument("--server", metavar="URL", help="Mender server base URL")
    p.add_argument("--token", metavar="REF", help="personal access token or JWT: env:NAME or file:PATH")
    p.add_argument("--user", metavar="NAME", help="log in as this user (with --password)")
    p.add_argument("--password", metavar="REF", help="the user's password: env:NAME or file:PATH")
    p.add_argument("--stages", metavar="SPEC", help="NAME:group=GROUP[,NAME:group=GROUP...]")
    p.add_argument("--success", default="100%", help="share of a stage's devices that must "
                   "succeed before the next stage (default 100%%)")
    p.add_argument("--max-failures", type=int, default=1, metavar="N",
                   help="stop when more than N devices failed (default 1)")
    p.add_argument("--timeout", default="2h", help="give up (and abort) after this long (default 2h)")
    p.add_argument("--poll", default="2s", help="statistics poll interval (default 2s)")
    p.add_argument("--key", metavar="PUB", help="public key the release's provenance must be signed with")
    add_untested_flags(p, "roll out")
    p.add_argument("--state", type=Path, default=DEFAULT_STATE, metavar="FILE",
                   help=f"where the run is recorded (default {DEFAULT_STATE})")
    add_json_flag(p)
    p.set_defaults(func=run)


def _ref(text: str | None, flag: str) -> str | None:
    from buildctl.secrets import SecretRef

    if text is None:
        return None
    if not SecretRef.is_ref(text):
        raise UserError(f"{flag}: give a reference (env:NAME or file:PATH), not the secret itself")
    return SecretRef.parse(text).resolve_bytes().decode().strip()


def _api(server: str, refs: dict):
    from buildctl.rollout.mender_api import Credentials, MenderAPI

    if not server or not server.startswith(("http://", "https://")):
        raise UserError("--server: a http:// or https:// URL is needed")
    if refs.get("token"):
        creds = Credentials(token=_ref(refs["token"], "--token"))
    elif refs.get("user") and refs.get("password"):
        creds = Credentials(user=refs["user"], password=_ref(refs["password"], "--password"))
    else:
        raise UserError("give --token REF, or --user NAME and --password REF")
    return MenderAPI(server, creds)


def _product_defaults(args) -> tuple[str | None, str | None]:
    """--server and --token, else the product's publish.mender (url, token reference)."""
    server, token = args.server, args.token
    if args.product is not None:
        from buildctl.manifest import load_product

        from buildctl.compose.verifykey import absolute_ref

        product = load_product(args.product)
        mender = product.publish.mender or {}
        server = server or mender.get("url")
        if token is None and not args.user and mender.get("token") is not None:
            token = absolute_ref(product, mender["token"])  # file: relative to the manifest
    return server, token


def run(args) -> int:
    if args.target == "status" and not Path("status").is_dir():
        return run_status(args)
    from buildctl.rollout.drive import drive
    from buildctl.rollout.stages import Thresholds, parse_duration, parse_percent, parse_stages
    from buildctl.rollout.status import save_state

    bundle = Path(args.target)
    if not bundle.is_dir():
        raise UserError(f"{bundle}: not a directory")
    if not args.stages:
        raise UserError("--stages: required (e.g. canary:group=canary,field:group=field)")
    if args.max_failures < 0:
        raise UserError("--max-failures: must be 0 or more")
    stages = parse_stages(args.stages)
    th = Thresholds(parse_percent(args.success), args.max_failures,
                    parse_duration(args.timeout), parse_duration(args.poll, "--poll"))
    server, token = _product_defaults(args)
    refs = {"token": token, "user": args.user, "password": args.password}
    api = _api(server, refs)
    saved = {"server": server, **refs}
    result = drive(api, bundle, stages, th, public_key=args.key, untested=untested_of(args),
                   save=lambda r: save_state(args.state, r.to_dict(), saved))
    if args.json:
        print_json(result.to_dict())
    else:
        con = console()
        for u in result.uploads:
            con.print(f"artifact {u['name']} ({', '.join(u['device_types'])}): {u['action']}")
        for st in result.stages:
            con.print(f"stage {st.name} (group {st.group}): {st.state}; {st.success} succeeded, "
                      f"{st.failure} failed of {st.devices}")
        con.print("rollout complete" if result.ok else f"rollout stopped: {result.error}")
    return 0 if result.ok else 1


def run_status(args) -> int:
    from buildctl.rollout.status import load_state, status

    state = load_state(args.state)
    refs = state.get("credentials") or {}
    api = _api(refs.get("server"), refs)
    view = status(api, state)
    if args.json:
        print_json(view)
        return 0
    con = console()
    con.print(f"{view['release']} on {view['server']}: "
              + ("complete" if view["ok"] else f"stopped: {view['error']}"))
    for st in view["stages"]:
        con.print(f"stage {st['name']} (group {st['group']}): {st['state']}")
        for d in st["devices"]:
            sub = f" ({d['substate']})" if d["substate"] else ""
            con.print(f"  {d['id']}: {d['status']}{sub}")
            for line in (d.get("log") or "").splitlines():
                con.print(f"    | {line}")
    return 0
