"""What `--data-dir` and `--keyring-file` keep on disk (the core does no IO).

A data dir holds:

- `incarnation`: the highest incarnation this id has used, rewritten (atomically, fsynced)
  before any message carrying a higher one leaves the node;
- `snapshot.json`: `Node.snapshot()`, rewritten atomically on compaction and shutdown;
- `writes.log`: one JSON line per local write since the snapshot, fsynced before the
  client call is acknowledged. A crash can tear only the last line, which was never
  acknowledged, so a torn tail is ignored.

A lock file keeps two processes from sharing one dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, TextIO

from gossipcert.reference_node.durable import COMPACT_EVERY, Stored, restore_node

__all__ = [
    "COMPACT_EVERY",
    "DataDir",
    "PersistError",
    "Stored",
    "load_keyring_file",
    "restore_node",
    "save_keyring_file",
    "write_atomic",
]


class PersistError(OSError):
    """The data dir cannot be read or written; the message says which file and why."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file so a crash leaves either the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: TextIO | None = None
        self._log: TextIO | None = None
        self.log_records = 0
        self.saved_incarnation: int | None = None

    @classmethod
    def open(cls, path: str | Path) -> DataDir:
        """Create the dir if needed and take its lock."""
        data_dir = cls(Path(path))
        try:
            data_dir.path.mkdir(parents=True, exist_ok=True)
            lock = open(data_dir.path / "LOCK", "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise PersistError(f"cannot use data dir {path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock.close()
            raise PersistError(f"data dir {path} is in use by another process") from exc
        data_dir._lock = lock
        return data_dir

    @property
    def _incarnation_file(self) -> Path:
        return self.path / "incarnation"

    @property
    def _snapshot_file(self) -> Path:
        return self.path / "snapshot.json"

    @property
    def _log_file(self) -> Path:
        return self.path / "writes.log"

    def load(self) -> Stored:
        stored = Stored()
        try:
            if self._incarnation_file.exists():
                text = self._incarnation_file.read_text().strip()
                if not text.isdigit():
                    raise PersistError(f"{self._incarnation_file}: not an incarnation: {text!r}")
                stored.incarnation = int(text)
                self.saved_incarnation = stored.incarnation
            if self._snapshot_file.exists():
                snapshot = json.loads(self._snapshot_file.read_text())
                if not isinstance(snapshot, dict):
                    raise PersistError(f"{self._snapshot_file}: not a JSON object")
                stored.snapshot = snapshot
            if self._log_file.exists():
                lines = self._log_file.read_bytes().split(b"\n")
                # Every complete record ends with a newline; whatever follows the last
                # one is a torn append.
                *complete, tail = lines
                stored.torn_tail = bool(tail)
                for number, line in enumerate(complete, 1):
                    try:
                        stored.writes.append(json.loads(line))
                    except ValueError as exc:
                        raise PersistError(f"{self._log_file}:{number}: {exc}") from exc
        except ValueError as exc:
            raise PersistError(f"cannot read data dir {self.path}: {exc}") from exc
        except OSError as exc:
            raise PersistError(f"cannot read data dir {self.path}: {exc.strerror}") from exc
        self.log_records = len(stored.writes)
        if stored.torn_tail:
            self._rewrite_log(stored.writes)
        return stored

    def save_incarnation(self, incarnation: int) -> None:
        if self.saved_incarnation is not None and incarnation <= self.saved_incarnation:
            return
        write_atomic(self._incarnation_file, f"{incarnation}\n")
        self.saved_incarnation = incarnation

    def append(self, records: list[Any]) -> None:
        """Append and fsync: returns only once the records survive a crash."""
        if not records:
            return
        log = self._log
        if log is None:
            log = self._log = open(self._log_file, "a", encoding="utf-8")  # noqa: SIM115
        log.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
        log.flush()
        os.fsync(log.fileno())
        self.log_records += len(records)

    def compact(self, snapshot: dict[str, Any]) -> None:
        """Fold the log into a snapshot: snapshot first, then an empty log, so a crash
        in between only replays writes the snapshot already holds."""
        write_atomic(self._snapshot_file, json.dumps(snapshot, separators=(",", ":")))
        self._rewrite_log([])

    def _rewrite_log(self, records: list[Any]) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        write_atomic(self._log_file, text)
        self.log_records = len(records)

    def close(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def load_keyring_file(path: str | Path) -> list[str]:
    """A keyring file is a JSON array of base64 keys, primary first (Serf's format)."""
    try:
        keys = json.loads(Path(path).read_text())
    except OSError as exc:
        raise PersistError(f"cannot read keyring file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise PersistError(f"keyring file {path} is not JSON: {exc}") from exc
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise PersistError(f"keyring file {path} must be a non-empty JSON array of strings")
    return keys


def save_keyring_file(path: str | Path, keys: list[str]) -> None:
    """Keyring changes made through the control API survive a restart."""
    write_atomic(Path(path), json.dumps(keys, indent=2) + "\n")
