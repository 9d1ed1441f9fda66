#!/bin/sh
# Type-check gossipcert as it installs: the top-level folders are the subpackages of one
# package, gossipcert (pyproject.toml's package-dir), so mypy reads them through a tree
# of links named that way (build/typecheck/gossipcert/<folder> -> ../../../<folder>).
set -eu
cd "$(dirname "$0")/.."
tree=build/typecheck/gossipcert
mkdir -p "$tree"
for package in harness reference_node chaos reports specs adapters; do
    ln -sfn "../../../$package" "$tree/$package"
done
cd build/typecheck
exec ../../.venv/bin/mypy --config-file ../../pyproject.toml --cache-dir ../../.mypy_cache -p gossipcert
