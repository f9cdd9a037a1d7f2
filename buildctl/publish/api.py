"""Publish a verified bundle to the product's targets: verify -> plan -> each target in turn.

A bundle that does not pass ``release verify`` sends nothing, nor does one holding a board
whose image did not pass its device test (``buildctl test``; unless untested=True, the CLI's
--untested; a set of board names lets only those through). Targets are independent: one
that fails is reported with its error and the others still run; the result says which.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from buildctl.errors import ProblemsFound, UserError
from buildctl.publish.http import Client, PublishError, RetryPolicy
from buildctl.publish.plan import Plan, load_plan
from buildctl.publish.report import TargetReport
from buildctl.publish.targets import Target


@dataclass
class PublishResult:
    bundle: str
    product: str
    version: str
    dry_run: bool
    targets: list[TargetReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.targets)

    def to_dict(self) -> dict:
        return {"bundle": self.bundle, "product": self.product, "version": self.version,
                "dry_run": self.dry_run, "ok": self.ok,
                "targets": [t.to_dict() for t in self.targets]}


def _module(kind: str):
    if kind == "artifactory":
        from buildctl.publish import artifactory as m
    elif kind in ("webdav", "http"):
        from buildctl.publish import webdav as m
    elif kind == "s3":
        from buildctl.publish import s3 as m
    else:
        raise UserError(f"publish target type {kind!r} is not known")
    return m


def verified_plan(bundle: Path, public_key: str | None = None, *, sboms: bool = True) -> Plan:
    from buildctl.release.verify import verify_bundle

    res = verify_bundle(bundle, public_key, sboms=sboms)
    if not res.ok:
        raise ProblemsFound(f"{bundle}: release verify failed, nothing sent: {res.problem}")
    return load_plan(bundle)


def publish(bundle: Path, targets: list[Target], *, dry_run: bool = False,
            public_key: str | None = None, policy: RetryPolicy | None = None,
            verify_sboms: bool = True,
            untested: bool | frozenset[str] = False) -> PublishResult:
    """verify_sboms=False skips only the SBOM validators (sums and signature are checked)."""
    from buildctl.devtest.report import bundle_boards, require_tested

    plan = verified_plan(bundle, public_key, sboms=verify_sboms)
    # the bundle verified, so its test reports are the ones release put there
    require_tested(bundle_boards(bundle), untested=untested, action="publish")
    result = PublishResult(str(bundle), plan.product, plan.version, dry_run)
    for t in targets:
        client = Client(policy)
        try:
            rep = _module(t.type).publish(t, plan, client, dry_run=dry_run)
        except PublishError as exc:
            rep = TargetReport(t.name, t.type, t.url, error=str(exc))
        except UserError as exc:  # e.g. a secret reference that does not resolve
            rep = TargetReport(t.name, t.type, t.url, error=str(exc))
        finally:
            client.close()
        rep.retries, rep.events = client.stats.retries, client.stats.events
        result.targets.append(rep)
    return result
