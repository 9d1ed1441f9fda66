"""Any Maelstrom node binary behind the v1 control contract."""
