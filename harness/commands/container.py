"""``gossipcert`` as the harness image's entrypoint: the CLI, then the files it made handed
to the owner of the working directory.

The image runs as root by default, because the packet plane (iptables, the NFQUEUE delay
line) needs root and ``CAP_NET_ADMIN``. The working directory is normally the user's
checkout mounted at ``/work``; a report directory left there owned by root is one the
user cannot delete. So after the command, every file and folder the run created under the
working directory that root owns is given to the directory's owner (or to
``GOSSIPCERT_OWNER=UID:GID``). A run started with ``docker run --user UID:GID`` writes
as that user already and is left alone (it has no packet plane: that needs root).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gossipcert.harness.commands.cli import main as cli_main
from gossipcert.harness.errors import EXIT_BAD_INPUT

__all__ = ["hand_over", "main", "owner_of"]


def owner_of(workdir: Path, env: dict[str, str] | None = None) -> tuple[int, int] | None:
    """Whom the run's files go to: ``GOSSIPCERT_OWNER`` when set, else the working
    directory's owner; None when this process is not root or the owner is root."""
    if os.geteuid() != 0:
        return None
    raw = (env if env is not None else dict(os.environ)).get("GOSSIPCERT_OWNER", "")
    if raw:
        uid_s, _, gid_s = raw.partition(":")
        if not uid_s.isdigit() or not (gid_s or uid_s).isdigit():
            raise ValueError(f"GOSSIPCERT_OWNER must be UID:GID (numbers), not {raw!r}")
        owner = (int(uid_s), int(gid_s or uid_s))
    else:
        st = workdir.stat()
        owner = (st.st_uid, st.st_gid)
    return None if owner == (0, 0) else owner


def hand_over(workdir: Path, owner: tuple[int, int], since: float) -> int:
    """Give ``owner`` every root-owned entry under ``workdir`` changed since ``since``
    (a wall-clock time). Only folders whose contents changed since then are walked (a new
    entry updates its folder's mtime), so a large checkout costs little. Returns how many
    entries changed owner."""
    changed = 0
    stack = [workdir]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_uid == 0 and st.st_ctime >= since:
                with contextlib.suppress(OSError):
                    os.lchown(entry.path, *owner)
                    changed += 1
            if entry.is_dir(follow_symlinks=False) and st.st_mtime >= since:
                stack.append(Path(entry.path))
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    workdir = Path.cwd()
    try:
        owner = owner_of(workdir)
    except ValueError as exc:
        print(f"gossipcert: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # Whole seconds: some file systems store times coarser than time.time().
    since = float(int(time.time()) - 1)
    try:
        return cli_main(argv)
    finally:
        if owner is not None:
            hand_over(workdir, owner, since)


if __name__ == "__main__":
    sys.exit(main())
