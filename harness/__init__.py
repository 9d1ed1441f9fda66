"""Runs clusters of gossip implementations, records histories and checks requirements."""

__version__ = "0.1.0"
