"""Test harness for bridge authors: a real Synapse homeserver on loopback, as a pytest plugin."""
