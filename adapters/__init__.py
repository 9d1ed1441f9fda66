"""Bridges that put third-party gossip systems behind the v1 control contract.

Each folder holds one system's manifest and the small bridge process its launch command
starts. A bridge owns no protocol logic: what it reports is what the system under test
said. Bridges import nothing of the harness; they run as separate processes.
"""
