"""Tests of buildctl.layers (package so test module names cannot clash with other parts\x27)."""
