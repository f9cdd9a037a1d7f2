"""What ``buildctl getvar`` runs inside a board's build environment (after oe-init-build-env,
in the build directory): the values the board's own BitBake resolves, printed as one JSON line
after a marker.

This file is copied into the board's ``kas/`` directory and run there by the python3 BitBake
itself needs; it imports nothing from buildctl. It asks ``bitbake-getvar`` (one variable per
call, one BitBake server kept up for all of them) when the checked-out BitBake has it, else
parses one ``bitbake -e``.

    python3 getvar_probe.py [--recipe R] VAR...
    -> @@buildctl-getvar {"tool": "...", "values": {"VAR": "..."}, "errors": {"VAR": "..."}}
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

MARKER = "@@buildctl-getvar "
SERVER_SECONDS = "60"  # BB_SERVER_TIMEOUT: the server outlives each call, not the probe
_ENV_LINE = re.compile(r'^(?:export )?([A-Za-z0-9_][A-Za-z0-9_\-]*)="(.*)"$', re.M)


def last_error(text: str) -> str:
    """The line that says why (BitBake's ERROR lines first, else the last line)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return (errors[-1] if errors else lines[-1]) if lines else ""


def parse_env(text: str) -> dict[str, str]:
    """Top-level ``VAR="value"`` lines of ``bitbake -e`` (flags and functions left out)."""
    return {m.group(1): m.group(2).replace('\\"', '"').replace("\\$", "$")
            for m in _ENV_LINE.finditer(text)}


def with_getvar(names: list[str], recipe: str | None) -> dict:
    env = dict(os.environ, BB_SERVER_TIMEOUT=SERVER_SECONDS)
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    try:
        for name in names:
            argv = ["bitbake-getvar", "--value", name] + (["--recipe", recipe] if recipe else [])
            r = subprocess.run(argv, capture_output=True, text=True, env=env)
            if r.returncode == 0:
                values[name] = r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout
            else:
                errors[name] = last_error(r.stderr + r.stdout) or f"exit code {r.returncode}"
    finally:  # the server kept up between the calls stops now
        subprocess.run(["bitbake", "-m"], capture_output=True, env=env)
    return {"tool": "bitbake-getvar", "values": values, "errors": errors}


def with_bitbake_e(names: list[str], recipe: str | None) -> dict:
    r = subprocess.run(["bitbake", "-e", *([recipe] if recipe else [])], capture_output=True,
                       text=True)
    if r.returncode != 0:
        why = last_error(r.stdout + r.stderr) or f"bitbake -e: exit code {r.returncode}"
        return {"tool": "bitbake -e", "values": {}, "errors": {n: why for n in names}}
    env = parse_env(r.stdout)
    return {"tool": "bitbake -e",
            "values": {n: env[n] for n in names if n in env},
            "errors": {n: f"The variable '{n}' is not defined" for n in names if n not in env}}


def main(argv: list[str]) -> int:
    recipe = None
    if argv[:1] == ["--recipe"]:
        recipe, argv = argv[1], argv[2:]
    probe = with_getvar if shutil.which("bitbake-getvar") else with_bitbake_e
    result = probe(argv, recipe)
    sys.stdout.write(MARKER + json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
