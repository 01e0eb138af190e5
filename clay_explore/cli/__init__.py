"""The `clay-explore` command line: one module per stage, each a thin wrapper over the library."""
