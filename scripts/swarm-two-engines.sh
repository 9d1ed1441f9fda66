#!/bin/sh
# A two-engine Docker Swarm on one machine, for the swarm backend's tests:
#
#   sh scripts/swarm-two-engines.sh up     # prints DOCKER_HOST of the second engine
#   sh scripts/swarm-two-engines.sh down
#   sh scripts/swarm-two-engines.sh status
#
# `up` makes a network namespace joined to the host by a veth pair, starts a second
# dockerd in it (its own data root, exec root, sockets and pidfile, iptables on), makes
# the main engine a swarm manager advertising the host end of the veth (`docker swarm
# init`, only when it is in no swarm yet) and joins the second engine as a worker. The
# second dockerd also runs in a mount namespace of its own in which /run is its own
# tmpfs and /var/lib/docker its own data root: a container it runs that bind-mounts
# /var/run/docker.sock or /var/run/docker/netns (the swarm backend's fault agent) sees
# that engine's, as it would on a machine of its own.
#
# `down` takes the worker out of the swarm, stops its dockerd, removes the namespace,
# and leaves the main engine's swarm as `up` found it (it leaves the swarm only when `up`
# created it). The second engine's data root is kept (its image cache) unless
# GOSSIPCERT_SWARM2_PURGE=1.
set -eu

NS="${GOSSIPCERT_SWARM2_NS:-gossipcert-sw2}"
ROOT="${GOSSIPCERT_SWARM2_ROOT:-/var/lib/gossipcert-swarm2}"
HOST_IF=gcsw2h
NS_IF=gcsw2n
HOST_IP=10.231.77.1
NS_IP=10.231.77.2
SOCK="$ROOT/docker.sock"
E2="docker -H unix://$SOCK"

log() { echo "swarm-two-engines: $*" >&2; }

swarm_state() {  # the main engine's LocalNodeState: inactive, active, ...
    docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown
}

engine2_pid() {
    [ -f "$ROOT/dockerd.pid" ] && kill -0 "$(cat "$ROOT/dockerd.pid")" 2>/dev/null \
        && cat "$ROOT/dockerd.pid"
}

up() {
    command -v dockerd >/dev/null || { log "dockerd is not installed"; exit 1; }
    docker info >/dev/null 2>&1 || { log "the main Docker engine does not answer"; exit 1; }
    mkdir -p "$ROOT/data"
    if ! ip netns list | grep -qw "$NS"; then
        ip netns add "$NS"
    fi
    if ! ip link show "$HOST_IF" >/dev/null 2>&1; then
        ip link add "$HOST_IF" type veth peer name "$NS_IF"
        ip link set "$NS_IF" netns "$NS"
        ip addr add "$HOST_IP/30" dev "$HOST_IF"
        ip link set "$HOST_IF" up
        ip netns exec "$NS" ip addr add "$NS_IP/30" dev "$NS_IF"
        ip netns exec "$NS" ip link set "$NS_IF" up
        ip netns exec "$NS" ip link set lo up
        ip netns exec "$NS" ip route add default via "$HOST_IP"
    fi
    if [ -z "$(engine2_pid || true)" ]; then
        log "starting the second dockerd (log: $ROOT/dockerd.log)"
        # nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup
        # hierarchy dockerd needs.
        nsenter --net="/run/netns/$NS" unshare --mount --propagation private sh -c "
            mount -t tmpfs -o mode=755 tmpfs /run &&
            mount --bind '$ROOT/data' /var/lib/docker &&
            exec dockerd -H unix:///run/docker.sock -H 'unix://$SOCK' \
                --pidfile /run/docker.pid --cgroup-parent /gossipcert-swarm2 \
                --iptables=true --bip 172.31.250.1/24 \
                --insecure-registry $HOST_IP/32
        " >"$ROOT/dockerd.log" 2>&1 </dev/null &
        echo $! >"$ROOT/dockerd.pid"
        i=0
        while ! $E2 info >/dev/null 2>&1; do
            i=$((i + 1))
            if [ "$i" -gt 60 ] || [ -z "$(engine2_pid || true)" ]; then
                log "the second dockerd did not answer; the end of its log:"
                tail -n 20 "$ROOT/dockerd.log" >&2
                exit 1
            fi
            sleep 1
        done
    fi
    case "$(swarm_state)" in
        inactive)
            log "docker swarm init --advertise-addr $HOST_IP on the main engine"
            docker swarm init --advertise-addr "$HOST_IP" >/dev/null
            touch "$ROOT/we-initialised-the-swarm"
            ;;
        active) ;;
        *) log "the main engine's swarm state is $(swarm_state)"; exit 1 ;;
    esac
    if [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" != "true" ]; then
        log "the main engine is in a swarm but is not a manager"; exit 1
    fi
    if [ "$($E2 info --format '{{.Swarm.LocalNodeState}}')" != "active" ]; then
        token=$(docker swarm join-token -q worker)
        addr=$(docker info --format '{{.Swarm.NodeAddr}}')
        log "joining the second engine as a worker of $addr:2377"
        $E2 swarm join --token "$token" --advertise-addr "$NS_IP" "$addr:2377" >/dev/null
    fi
    # Ready once the manager lists the worker as ready.
    id=$($E2 info --format '{{.Swarm.NodeID}}')
    i=0
    while [ "$(docker node inspect -f '{{.Status.State}}' "$id" 2>/dev/null)" != "ready" ]; do
        i=$((i + 1))
        [ "$i" -gt 60 ] && { log "the worker $id is not ready"; exit 1; }
        sleep 1
    done
    echo "unix://$SOCK"
}

down() {
    if [ -S "$SOCK" ] && $E2 info >/dev/null 2>&1; then
        id=$($E2 info --format '{{.Swarm.NodeID}}' 2>/dev/null || true)
        $E2 swarm leave --force >/dev/null 2>&1 || true
        if [ -n "$id" ]; then
            docker node rm --force "$id" >/dev/null 2>&1 || true
        fi
    fi
    pid=$(engine2_pid || true)
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null; do
            i=$((i + 1))
            [ "$i" -gt 30 ] && { kill -KILL "$pid" 2>/dev/null || true; break; }
            sleep 1
        done
    fi
    rm -f "$ROOT/dockerd.pid" "$SOCK"
    if [ -f "$ROOT/we-initialised-the-swarm" ]; then
        log "docker swarm leave --force on the main engine (up had initialised it)"
        docker swarm leave --force >/dev/null 2>&1 || true
        rm -f "$ROOT/we-initialised-the-swarm"
    fi
    ip link del "$HOST_IF" 2>/dev/null || true
    if ip netns list | grep -qw "$NS"; then
        ip netns del "$NS"
    fi
    if [ "${GOSSIPCERT_SWARM2_PURGE:-0}" = "1" ]; then
        rm -rf "$ROOT"
    fi
}

status() {
    echo "main engine: swarm $(swarm_state)"
    if [ -S "$SOCK" ] && $E2 info >/dev/null 2>&1; then
        echo "second engine (unix://$SOCK): swarm $($E2 info --format '{{.Swarm.LocalNodeState}}')"
    else
        echo "second engine: not running"
    fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
