"""Roll a verified release out through a Mender server, stage by stage."""
