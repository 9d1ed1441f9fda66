"""The link plane of a run: one Toxiproxy proxy per directed link, partitions as ``timeout``
toxics and delays as ``latency`` toxics.

For a node that sends datagrams to a dial map too, each directed link also gets a UDP
proxy of our server (``/udp/proxies``, the same name): a cut or a delay of the link
applies to both of its proxies, and random loss (``loss`` toxics) to its UDP proxy only,
since dropping bytes inside a TCP stream would corrupt it rather than lose a message.

A run starts the project's own Toxiproxy-compatible server as a child process, or uses
a Toxiproxy given by URL, or one its backend started (a container). Every proxy it
makes is named ``<run>:<src>-><dst>`` so it removes exactly its own proxies at the end,
even on a shared server. The harness hands in what it needs (the run's name, where to
log); nothing here knows the harness.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from gossipcert.chaos.errors import ChaosError
from gossipcert.chaos.procutil import child_preexec, stop_process
from gossipcert.chaos.runlabels import RUN_LABEL_ENV
from gossipcert.chaos.toxiproxy_client import ToxiproxyClient, ToxiproxyError

__all__ = ["LinkPlane", "LinkPlaneUnavailable", "LocalToxiproxyServer", "ToxiproxyServer"]

PARTITION_TOXIC = "gossipcert_partition"
LATENCY_TOXIC = "gossipcert_latency"
LOSS_TOXIC = "gossipcert_loss"
STREAMS = ("upstream", "downstream")
PAIR_ATTEMPTS = 20


class LinkPlaneUnavailable(ChaosError):
    """The link plane's server could not be started or reached."""


class ToxiproxyServer(Protocol):
    """A Toxiproxy server the run started (and stops): a child process or a container."""

    url: str

    def close(self) -> None: ...


class LocalToxiproxyServer:
    """Our Toxiproxy-compatible server as a child process on a free loopback port."""

    def __init__(self, log_dir: Path, run_label: str, startup_timeout_s: float = 15.0) -> None:
        # Port 0: the server binds and names its port (a port picked here first could be
        # taken before the server binds it, by the proxies of a large run for one).
        self.url = ""
        log_dir.mkdir(parents=True, exist_ok=True)
        self._stderr_path = log_dir / "toxiproxy.stderr.log"
        with self._stderr_path.open("ab") as err:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "gossipcert.chaos.toxiproxy", "serve", "--listen",
                 "127.0.0.1:0"],
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**os.environ, RUN_LABEL_ENV: run_label},
                start_new_session=True,
                preexec_fn=child_preexec(),
            )
        if not self._wait_ready(startup_timeout_s):
            tail = self._stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
            self.close()
            raise LinkPlaneUnavailable(
                "the Toxiproxy-compatible server did not start: " + " | ".join(tail)
            )

    def _wait_ready(self, timeout_s: float) -> bool:
        """Whether the server printed its ready line within ``timeout_s`` (False as soon
        as it exited or closed its output)."""
        assert self._proc.stdout is not None
        stdout = self._proc.stdout
        sel = selectors.DefaultSelector()
        sel.register(stdout, selectors.EVENT_READ)
        buf = b""
        ended = False

        def listening_or_ended() -> bool:
            nonlocal buf, ended
            if self._proc.poll() is not None:
                ended = True
            elif sel.select(timeout=0.1):  # the wait between looks
                chunk = stdout.read1(4096)  # type: ignore[attr-defined]
                ended = not chunk
                buf += chunk
            return ended or re.search(rb"listening on http://\S+\n", buf) is not None

        deadline = time.monotonic() + timeout_s
        try:  # each look waits up to 0.1 s for output: the loop needs no sleep of its own
            ready = listening_or_ended()
            while not ready and time.monotonic() < deadline:
                ready = listening_or_ended()
        finally:
            sel.close()
        found = re.search(rb"listening on (http://\S+)", buf)
        if not ready or ended or found is None:
            return False
        self.url = found.group(1).decode()
        return True

    def close(self) -> None:
        stop_process(self._proc)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class LinkPlane:
    """Proxies for every directed pair of nodes, and the faults applied to them."""

    def __init__(self, client: ToxiproxyClient, run_name: str,
                 server: ToxiproxyServer | None = None, listen_host: str = "127.0.0.1") -> None:
        self.client = client
        self.run_name = run_name
        self.server = server
        # Where proxies listen: an address the nodes can dial (a container network's
        # address on the Docker backend, loopback for local processes).
        self.listen_host = listen_host
        self.listen: dict[tuple[str, str], str] = {}
        # The UDP proxy of each link, when the nodes route their datagrams through us.
        self.udp_listen: dict[tuple[str, str], str] = {}
        self.cut: set[tuple[str, str]] = set()
        self.delayed: set[tuple[str, str]] = set()  # links carrying our latency toxics
        self.lossy: set[tuple[str, str]] = set()  # UDP proxies carrying our loss toxics
        self.udp_supported = False  # the server has UDP proxies and the nodes route datagrams

    @classmethod
    def open(cls, run_name: str, log_dir: Path, url: str | None = None, *,
             server: ToxiproxyServer | None = None,
             listen_host: str = "127.0.0.1") -> LinkPlane:
        """Reach ``url``, or the given ``server``, or start our server as a child."""
        if server is not None:
            url = server.url
        elif url is None:
            server = LocalToxiproxyServer(log_dir, run_name)
            url = server.url
        client = ToxiproxyClient(url)
        try:
            client.version()
        except (ToxiproxyError, OSError) as exc:
            if server is not None:
                server.close()
            raise LinkPlaneUnavailable(f"cannot reach Toxiproxy at {url}: {exc}") from None
        return cls(client, run_name, server, listen_host)

    def proxy_name(self, src: str, dst: str) -> str:
        return f"{self.run_name}:{src}->{dst}"

    def build(self, gossip_addrs: dict[str, str], *,
              udp: bool = False) -> dict[str, dict[str, str]]:
        """Make a proxy per directed link (and with ``udp`` a UDP proxy beside it, to the
        same gossip address); returns each node's TCP dial map ``{peer: addr}``
        (:meth:`udp_routes` is the UDP one)."""
        routes: dict[str, dict[str, str]] = {n: {} for n in gossip_addrs}
        self.udp_supported = udp
        for src, dst in itertools.permutations(sorted(gossip_addrs), 2):
            pair = self.udp_supported
            listen = (self._proxy_pair if pair else self._proxy)(src, dst, gossip_addrs[dst])
            self.listen[(src, dst)] = listen
            routes[src][dst] = listen
        return routes

    def _proxy(self, src: str, dst: str, upstream: str) -> str:
        proxy = self.client.create_proxy(self.proxy_name(src, dst), f"{self.listen_host}:0",
                                         upstream)
        return str(proxy["listen"])

    def _proxy_pair(self, src: str, dst: str, upstream: str) -> str:
        """A TCP and a UDP proxy of one link on the same port, as a node listens on one
        port for both: a packet-plane rule on the link's proxy port then matches both
        protocols, and no other link's. Should the UDP port be taken, the pair is made
        again on another port."""
        name = self.proxy_name(src, dst)
        for _ in range(PAIR_ATTEMPTS):
            listen = self._proxy(src, dst, upstream)
            try:
                self.client.create_udp_proxy(name, listen, upstream)
            except ToxiproxyError as exc:
                if exc.status == 404 and not self.udp_listen:
                    # A real Toxiproxy (TCP only): no UDP dial map, so the nodes send
                    # everything over their TCP routes.
                    self.udp_supported = False
                    return listen
                if exc.status != 500:  # 500: the bind failed, the port is in use for UDP
                    raise
                self.client.delete_proxy(name)
                continue
            self.udp_listen[(src, dst)] = listen
            return listen
        raise LinkPlaneUnavailable(f"no port free for both TCP and UDP proxies of {src}->{dst}")

    def udp_routes(self) -> dict[str, dict[str, str]]:
        """Each node's UDP dial map ``{peer: addr}`` (empty without UDP proxies)."""
        routes: dict[str, dict[str, str]] = {}
        for (src, dst), addr in sorted(self.udp_listen.items()):
            routes.setdefault(src, {})[dst] = addr
        return routes

    def _proxies_of(self, src: str, dst: str) -> list[bool]:
        """The proxies of a link, as the ``udp`` flag of the client's toxic calls."""
        return [False, True] if (src, dst) in self.udp_listen else [False]

    def cut_link(self, src: str, dst: str) -> None:
        """Drop every byte on src->dst with the connection left open (timeout 0)."""
        if (src, dst) in self.cut:
            return
        for udp in self._proxies_of(src, dst):
            for stream in STREAMS:
                self.client.add_toxic(
                    self.proxy_name(src, dst), "timeout", {"timeout": 0},
                    name=f"{PARTITION_TOXIC}_{stream}", stream=stream, udp=udp,
                )
        self.cut.add((src, dst))

    def restore_link(self, src: str, dst: str) -> None:
        if (src, dst) not in self.cut:
            return
        for udp in self._proxies_of(src, dst):
            for stream in STREAMS:
                with contextlib.suppress(ToxiproxyError):
                    self.client.remove_toxic(self.proxy_name(src, dst),
                                             f"{PARTITION_TOXIC}_{stream}", udp=udp)
        self.cut.discard((src, dst))

    def partition(self, groups: list[list[str]]) -> list[tuple[str, str]]:
        """Cut every link between groups, both ways; returns the links cut."""
        links = []
        for g1, g2 in itertools.permutations(range(len(groups)), 2):
            for src in groups[g1]:
                for dst in groups[g2]:
                    self.cut_link(src, dst)
                    links.append((src, dst))
        return links

    def heal(self) -> None:
        for src, dst in sorted(self.cut):
            self.restore_link(src, dst)

    def _toxic_names(self, udp: bool = False) -> dict[tuple[str, str], set[str]]:
        """The toxics on each of our links (with ``udp``, on their UDP proxies), read back
        in one ``GET /proxies`` (a proxy's listing carries its toxics, in Toxiproxy as in
        ours): a partition of a hundred nodes is five thousand links, one read per link
        would take minutes."""
        listing = self.client.udp_proxies() if udp else self.client.proxies()
        found: dict[tuple[str, str], set[str]] = {}
        for src, dst in (self.udp_listen if udp else self.listen):
            proxy = listing.get(self.proxy_name(src, dst)) or {}
            found[(src, dst)] = {str(t.get("name", "")) for t in proxy.get("toxics") or []}
        return found

    def confirm_cut(self) -> bool:
        """Check through the API that every cut link carries its toxics, on every proxy
        of the link."""
        if not self.cut:
            return True
        names = self._toxic_names()
        udp_names = self._toxic_names(udp=True) if self.udp_listen else {}
        tcp_cut = all(f"{PARTITION_TOXIC}_{s}" in names.get(link, set())
                      for link in self.cut for s in STREAMS)
        return tcp_cut and all(f"{PARTITION_TOXIC}_{s}" in udp_names.get(link, set())
                               for link in self.cut if link in self.udp_listen
                               for s in STREAMS)

    def delay_link(self, src: str, dst: str, latency_ms: int, jitter_ms: int = 0) -> None:
        """Delay every chunk on src->dst, both streams; a delayed link takes the new values."""
        name = self.proxy_name(src, dst)
        attrs = {"latency": latency_ms, "jitter": jitter_ms}
        for udp in self._proxies_of(src, dst):
            for stream in STREAMS:
                toxic = f"{LATENCY_TOXIC}_{stream}"
                if (src, dst) in self.delayed:
                    self.client.update_toxic(name, toxic, attrs, udp=udp)
                else:
                    self.client.add_toxic(name, "latency", attrs, name=toxic, stream=stream,
                                          udp=udp)
        self.delayed.add((src, dst))

    def confirm_delay(self, src: str, dst: str, latency_ms: int) -> bool:
        """Check through the API that src->dst carries the delay asked for, on every
        proxy of the link."""
        for udp in self._proxies_of(src, dst):
            found = {t["name"]: t for t in self.client.toxics(self.proxy_name(src, dst),
                                                                udp=udp)}
            applied = found.get(f"{LATENCY_TOXIC}_downstream")
            if applied is None or applied["attributes"].get("latency") != latency_ms:
                return False
        return True

    def clear_delays(self) -> None:
        for src, dst in sorted(self.delayed):
            for udp in self._proxies_of(src, dst):
                for stream in STREAMS:
                    with contextlib.suppress(Exception):
                        self.client.remove_toxic(self.proxy_name(src, dst),
                                                 f"{LATENCY_TOXIC}_{stream}", udp=udp)
        self.delayed.clear()

    def lose_on_link(self, src: str, dst: str, probability: float) -> None:
        """Drop each datagram crossing src->dst's UDP proxy with ``probability`` (both
        streams, like a cut); its TCP proxy is left whole. A ``loss`` toxic of 100 percent
        whose toxicity is the probability, so any rate is exact (``percent`` is an
        integer). A lossy link takes the new rate."""
        if (src, dst) not in self.udp_listen:
            raise ValueError(f"link {src}->{dst} has no UDP proxy")
        name = self.proxy_name(src, dst)
        for stream in STREAMS:
            toxic = f"{LOSS_TOXIC}_{stream}"
            if (src, dst) in self.lossy:
                self.client.update_toxic(name, toxic, {"percent": 100}, probability, udp=True)
            else:
                self.client.add_toxic(name, "loss", {"percent": 100}, name=toxic, stream=stream,
                                      toxicity=probability, udp=True)
        self.lossy.add((src, dst))

    def confirm_loss(self, links: list[tuple[str, str]], probability: float) -> bool:
        """Check through the API (one read) that each link's UDP proxy drops datagrams
        with ``probability``."""
        listing = self.client.udp_proxies()
        for src, dst in links:
            toxics = {str(t.get("name")): t for t in
                      (listing.get(self.proxy_name(src, dst)) or {}).get("toxics") or []}
            for stream in STREAMS:
                applied = toxics.get(f"{LOSS_TOXIC}_{stream}")
                if (applied is None or applied["attributes"].get("percent") != 100
                        or abs(float(applied.get("toxicity", -1)) - probability) > 1e-9):
                    return False
        return True

    def clear_losses(self) -> None:
        for src, dst in sorted(self.lossy):
            for stream in STREAMS:
                with contextlib.suppress(Exception):
                    self.client.remove_toxic(self.proxy_name(src, dst),
                                             f"{LOSS_TOXIC}_{stream}", udp=True)
        self.lossy.clear()

    def clean(self) -> bool:
        """Read every proxy's toxics back: none of ours (cut, delay or loss) may be left."""
        ours = (PARTITION_TOXIC, LATENCY_TOXIC, LOSS_TOXIC)
        found = list(self._toxic_names().values())
        if self.udp_listen:
            found += self._toxic_names(udp=True).values()
        return not any(name.startswith(ours) for names in found for name in names)

    def close(self) -> None:
        """Remove our proxies: with the server the run started, by stopping it; on a
        shared server one by one, giving up once the server stops answering (a frozen
        server must not hold the end of a run for a timeout per proxy)."""
        try:
            if self.server is None:
                ours = [(link, False) for link in self.listen]
                ours += [(link, True) for link in self.udp_listen]
                for (src, dst), udp in ours:
                    try:
                        if udp:
                            self.client.delete_udp_proxy(self.proxy_name(src, dst))
                        else:
                            self.client.delete_proxy(self.proxy_name(src, dst))
                    except ToxiproxyError:
                        continue
                    except OSError:
                        break
        finally:
            self.listen.clear()
            self.udp_listen.clear()
            self.client.close()
            if self.server is not None:
                self.server.close()
