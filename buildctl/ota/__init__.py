"""Over-the-air update artifacts (Mender), independent of the command line."""
