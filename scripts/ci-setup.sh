#!/bin/sh
# Install and start what the Docker backend, the packet plane and the report tests need:
# a Docker engine, iptables, debootstrap (the offline base image), serf (a UDP gossiper to
# fault), iproute2 (network namespaces), chromium (renders report.html headless) and
# docker-registry (the swarm backend's in-swarm image registry), what the quickstart
# test needs to run as a plain user (passwd, git, procps), and Go with HashiCorp memberlist
# (golang-go, golang-github-hashicorp-memberlist-dev) for the Go examples.
# Idempotent: installs only what is missing and starts dockerd only when none answers.
set -eu

missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v iptables >/dev/null 2>&1 || missing="$missing iptables"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
command -v serf >/dev/null 2>&1 || missing="$missing serf"
command -v nsenter >/dev/null 2>&1 || missing="$missing util-linux"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
# The swarm backend's image registry (a run's images reach every swarm node through it).
command -v docker-registry >/dev/null 2>&1 || missing="$missing docker-registry"
command -v unshare >/dev/null 2>&1 || missing="$missing util-linux"
# The quickstart test: an unprivileged account (useradd), switching to it (runuser), a
# fresh clone (git), and a look for what its processes left (pgrep).
command -v useradd >/dev/null 2>&1 || missing="$missing passwd"
command -v runuser >/dev/null 2>&1 || missing="$missing util-linux"
command -v git >/dev/null 2>&1 || missing="$missing git"
command -v pgrep >/dev/null 2>&1 || missing="$missing procps"
# The Go examples (examples/memberlist, examples/go-skeleton), built offline in GOPATH mode.
command -v go >/dev/null 2>&1 || missing="$missing golang-go"
[ -f /usr/share/gocode/src/github.com/hashicorp/memberlist/memberlist.go ] \
    || missing="$missing golang-github-hashicorp-memberlist-dev"
if [ -n "$missing" ]; then
    echo "ci-setup: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt run to finish rather than fail on its lock.
    apt_opts="-qq -o DPkg::Lock::Timeout=600"
    # shellcheck disable=SC2086
    apt-get $apt_opts update
    # shellcheck disable=SC2086
    apt-get $apt_opts install -y --no-install-recommends $missing >/dev/null
fi

if docker info >/dev/null 2>&1; then
    echo "ci-setup: a Docker engine answers"
    exit 0
fi

log="${GOSSIPCERT_DOCKERD_LOG:-/var/log/gossipcert-dockerd.log}"
echo "ci-setup: starting dockerd (log: $log)"
nohup dockerd >"$log" 2>&1 </dev/null &
i=0
while ! docker info >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 60 ]; then
        echo "ci-setup: dockerd did not answer within 60 s; the end of its log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    sleep 1
done
echo "ci-setup: dockerd is up after ${i} s"
