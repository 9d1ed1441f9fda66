"""A run from its description to its record: the one pipeline and the commands that loop over it."""
