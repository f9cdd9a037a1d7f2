"""Pre-flight checks: find in seconds what bitbake would find after hours."""
