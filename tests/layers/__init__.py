"""Tests of buildctl.layers (a package, so its test module names cannot clash with other parts)."""
