"""Fixture builders shared by every test directory (layers, repos, manifests)."""
