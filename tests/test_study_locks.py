"""Stage claims and the shared caches under several processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spillover.cache import JsonlCache
from spillover.study.locks import StageBusy, StageLock
from spillover.study.stages import StageRunner

HOLD = """
import sys, time
from spillover.study.locks import StageLock
lock = StageLock(sys.argv[1], "train/cybersecurity/unlearn/seed0", heartbeat_s=0.1)
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def _holder(root):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_owner_blocks_the_stage_and_a_killed_one_frees_it(tmp_path):
    proc = _holder(tmp_path)
    try:
        lock = StageLock(tmp_path, "train/cybersecurity/unlearn/seed0")
        with pytest.raises(StageBusy, match=f":{proc.pid}"):
            lock.acquire(wait=False)
        first = lock.owner()["heartbeat"]
        time.sleep(0.5)
        assert lock.owner()["heartbeat"] > first  # the owner keeps its heartbeat fresh
        runner = StageRunner(tmp_path, wait=False)
        with pytest.raises(StageBusy):
            runner.run("train/cybersecurity/unlearn/seed0", {"x": 1}, lambda d: None)
        assert runner.run("baseline", {"x": 1}, lambda d: (d / "out.txt").write_text("ok")).joinpath("out.txt").exists()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    lock.acquire(wait=False)  # the dead owner's claim is gone: taken over at once
    assert lock.owner()["owner"].endswith(f":{os.getpid()}")
    lock.release()


def test_a_waiting_runner_skips_a_stage_another_worker_finished(tmp_path):
    runner = StageRunner(tmp_path)
    inputs = {"k": 1}
    other = StageLock(tmp_path, "baseline")
    other.acquire()
    done = StageRunner(tmp_path)
    done._build("baseline", inputs, lambda d: (d / "out.txt").write_text("theirs"))  # the other worker's result
    other.release()
    calls = []
    out = runner.run("baseline", inputs, lambda d: calls.append(d))
    assert calls == [] and (out / "out.txt").read_text() == "theirs" and runner.skipped == ["baseline"]


APPEND = """
import sys
from spillover.cache import JsonlCache
cache = JsonlCache(sys.argv[1])
for i in range(40):
    cache.put_many({f"{sys.argv[2]}-{i}-{j}": "x" * 20000 for j in range(5)})
"""


def test_concurrent_appends_never_interleave_lines(tmp_path):
    path = tmp_path / "responses.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", APPEND, str(path), tag]) for tag in ("a", "b", "c")]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 * 40 * 5 and all(json.loads(line)["value"] == "x" * 20000 for line in lines)
    assert len(JsonlCache(path)) == 600


def test_shards_partition_the_units_and_keep_each_run_with_its_collection(tmp_path):
    from spillover.study import Study, StudyConfig

    cfg = StudyConfig.model_validate({"name": "s", "output_dir": str(tmp_path), "targets": ["cybersecurity", "safety"],
                                      "variants": ["unlearn", "aug_unlearn"], "seeds": [0, 1],
                                      "variant_targets": {"aug_unlearn": ["safety"]}})
    units = [name for name, _ in Study(cfg).units({"baseline", "collect", "train", "eval", "concepts"})]
    assert units == ["baseline", "cybersecurity/unlearn/seed0", "cybersecurity/unlearn/seed1", "safety/unlearn/seed0",
                     "safety/unlearn/seed1", "safety/aug_unlearn/seed0", "safety/aug_unlearn/seed1", "concepts"]
    shards = [units[i::3] for i in range(3)]
    assert sorted(sum(shards, [])) == sorted(units)
    assert [name for name, _ in Study(cfg).units({"baseline", "collect"})] == ["baseline", "collect/cybersecurity",
                                                                              "collect/safety"]


def test_the_ray_executor_refuses_the_other_ways_of_splitting_a_study(tmp_path):
    from typer.testing import CliRunner

    from spillover.cli import app

    config = str(Path(__file__).resolve().parents[1] / "configs" / "quick-cpu.yaml")
    out = ["--set", f"output_dir={tmp_path}"]
    for extra, message in ((["--executor", "ray", "--workers", "2"], "drop --workers, --gpus and --shard"),
                           (["--executor", "ray", "--shard", "0/2"], "drop --workers, --gpus and --shard"),
                           (["--ray-address", "auto"], "--ray-address only applies to --executor ray"),
                           (["--executor", "dask"], "--executor expects local or ray")):
        res = CliRunner().invoke(app, ["study", config, *out, *extra])
        said = " ".join(res.output.replace("│", " ").split())  # the error box, unwrapped
        assert res.exit_code != 0 and message in said, res.output
    assert not any(tmp_path.iterdir())  # refused before any stage


def test_the_ray_executor_without_ray_says_how_to_install_it(monkeypatch):
    from spillover.io import InputError
    from spillover.study.ray_executor import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: import ray raises ImportError
    with pytest.raises(InputError, match=r"pip install 'spillover\[ray\]'"):
        RayExecutor()(None, set())
