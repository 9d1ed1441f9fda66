"""The command line and the pytest plugin: thin entry points over the run pipeline."""
