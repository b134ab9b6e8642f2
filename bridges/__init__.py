"""Bridges built on the appservice toolkit, using only its public API."""
