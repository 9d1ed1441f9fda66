"""HashiCorp Serf (memberlist) behind the v1 control contract."""
