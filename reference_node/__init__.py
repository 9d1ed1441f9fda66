"""The gossipcert reference gossip node: a sans-IO core with an asyncio runtime."""
