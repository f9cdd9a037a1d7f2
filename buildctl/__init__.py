"""buildctl: declarative manifests to shipped Yocto/Mender releases."""

__version__ = "0.1.0"
