#!/bin/sh
# Build the memberlist node offline, in GOPATH mode, against Debian's Go packages:
#   examples/memberlist/build.sh [OUTPUT]    (default: build/memberlist/gossipcert-memberlist)
# Needs golang-go and golang-github-hashicorp-memberlist-dev (memberlist 0.2.2 and its
# dependencies under /usr/share/gocode). Exit 3 when either is missing, 1 when the build fails.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-"$repo/build/memberlist/gossipcert-memberlist"}
gocode=/usr/share/gocode

if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: go is not installed (Debian package: golang-go)" >&2
    exit 3
fi
if [ ! -f "$gocode/src/github.com/hashicorp/memberlist/memberlist.go" ]; then
    echo "build.sh: HashiCorp memberlist is not under $gocode/src" \
         "(Debian package: golang-github-hashicorp-memberlist-dev)" >&2
    exit 3
fi

case "$out" in /*) ;; *) out="$(pwd)/$out" ;; esac
mkdir -p "$(dirname "$out")"
work="$repo/build/memberlist"
mkdir -p "$work/gopath" "$work/cache"
# GOPATH mode, no network: every import resolves under Debian's gocode tree.
cd "$here"
GO111MODULE=off GOPATH="$work/gopath:$gocode" GOCACHE="$work/cache" GOFLAGS= GOPROXY=off \
    go build -o "$out" .
echo "built $out"
