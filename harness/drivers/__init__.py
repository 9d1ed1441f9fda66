"""What touches the outside world: nodes on backends, their control API, the fault
planes, the host the harness runs on."""
