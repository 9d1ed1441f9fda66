"""The gossipcert reference gossip node: a sans-IO core with an asyncio runtime."""

__version__ = "0.1.0"
