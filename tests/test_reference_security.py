"""Encrypted gossip: the keyring, the inbound frame path (fuzzed), real processes."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from gossipcert.reference_node.core.codec import encode_message
from gossipcert.reference_node.core.hlc import Timestamp
from gossipcert.reference_node.core.keyring import (
    NONCE_BYTES,
    FrameRejected,
    Keyring,
    KeyringError,
    ReplayGuard,
    encode_key,
    parse_key,
)
from gossipcert.reference_node.core.messages import BroadcastUpdate, Gossip
from gossipcert.reference_node.framing import MAX_FRAME_BYTES, InboundStream, encode_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reference_runtime import Proc, http, spawn, stop, wait_for

K1, K2, K3 = (bytes([i]) * 32 for i in (1, 2, 3))
NOW = 1_700_000_000_000


def gossip_body(broadcast_id: str = "b1") -> dict[str, object]:
    message = Gossip(
        sender="mallory",
        sender_addr="127.0.0.9:1",
        hlc=Timestamp(NOW, 0),
        updates=(BroadcastUpdate(broadcast_id, "mallory", {"x": 1}),),
    )
    return encode_message(message)


def sealed_frame(keyring: Keyring, body: dict[str, object], now_ms: int = NOW) -> bytes:
    return encode_frame(body, lambda b: keyring.seal(b, os.urandom(NONCE_BYTES), now_ms))


def stream(keyring: Keyring | None) -> InboundStream:
    return InboundStream(lambda: keyring, ReplayGuard())


# ---- keyring -----------------------------------------------------------------------------


def test_seal_open_and_rotation_order() -> None:
    old = Keyring([K1])
    new = Keyring([K1])
    new.install(K2)
    # Installed but not used: still seals with K1, opens both.
    body = new.seal(b"hello", os.urandom(NONCE_BYTES), NOW)
    assert old.open(body, NOW) == b"hello"
    new.use(K2)
    body = new.seal(b"rotated", os.urandom(NONCE_BYTES), NOW)
    with pytest.raises(FrameRejected) as rejected:
        old.open(body, NOW)
    assert rejected.value.reason == "decrypt_failed"
    old.install(K2)
    assert old.open(body, NOW) == b"rotated"
    with pytest.raises(KeyringError) as primary:
        new.remove(K2)
    assert primary.value.reason == "primary_key"
    new.remove(K1)
    assert new.keys == [K2]
    with pytest.raises(KeyringError) as unknown:
        new.use(K3)
    assert unknown.value.reason == "unknown_key"


@pytest.mark.parametrize("text", ["not base64!", base64.b64encode(b"short").decode(), ""])
def test_bad_keys_are_refused(text: str) -> None:
    with pytest.raises(KeyringError):
        parse_key(text)
    assert parse_key(encode_key(K1)) == K1


def test_replays_stale_truncated_and_plaintext_frames_are_refused() -> None:
    ring = Keyring([K1])
    guard = ReplayGuard(window_ms=60_000)
    body = ring.seal(b"{}", os.urandom(NONCE_BYTES), NOW)
    assert ring.open(body, NOW + 5, guard) == b"{}"
    cases = {
        "replayed": (body, NOW + 10),
        "stale": (ring.seal(b"{}", os.urandom(NONCE_BYTES), NOW - 61_000), NOW),
        "truncated": (body[:20], NOW),
        "unencrypted": (b'{"t":"ping"}', NOW),
        "decrypt_failed": (body[:-1] + bytes([body[-1] ^ 1]), NOW),
    }
    for reason, (frame, now) in cases.items():
        with pytest.raises(FrameRejected) as rejected:
            ring.open(frame, now, guard)
        assert rejected.value.reason == reason
    # A nonce is forgotten only once its stamp is out of the window too.
    assert ring.open(ring.seal(b"{}", os.urandom(NONCE_BYTES), NOW), NOW, guard) == b"{}"
    guard.check(b"n" * 12, NOW + 200_000, NOW + 200_000)
    assert len(guard) == 1


def test_inbound_stream_delivers_sealed_frames_and_drops_a_forgery() -> None:
    ring = Keyring([K1])
    inbound = stream(ring)
    frame = sealed_frame(ring, gossip_body())
    out = inbound.feed(frame[:7], NOW)
    assert out.messages == [] and not out.dropped
    out = inbound.feed(frame[7:], NOW)
    assert [m.kind for m, _ in out.messages] == ["gossip"] and out.messages[0][1] == len(frame)
    forged = stream(ring).feed(sealed_frame(Keyring([K2]), gossip_body()), NOW)
    assert forged.dropped == ["decrypt_failed"] and forged.close and not forged.messages
    plain = stream(ring).feed(encode_frame(gossip_body()), NOW)
    assert plain.dropped == ["unencrypted"]
    # Without a keyring, sealed frames are not JSON: malformed.
    assert stream(None).feed(frame, NOW).dropped == ["malformed"]
    oversized = stream(None).feed((MAX_FRAME_BYTES + 1).to_bytes(4, "big"), NOW)
    assert oversized.dropped == ["oversized"] and oversized.close
    assert stream(None).feed(frame[:10], NOW).messages == []


# ---- fuzzing the inbound path --------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    chunks=st.lists(st.binary(max_size=300), max_size=8),
    keyed=st.booleans(),
)
def test_fuzz_arbitrary_bytes_never_crash_the_inbound_path(
    chunks: list[bytes], keyed: bool
) -> None:
    inbound = stream(Keyring([K1]) if keyed else None)
    for chunk in chunks:
        out = inbound.feed(chunk, NOW)
        assert all(isinstance(reason, str) for reason in out.dropped)
        if keyed:
            assert out.messages == []  # nobody without the key gets a message in


@FUZZ
@given(
    data=st.data(),
    json_value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    ),
)
def test_fuzz_tampered_or_garbage_json_is_dropped_never_raised(
    data: st.DataObject, json_value: object
) -> None:
    ring = Keyring([K1])
    # Well-sealed garbage JSON is authentic but not a message: malformed, not a crash.
    out = stream(ring).feed(sealed_frame(ring, json_value), NOW)  # type: ignore[arg-type]
    assert out.messages == [] or all(m.kind for m, _ in out.messages)
    # Any single bit flipped in a valid sealed frame's body is caught.
    frame = sealed_frame(ring, gossip_body())
    position = data.draw(st.integers(4, len(frame) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = bytearray(frame)
    tampered[position] ^= 1 << bit
    out = stream(ring).feed(bytes(tampered), NOW)
    assert out.messages == [] and len(out.dropped) == 1


@FUZZ
@given(cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_fuzz_any_chunking_gives_the_same_messages(cuts: list[int]) -> None:
    ring = Keyring([K1])
    wire = b"".join(sealed_frame(ring, gossip_body(f"b{i}")) for i in range(3))
    points = sorted({c % (len(wire) + 1) for c in cuts})
    pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    inbound = stream(ring)
    got = [m for piece in pieces for m, _ in inbound.feed(piece, NOW).messages]
    assert [m.updates[0].id for m in got] == ["b0", "b1", "b2"]  # type: ignore[union-attr]


# ---- real processes ------------------------------------------------------------------


def key_args(*keys: bytes) -> list[str]:
    return [arg for key in keys for arg in ("--key", encode_key(key))]


def post_keyring(proc: Proc, op: str, key: bytes) -> tuple[int, dict[str, object]]:
    return http("POST", proc.url("/v1/keyring"), {"op": op, "key": encode_key(key)})


def send_raw(proc: Proc, frame: bytes) -> None:
    host, port = proc.gossip.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as sock:
        sock.sendall(frame)
        time.sleep(0.2)


def test_keyring_endpoints_shapes_and_errors() -> None:
    plain = spawn("plain", "127.0.0.21")
    keyed = spawn("keyed", "127.0.0.21", *key_args(K1))
    try:
        wait_for(lambda: plain.get("/v1/node")["ready"] and keyed.get("/v1/node")["ready"], 10)
        assert plain.get("/v1/keyring") == {"enabled": False, "primary": None, "keys": []}
        status, body = post_keyring(plain, "install", K2)
        assert status == 409 and body["error"] == "encryption_disabled"
        k1, k2 = encode_key(K1), encode_key(K2)
        assert keyed.get("/v1/keyring") == {"enabled": True, "primary": k1, "keys": [k1]}
        assert post_keyring(keyed, "install", K2) == (
            200,
            {"enabled": True, "primary": k1, "keys": [k1, k2]},
        )
        assert post_keyring(keyed, "use", K2)[1]["primary"] == k2
        assert post_keyring(keyed, "remove", K2)[0] == 409  # the primary
        assert post_keyring(keyed, "remove", K3)[0] == 404
        assert post_keyring(keyed, "explode", K1)[0] == 400
        status, body = http("POST", keyed.url("/v1/keyring"), {"op": "use", "key": "!!"})
        assert status == 400 and body["error"] == "bad_key"
        assert post_keyring(keyed, "remove", K1)[1]["keys"] == [k2]
    finally:
        stop([plain, keyed])


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--key", "nope"], "--key"),
        (["--key", encode_key(K1), "--keyring-file", "/nonexistent"], "not allowed"),
        (["--keyring-file", "/nonexistent/keys.json"], "keyring file"),
    ],
)
def test_bad_key_flags_exit_2_with_one_line(extra: list[str], needle: str) -> None:
    command = [sys.executable, "-m", "reference_node", "--id", "x",
               "--gossip", "127.0.0.1:0", "--control", "127.0.0.1:0", *extra]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stderr


@pytest.mark.slow
def test_wrong_key_can_neither_join_nor_inject() -> None:
    procs = [spawn(f"n{i}", "127.0.0.22", *key_args(K1)) for i in range(3)]
    intruder: Proc | None = None
    try:
        wait_for(lambda: all(p.get("/v1/node")["ready"] for p in procs), 10)
        for proc in procs[1:]:
            assert http("POST", proc.url("/v1/join"), {"seeds": [procs[0].gossip]})[0] == 200
        wait_for(lambda: all(len(p.statuses()) == 3 for p in procs), 10)
        intruder = spawn("intruder", "127.0.0.22", *key_args(K2), "--seed", procs[0].gossip)
        wait_for(lambda: intruder.get("/v1/metrics")["messages_sent"] >= 3, 10)
        assert not intruder.get("/v1/node")["ready"]  # its join is never answered
        # A keyholder's frame gets in; the same bytes again are a replay.
        ring = Keyring([K1])
        frame = sealed_frame(ring, gossip_body("from-keyholder"), int(time.time() * 1000))
        send_raw(procs[1], frame)
        send_raw(procs[1], frame)
        send_raw(procs[1], encode_frame(gossip_body("plaintext")))
        send_raw(procs[1], sealed_frame(Keyring([K2]), gossip_body("forged")))
        time.sleep(1.0)
        received = [b["id"] for b in procs[1].get("/v1/broadcasts")["received"]]
        assert "from-keyholder" in received
        assert "plaintext" not in received and "forged" not in received
        dropped = procs[1].get("/v1/metrics")["dropped"]
        assert dropped["replayed"] >= 1 and dropped["unencrypted"] >= 1
        assert dropped["decrypt_failed"] >= 1
        for proc in procs:
            assert "intruder" not in proc.statuses()
        assert procs[0].get("/v1/metrics")["dropped"]["decrypt_failed"] >= 1
        assert set(intruder.statuses()) == {"intruder"}
        assert not intruder.get("/v1/node")["ready"]
    finally:
        stop([*procs, *([intruder] if intruder else [])])


@pytest.mark.slow
def test_key_rotation_loses_no_message(tmp_path: object) -> None:
    procs = [spawn(f"r{i}", "127.0.0.23", *key_args(K1)) for i in range(3)]
    try:
        wait_for(lambda: all(p.get("/v1/node")["ready"] for p in procs), 10)
        for proc in procs[1:]:
            assert http("POST", proc.url("/v1/join"), {"seeds": [procs[0].gossip]})[0] == 200
        wait_for(lambda: all(set(p.statuses().values()) == {"alive"} for p in procs), 10)
        wait_for(lambda: all(len(p.statuses()) == 3 for p in procs), 10)
        sent: list[str] = []

        def burst(tag: str) -> None:
            for i in range(5):
                broadcast_id = f"{tag}-{i}"
                origin = procs[i % 3]
                body = {"id": broadcast_id, "payload": i}
                assert http("POST", origin.url("/v1/broadcast"), body)[0] == 202
                sent.append(broadcast_id)
                time.sleep(0.05)

        burst("before")
        for op, key in [("install", K2), ("use", K2), ("remove", K1)]:
            for proc in procs:
                assert post_keyring(proc, op, key)[0] == 200
                burst(f"{op}-{proc.id}")
        burst("after")

        def everyone_has_everything() -> bool:
            for proc in procs:
                got = {b["id"] for b in proc.get("/v1/broadcasts")["received"]}
                if not set(sent) <= got:
                    return False
            return True

        wait_for(everyone_has_everything, 15)
        for proc in procs:
            metrics = proc.get("/v1/metrics")
            assert metrics["dropped"]["decrypt_failed"] == 0, metrics["dropped"]
            assert proc.get("/v1/keyring")["keys"] == [encode_key(K2)]
        assert all(set(p.statuses().values()) == {"alive"} for p in procs)
    finally:
        stop(procs)


def test_keyring_file_is_read_and_rewritten(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "keys.json"  # type: ignore[operator]
    path.write_text(json.dumps([encode_key(K1)]))
    proc = spawn("filed", "127.0.0.24", "--keyring-file", str(path))
    try:
        wait_for(lambda: proc.get("/v1/node")["ready"], 10)
        assert proc.get("/v1/keyring")["primary"] == encode_key(K1)
        assert post_keyring(proc, "install", K2)[0] == 200
        assert json.loads(path.read_text()) == [encode_key(K1), encode_key(K2)]
    finally:
        stop([proc])
