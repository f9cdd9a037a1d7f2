"""Importers: existing project descriptions (kas files) to buildctl manifests."""
