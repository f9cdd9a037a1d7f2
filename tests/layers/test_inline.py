"""The one inline-Python evaluator (layers/inline.py) of pre-flight and new-board's probe,
checked against BitBake's own datastore (the `bb` library) on the expressions layers write."""
from __future__ import annotations

import pytest

from buildctl.layers import bbconf
from buildctl.layers.inline import NotEvaluable, expand_inline, inline_value
from tests.helpers import bb_oracle, skips

VARS = {"F": "b c a", "EMPTY": "", "M": "rpi-4_x", "N": "8388608", "DISTRO_FEATURES": "x11 systemd"}
# what machine confs, classes and layer.confs write in ${@...}: bb.utils.* (set semantics,
# filter sorted), d.getVar (unset -> None, str() -> "None"), conditionals, builtins, methods
EXPRESSIONS = [
    "bb.utils.contains('F', 'a b', ' yes', '', d)",
    "bb.utils.contains('F', 'a z', ' yes', 'no', d)",
    "bb.utils.contains('EMPTY', '', 'y', 'n', d)",
    "bb.utils.contains('UNSET', 'a', 'y', 'n', d)",
    "bb.utils.contains_any('F', ['z', 'c'], 'y', 'n', d)",
    "bb.utils.contains_any('F', 'z q', 'y', 'n', d)",
    "bb.utils.filter('F', 'c z a', d)",
    "bb.utils.filter('DISTRO_FEATURES', 'wayland x11 systemd', d)",
    "bb.utils.filter('UNSET', 'a', d)",
    "'' if d.getVar('EXTRA') else 'growfs'",
    "d.getVar('UNSET')",
    "d.getVar('F', False)",
    "d.getVar('M').replace('-', '_').upper()",
    "['', 'rpi:']['rpi' != '']",
    "max(int(d.getVar('N')), 1024)",
    "'systemd' in d.getVar('DISTRO_FEATURES').split()",
    "d.getVar('M').startswith('rpi') and 'yes' or 'no'",
    "not d.getVar('EMPTY')",
    "'a' + d.getVar('M')",
    "len(d.getVar('F').split())",
    "' '.join(d.getVar('F').split()[:2])",
    "d.getVar('F').strip() == 'b c a'",
    "1 + 2",
]


@pytest.mark.parametrize("code", EXPRESSIONS)
def test_matches_bitbake(code):
    skips.require(bb_oracle.available(), "BitBake's bb library cannot be imported",
                  "pip install '.[test]'")
    text = "".join(f'{k} = "{v}"\n' for k, v in VARS.items()) + f'R = "<${{@{code}}}>"\n'
    theirs = bb_oracle.evaluate(text, ["R"])["R"]
    d = bbconf.Datastore(dict(VARS, R="<${@" + code + "}>"), inline=inline_value)
    assert d.get("R") == theirs, code
    assert expand_inline("<${@" + code + "}>", bbconf.Datastore(dict(VARS))) == theirs


def test_inline_values_inside_values_read_through_getvar():
    """new-board's probe reads raw values: inline parts of a variable another expression reads
    are evaluated too, in both entry points."""
    raw = {"A": "${@'x' if d.getVar('B') else 'y'}", "B": "1",
           "C": "${@d.getVar('A') + '-z'}"}
    assert expand_inline("${C}", bbconf.Datastore(dict(raw))) == "${C}"  # no ${VAR} expansion
    assert expand_inline(bbconf.Datastore(dict(raw)).get("C"), bbconf.Datastore(dict(raw))) == "x-z"
    assert bbconf.Datastore(dict(raw), inline=inline_value).get("C") == "x-z"


@pytest.mark.parametrize("code", [
    "__import__('os').system('touch {marker}')",
    "open('{marker}', 'w').write('x')",
    "os.path.join('{marker}', 'a')",
    "d.setVar('X', '{marker}')",
    "[x for x in '{marker}']",
    "(lambda: '{marker}')()",
    "d.getVar('A')",  # A refers to itself through inline Python
])
def test_anything_else_is_not_evaluated_and_never_runs(tmp_path, code):
    marker = tmp_path / "ran"
    code = code.format(marker=marker)
    d = bbconf.Datastore({"A": "${@d.getVar('A')}", "V": "${@" + code + "}x"}, inline=inline_value)
    assert inline_value(code, d) is None
    with pytest.raises(NotEvaluable):
        expand_inline("${@" + code + "}", bbconf.Datastore({"A": "${@d.getVar('A')}"}))
    if code != "d.getVar('A')":
        assert d.get("V") == "${@" + code + "}x"
    assert not marker.exists()
