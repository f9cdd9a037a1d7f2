"""Publish targets from the product manifest's ``publish:``; credentials resolved on use.

``publish.targets.<name>`` names each target (type artifactory, webdav/http or s3); the older
``publish.artifactory`` block is the target named ``artifactory``. Secrets stay SecretRefs until
a request needs them and are never part of a Target's text form or of any report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from buildctl.errors import UserError
from buildctl.refs import SecretRef  # publish imports it only here

KINDS = ("artifactory", "webdav", "http", "s3")


@dataclass(frozen=True)
class Target:
    name: str
    type: str
    url: str
    options: dict = field(default_factory=dict)  # everything but secrets
    secrets: dict[str, SecretRef] = field(default_factory=dict, repr=False)
    base: Path | None = field(default=None, repr=False)  # for relative file: references

    def secret(self, key: str) -> str | None:
        ref = self.secrets.get(key)
        if ref is None:
            return None
        return ref.resolve_bytes(self.base).decode().strip()

    def describe(self) -> dict:
        """What may be shown: no secret values, only which references are used."""
        return {"name": self.name, "type": self.type, "url": self.url, **self.options,
                "credentials": {k: str(v) for k, v in sorted(self.secrets.items())}}


def targets_of(product) -> dict[str, Target]:
    base = product.path.parent if product.path else None
    raw = dict(product.publish.targets or {})
    if product.publish.artifactory and "artifactory" not in raw:
        raw["artifactory"] = {"type": "artifactory", **product.publish.artifactory}
    out = {}
    for name, d in sorted(raw.items()):
        secrets = {k: v for k, v in d.items() if isinstance(v, SecretRef)}
        opts = {k: v for k, v in d.items() if k not in secrets and k not in ("type", "url")}
        out[name] = Target(name, d["type"], d["url"], opts, secrets, base)
    return out


def choose(targets: dict[str, Target], names: list[str], where: str) -> list[Target]:
    if not targets:
        raise UserError(f"{where}: publish: names no targets")
    if not names:
        return list(targets.values())
    unknown = [n for n in names if n not in targets]
    if unknown:
        raise UserError(f"--to {unknown[0]}: no such target in {where} "
                        f"(known: {', '.join(targets)})")
    return [targets[n] for n in dict.fromkeys(names)]
