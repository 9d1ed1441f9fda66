#!/bin/sh
# `gossipcert` in the harness image: the CLI, wrapped so that what a run as root writes
# under the working directory (a mounted checkout) goes to that directory's owner.
exec python3 -m gossipcert.harness.commands.container "$@"
