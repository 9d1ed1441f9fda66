#!/bin/sh
# Trim a freshly debootstrapped root fs (argument 1) before it becomes the base image:
# the apt caches and lists, documentation, man pages and translations are never used in
# a node container. Changing this file changes the base image's hash (and so rebuilds it).
set -eu
root="$1"
[ -d "$root/usr" ] || { echo "base-finish: $root is not a root fs" >&2; exit 2; }
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/tmp/*
# Keep images free of the mirror used to build them.
: > "$root"/etc/apt/sources.list
rm -f "$root"/etc/apt/sources.list.d/*
