"""Faults between and on the nodes: the link plane (a Toxiproxy-compatible server, its
client, and a run's proxies), the iptables packet plane, the swarm's fault agent, fault
schedules; and what the harness shares with them: one JSON-over-HTTP client, run labels,
child processes that die with the harness. Nothing here imports ``harness``."""
