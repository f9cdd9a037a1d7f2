"""A review as text for a terminal or as Markdown for a release note, from
``templates/<format>.j2`` (the JSON form is ``Review.to_dict``)."""
from __future__ import annotations

from pathlib import Path

import jinja2

from buildctl.review.changes import ALL, Review

TEMPLATES = Path(__file__).parent / "templates"


def _md(text) -> str:
    """Text inside Markdown: no accidental emphasis, links or table breaks."""
    out = str(text)
    for ch in "\\`*_[]<>|":
        out = out.replace(ch, "\\" + ch)
    return out


def _boards(names: list[str], review: Review) -> str:
    every = [b.board for b in review.boards if b.status not in ("added", "removed")]
    if names == [ALL] or (len(every) > 1 and sorted(names) == sorted(every)):
        return "all boards"
    return ", ".join(names)


def render(review: Review, fmt: str) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters.update(md=_md, short=lambda c: str(c)[:12])
    changed_vars = [b for b in review.boards if b.variables]
    repo_edits = [b for b in review.boards if b.repos_added or b.repos_removed]
    return env.get_template(f"{fmt}.j2").render(
        r=review, moves=[(m, _boards(bs, review)) for m, bs in review.moves()],
        changed_vars=changed_vars, repo_edits=repo_edits, ALL=ALL)
