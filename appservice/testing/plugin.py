"""pytest plugin: fixtures that start a real Synapse (filled in by the testing module)."""
