"""Random statement sequences evaluated by us and by BitBake's datastore must agree."""
from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from buildctl.layers.bbconf import evaluate, parse
from tests.helpers import bb_oracle, skips

pytestmark = skips.unless(bb_oracle.available(), "BitBake's bb library cannot be imported (pip install bitbake-setup)")

VARS = ["A", "B", "C"]
KEYS = VARS + ["A:append", "B:prepend", "C:remove", "A:ov", "B:append:ov", "A:remove:ov", "C:ov"]
OPS = ["=", "?=", "??=", ":=", "+=", "=+", ".=", "=."]
VALUES = ["x", "y z", "${A}", "${B}-${C}", " w", "", "x ${C}"]

line = st.tuples(st.sampled_from(KEYS), st.sampled_from(OPS), st.sampled_from(VALUES))


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line, min_size=1, max_size=8), st.booleans())
def test_random_programs_match_bitbake(lines, with_override):
    text = 'OVERRIDES = "ov"\n' if with_override else ""
    for key, op, value in lines:
        if ":" in key and op not in ("=", ":="):
            op = "="  # BitBake warns about other operators on :append etc.; keep to what layers write
        text += f'{key} {op} "{value}"\n'
    try:
        theirs = bb_oracle.evaluate(text, VARS)
    except Exception:  # BitBake refuses self-references; nothing to compare
        assume(False)
    ours = evaluate(parse(text, "r.conf"))
    assert {v: ours.get(v) for v in VARS} == theirs, text
