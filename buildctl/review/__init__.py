"""Review what a change of the manifests changes in the builds (``buildctl diff``): per board,
the repositories that moved (with the upstream commits in between), the BitBake variables the
manifests set, boards added or removed. Not the release bundle diff (release/diff.py)."""
