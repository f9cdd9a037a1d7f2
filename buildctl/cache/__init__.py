"""Caches shared between CI runners: BitBake's hash-equivalence server, the sstate figures of
finished builds, and pushing new sstate objects to a mirror."""
