"""Runs clusters of gossip implementations, records histories and checks requirements."""
