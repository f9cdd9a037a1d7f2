"""One module per verb; see buildctl.cli."""
