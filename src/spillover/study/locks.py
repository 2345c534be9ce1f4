"""Exclusive claims on study stages, so several workers (processes, GPUs, Slurm tasks) share one
study directory without running a stage twice.

A claim is an ``fcntl.flock`` on ``<study>/.locks/<stage>.lock``: the kernel releases it when its
owner exits, however it dies, so a stale claim is taken over by the next worker that asks. The
file records the owner (host, pid) and a heartbeat the owner refreshes while it works, for people
and monitors; lock files are never deleted (deleting one while another process waits on it would
let two workers hold "the same" lock). The study directory must be on a filesystem whose
``flock`` is shared by every worker: any local disk, NFSv4, or Lustre mounted with ``flock``.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path


#: The lock file's fixed size: a JSON record padded with spaces.
RECORD_BYTES = 512


class StageBusy(RuntimeError):
    """Another live worker holds the stage's claim."""


class StageLock:
    """The claim on one stage; ``acquire(wait)`` then ``release()`` (or use it as a context)."""

    def __init__(self, root: Path, name: str, heartbeat_s: float = 30.0):
        self.path = Path(root) / ".locks" / (name.replace("/", "--") + ".lock")
        self.name = name
        self.heartbeat_s = heartbeat_s
        self._fd: int | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def owner(self) -> dict:
        """What the lock file says about its last owner ({} if none)."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            return {}

    def acquire(self, wait: bool = True, poll_s: float = 2.0) -> None:
        """Take the claim; with ``wait`` block until it is free, else raise StageBusy."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    os.close(fd)
                    raise StageBusy(f"stage {self.name} is being run by {self.owner().get('owner', 'another worker')}")
                time.sleep(poll_s)
        self._fd = fd
        self._write(started=time.time())
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()

    def _write(self, **extra) -> None:
        """Overwrite the record in one fixed-size write, so a reader never sees it half-written."""
        info = {**self.owner(), "owner": f"{socket.gethostname()}:{os.getpid()}", "heartbeat": time.time(), **extra}
        os.pwrite(self._fd, json.dumps(info).ljust(RECORD_BYTES).encode(), 0)
        os.ftruncate(self._fd, RECORD_BYTES)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self._write()

    def release(self) -> None:
        if self._fd is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "StageLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
