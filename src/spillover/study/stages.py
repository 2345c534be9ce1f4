"""Cached, atomic pipeline stages.

A stage is a function that writes its outputs into a fresh directory. Its key is a content hash
of everything it depends on (config sections, keys of upstream stages). The directory is built
under a temporary name and renamed into place only when the function returns, with a
``stage.json`` recording key, inputs and wall time; a re-run with the same key skips the stage,
a changed key re-runs it, and a killed run leaves no half-written stage behind. Long stages keep
their resumable work (response/judgment caches, training checkpoints) outside the stage
directory, under ``<study>/cache/``, so a killed stage resumes instead of restarting.

Every stage runs under its claim (:mod:`.locks`), so several workers can share one study
directory: a worker that finds a stage claimed waits for it (``wait``), or gets StageBusy and does
something else; once it holds the claim it checks again whether the stage is done.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ..io import read_json, stable_hash, write_json
from ..progress import console
from .locks import StageBusy, StageLock


class StageRunner:
    """Runs named stages under ``root``; ``ran`` and ``skipped`` list what happened."""

    def __init__(self, root: Path, wait: bool = True):
        self.root = Path(root)
        self.wait = wait
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.timings: dict[str, float] = {}

    def key(self, inputs: dict) -> str:
        return stable_hash(inputs)

    def is_done(self, name: str, inputs: dict) -> bool:
        marker = self.root / name / "stage.json"
        return marker.exists() and read_json(marker).get("key") == self.key(inputs)

    def _skip(self, name: str) -> Path:
        out = self.root / name
        self.skipped.append(name)
        self.timings[name] = read_json(out / "stage.json").get("seconds", 0.0)
        console.print(f"[dim]stage {name}: up to date, skipped[/dim]")
        return out

    def _claim(self, name: str) -> StageLock:
        lock = StageLock(self.root, name)
        try:
            lock.acquire(wait=False)
        except StageBusy as busy:
            if not self.wait:
                raise
            console.print(f"[yellow]{busy}; waiting for it[/yellow]")
            lock.acquire(wait=True)
        return lock

    def run(self, name: str, inputs: dict, fn: Callable[[Path], None]) -> Path:
        """Run ``fn(tmp_dir)`` unless stage ``name`` already holds outputs for ``inputs``."""
        if self.is_done(name, inputs):
            return self._skip(name)
        lock = self._claim(name)
        try:
            if self.is_done(name, inputs):  # another worker finished it while this one waited
                return self._skip(name)
            return self._build(name, inputs, fn)
        finally:
            lock.release()

    def _build(self, name: str, inputs: dict, fn: Callable[[Path], None]) -> Path:
        out = self.root / name
        key = self.key(inputs)
        console.print(f"[bold cyan]stage {name}[/bold cyan]")
        tmp = out.parent / f".{out.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        start = time.perf_counter()
        fn(tmp)
        seconds = round(time.perf_counter() - start, 2)
        write_json(tmp / "stage.json", {"key": key, "seconds": seconds, "inputs": inputs})
        if out.exists():
            old = out.parent / f".{out.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            shutil.rmtree(old)
        os.replace(tmp, out)
        self.ran.append(name)
        self.timings[name] = seconds
        return out
