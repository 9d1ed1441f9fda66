"""``python -m gossipcert.adapters.serf``: one Serf agent behind the v1 control contract.

Starts ``serf agent`` (node name, bind address, timing profile) as a child that dies with
the bridge, connects to its RPC port, joins the seeds (retrying in the background until
one answers, as the contract's launch seeds ask) and serves the control API until SIGTERM
or SIGINT. Exit code 2 (one line on stderr) when the agent cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web
from gossipcert.adapters.common import address_arg, die_with_parent
from gossipcert.adapters.serf.bridge import Bridge, build_app
from gossipcert.adapters.serf.rpc import RPCError, SerfRPC

START_TIMEOUT_S = 15.0
# Control calls answered at once, each on a worker thread of its own.
CALL_THREADS = 32


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serf_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = out.stdout.strip().splitlines()[:1]
    return first[0].removeprefix("Serf ").strip() if first else "unknown"


def fail(message: str) -> None:
    print(f"serf bridge: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gossipcert.adapters.serf",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--id", required=True, help="node name")
    parser.add_argument("--bind", required=True, type=address_arg,
                        help="gossip address (UDP and TCP), HOST:PORT")
    parser.add_argument("--control", required=True, type=address_arg,
                        help="where the control API listens, HOST:PORT")
    parser.add_argument("--profile", choices=("lan", "local", "wan"), default="lan",
                        help="Serf's timing profile (memberlist's LAN, Local or WAN config)")
    parser.add_argument("--seed", action="append", default=[], type=str,
                        help="HOST:PORT of a member to join through (repeatable)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the agent's log is kept")
    parser.add_argument("--serf", default="serf", help="the serf binary")
    args = parser.parse_args(argv)

    binary = shutil.which(args.serf)
    if binary is None:
        fail(f"{args.serf!r} not found (Debian package: serf)")
    rpc_addr = ("127.0.0.1", _free_port("127.0.0.1"))
    log_path = (args.data_dir or Path(".")) / f"serf-{args.id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    agent = subprocess.Popen(
        [binary, "agent", f"-node={args.id}", f"-bind={args.bind[0]}:{args.bind[1]}",
         f"-rpc-addr={rpc_addr[0]}:{rpc_addr[1]}", f"-profile={args.profile}",
         "-log-level=info"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent)

    def stop(*_: object) -> None:
        if agent.poll() is None:
            agent.terminate()
            try:
                agent.wait(5)
            except subprocess.TimeoutExpired:
                agent.kill()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    rpc = None
    deadline = time.monotonic() + START_TIMEOUT_S
    while rpc is None:
        if agent.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            fail(f"serf agent exited with {agent.returncode}: {' | '.join(tail)}")
        try:
            rpc = SerfRPC(rpc_addr)
        except (OSError, RPCError):
            if time.monotonic() > deadline:
                agent.kill()
                fail(f"serf agent's RPC did not answer on {rpc_addr[0]}:{rpc_addr[1]} "
                     f"within {START_TIMEOUT_S:g} s")
            time.sleep(0.05)
    bridge = Bridge(args.id, rpc, serf_version(binary))
    asyncio.run(_serve(bridge, agent, args.control, args.seed, stop))


async def _serve(bridge: Bridge, agent: subprocess.Popen[bytes], control: tuple[str, int],
                 seeds: list[str], stop: Callable[[], object]) -> None:
    """Serve the control API for as long as the agent lives, then ``stop`` the process.

    The signal handlers set before stay in charge: SIGTERM or SIGINT stop the process
    while it serves as before. Each call runs on a worker thread (it may wait on the
    agent's RPC), so calls are answered side by side and the loop never waits.
    """
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="control"))
    runner = web.AppRunner(build_app(bridge), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, *control).start()
    except OSError as exc:
        agent.kill()
        # asyncio words a bind error its own way; the system's words are the ones to show.
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        fail(f"control API on {control[0]}:{control[1]}: {reason}")
    if seeds:
        threading.Thread(target=_join_until_answered, args=(bridge, seeds),
                         name="join", daemon=True).start()
    else:
        bridge.state.ready = True
    # The bridge lives as long as its agent: a left or crashed agent ends it too (the
    # control API keeps answering a little after a graceful leave, for the harness).
    while agent.poll() is None:
        await asyncio.sleep(0.2)
    if bridge.state.left:
        await asyncio.sleep(3600)  # the last view stays answerable until the harness stops it
    stop()


def _join_until_answered(bridge: Bridge, seeds: list[str]) -> None:
    while not bridge.state.ready and not bridge.rpc.closed.is_set():
        status, _ = bridge.join(seeds)
        if status == 200:
            return
        time.sleep(0.5)


if __name__ == "__main__":
    main()
