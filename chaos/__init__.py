"""Faults between and on the nodes: the Toxiproxy-compatible link plane and fault schedules."""
