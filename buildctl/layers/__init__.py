"""Pre-flight layer checks: read layers' configuration from git at pinned commits and report
what BitBake would stop on, for every board at once.

    from buildctl.layers import LayerRef, read_layers, check_stack, check_assignments

    infos = read_layers([LayerRef(repo_path, commit, "meta", "openembedded-core"), ...])
    findings = check_stack("rpi4", infos, series="scarthgap", machine="raspberrypi4-64",
                           distro="poky", bootloader="u-boot")

Modules: bbconf (BitBake syntax: parse + evaluate), gitfs (buildctl's one git access layer:
git commands, trees at a commit or a local work tree, cached), layerinfo (what one layer
declares), checks (findings for one board's stack), settings (a board's base configuration
evaluated from its layers, e.g. meta-mender's defaults), inline (the inline-Python subset
layers use, evaluated without running code; shared with new-board's probe).
"""
from buildctl.layers.bbconf import ConfSyntaxError, Statement, evaluate, parse
from buildctl.layers.checks import check_assignments, check_stack
from buildctl.layers.gitfs import GitFS, GitReadError, open_tree
from buildctl.layers.layerinfo import LayerInfo, LayerRef, read_layer, read_layers

__all__ = [
    "ConfSyntaxError",
    "Statement",
    "parse",
    "evaluate",
    "GitFS",
    "GitReadError",
    "open_tree",
    "LayerInfo",
    "LayerRef",
    "read_layer",
    "read_layers",
    "check_stack",
    "check_assignments",
]
