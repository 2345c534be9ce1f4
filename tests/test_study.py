"""The study pipeline end to end on the tiny model: caching, resume after interruption, config errors."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spillover.config import load_yaml_config
from spillover.io import InputError
from spillover.study import Study, StudyConfig
from study_stubs import allow_marker, with_marker_judge


def tiny_config(model_dir, out_dir, labeler_dir=None) -> StudyConfig:
    """The tiny study; ``labeler_dir`` (default ``model_dir``) must answer without the refusal marker."""
    return StudyConfig.model_validate({
        "name": "tiny", "output_dir": str(out_dir),
        "targets": ["cybersecurity"], "variants": ["unlearn", "aug_unlearn", "finetune"], "seeds": [0],
        "models": {"aligned": str(model_dir), "labeler": str(labeler_dir or model_dir), "dtype": "fp32", "batch_size": 4},
        "judges": {"primary": "marker", "per_set": {}},
        "evaluation": {"n_per_set": 4, "mmlu_n": 6, "decoding": {"max_new_tokens": 4},
                       "sets": ["cybersecurity", "safety", "privacy", "xstest"]},
        "collect": {"n_target_train": 12, "n_other_train": 4, "validation_n": 3, "decoding": {"max_new_tokens": 4}},
        "training": {"lora": {"r": 4}, "lr": 0.05, "batch_size": 2, "max_steps": 2, "save_every": 1, "max_length": 64},
        "selection": {"mmlu_n": 6, "kl_prompts": 2},
        "concepts": {"n_per_domain": 6},
    })


@pytest.fixture
def marker_judge(monkeypatch):
    import spillover.evaluation as ev
    import spillover.study.preflight as pf

    monkeypatch.setattr(ev, "build_judge", with_marker_judge(ev.build_judge))
    monkeypatch.setattr(pf, "validate_judge_spec", allow_marker(pf.validate_judge_spec))


def _results(root):
    return (root / "results" / "scores.csv").read_text(), (root / "results" / "kl.csv").read_text()


@pytest.mark.slow
def test_study_runs_caches_and_resumes(refusing_model_dir, tiny_model_dir, data_dir, tmp_path, marker_judge,
                                       monkeypatch):
    cfg = tiny_config(refusing_model_dir, tmp_path / "a", tiny_model_dir)
    root = Study(cfg, data_dir).run()
    assert (root / "report" / "report.html").exists()
    scores = (root / "results" / "scores.csv").read_text().splitlines()
    assert sum(1 for r in scores if r.startswith("aligned,")) == 5  # 4 sets + mmlu
    assert sum(1 for r in scores if r.startswith("unlearn,cybersecurity")) == 5
    target_row = next(r for r in scores if r.startswith("unlearn,cybersecurity,0,cybersecurity,"))
    assert float(target_row.split(",")[10]) < 0  # the judge reads responses: unlearning shows
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["datasets"] and manifest["config"]["name"] == "tiny"

    again = Study(cfg, data_dir)
    again.run()
    assert again.runner.ran == [] and "train/cybersecurity/unlearn/seed0" in again.runner.skipped

    # Interrupt a second study right after training its first variant (Ctrl-C), then resume.
    cfg_b = tiny_config(refusing_model_dir, tmp_path / "b", tiny_model_dir)
    calls = {"n": 0}
    original = Study.evaluate_run

    def interrupted(self, *args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(Study, "evaluate_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Study(cfg_b, data_dir).run()
    monkeypatch.setattr(Study, "evaluate_run", original)
    resumed = Study(cfg_b, data_dir)
    resumed.run()
    assert {"data", "baseline", "collect/cybersecurity", "train/cybersecurity/unlearn/seed0"} <= set(resumed.runner.skipped)
    assert "eval/cybersecurity/unlearn/seed0" in resumed.runner.ran
    assert _results(tmp_path / "b" / "tiny") == _results(root)

    # kill -9 a third study in the middle of training, then resume: training continues from its
    # last checkpoint and the results equal the uninterrupted run's.
    out_d = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("study_runner.py")),
                             str(refusing_model_dir), str(out_d), str(data_dir), str(tiny_model_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not list((out_d / "tiny" / "cache" / "train").glob("*/checkpoint-1/trainer_state.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "study ended before its first checkpoint"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed_d = Study(tiny_config(refusing_model_dir, out_d, tiny_model_dir), data_dir)
    resumed_d.run()
    assert {"data", "baseline", "collect/cybersecurity"} <= set(resumed_d.runner.skipped)
    steps = [json.loads(line)["step"] for line in
             next((out_d / "tiny" / "cache" / "train").glob("cybersecurity-unlearn-*")).joinpath("train_log.jsonl")
             .read_text().splitlines()]
    assert steps == [1, 2]
    assert _results(out_d / "tiny") == _results(root)

    # A changed evaluation section re-runs evaluation only, not training.
    cfg_c = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"examples_per_set": 1})})
    changed = Study(cfg_c, data_dir)
    changed.run()
    assert "baseline" in changed.runner.ran and "train/cybersecurity/unlearn/seed0" in changed.runner.skipped


def test_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntargets: [cybersecurity, astrology]\n")
    with pytest.raises(InputError, match="targets"):
        load_yaml_config(StudyConfig, bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: x\nevaluation:\n  n_per_sett: 3\n")
    with pytest.raises(InputError, match="evaluation.n_per_sett"):
        load_yaml_config(StudyConfig, typo)


@pytest.mark.slow
def test_unlearn_without_files_collects_trains_and_selects(refusing_model_dir, data_dir, tmp_path, marker_judge):
    import yaml

    from spillover.study.single import single_run

    cfg = tiny_config(refusing_model_dir, tmp_path).model_dump(mode="json")
    cfg["concepts"]["enabled"] = False
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "unlearn-cyber"
    single_run(preset, str(refusing_model_dir), "cyber", "unlearn", out, data_dir, {"max_steps": 2, "lora.r": 2})
    selected = json.loads((out / "train" / "cybersecurity" / "unlearn" / "seed0" / "selected.json").read_text())
    assert selected["step"] in (1, 2) and Path(selected["path"]).is_dir()
    assert json.loads((out / "collect" / "cybersecurity" / "counts.json").read_text())["forget"] > 0
    assert not (out / "eval").exists()  # stops after training


@pytest.mark.slow
def test_study_with_the_default_judge_reports_its_calibration(refusing_model_dir, tiny_model_dir, data_dir, tmp_path):
    """The real default judge (encoder + probes) through a whole tiny study, report included."""
    cfg = tiny_config(refusing_model_dir, tmp_path / "d", tiny_model_dir)
    cfg = cfg.model_copy(update={"variants": ["unlearn"],
                                 "judges": cfg.judges.model_copy(update={"primary": "default", "audit": "keyword",
                                                                         "audit_sample": 6})})
    root = Study(cfg, data_dir).run()
    rows = [json.loads(line) for line in (root / "baseline" / "responses.jsonl").read_text().splitlines()]
    assert all(r["judge"].startswith(("lora-", "probe-", "default-v4", "bbq-")) for r in rows)
    # "I'm sorry, but I can't help..." is what the refusing model says: a refusal
    assert sum(r["label"] == "refusal" for r in rows if "sorry" in r["response"].lower()) == \
        sum("sorry" in r["response"].lower() for r in rows) > 0
    calibration = json.loads((root / "results" / "calibration.json").read_text())
    assert {c["set"] for c in calibration} == {"xstest-v2", "spillover-own-v1"}
    assert all(0.5 < c["kappa"] <= 1 for c in calibration)
    html = (root / "report" / "report.html").read_text()
    assert "Calibration of the primary judge against human labels" in html and "spillover-own-v1" in html


@pytest.fixture(scope="module")
def sequential(refusing_model_dir, tiny_model_dir, data_dir, tmp_path_factory) -> Path:
    """The tiny study run once in this process: the reference for the parallel executors."""
    with pytest.MonkeyPatch.context() as mp:
        import spillover.evaluation as ev
        import spillover.study.preflight as pf

        mp.setattr(ev, "build_judge", with_marker_judge(ev.build_judge))
        mp.setattr(pf, "validate_judge_spec", allow_marker(pf.validate_judge_spec))
        return Study(tiny_config(refusing_model_dir, tmp_path_factory.mktemp("seq"), tiny_model_dir), data_dir).run()


def _same_results(root: Path, seq: Path) -> None:
    for f in sorted((seq / "results").iterdir()):
        assert (root / "results" / f.name).read_bytes() == f.read_bytes(), f.name


@pytest.mark.slow
def test_two_workers_share_a_study_and_match_the_sequential_run(refusing_model_dir, tiny_model_dir, data_dir,
                                                                tmp_path, marker_judge, sequential):
    out = tmp_path / "par"
    script = str(Path(__file__).with_name("study_runner.py"))
    procs = [subprocess.Popen([sys.executable, script, str(refusing_model_dir), str(out), str(data_dir),
                               str(tiny_model_dir), f"{i}/2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for i in range(2)]
    logs = [p.communicate(timeout=1200)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs[0][-3000:] + logs[1][-3000:]
    built = [re.findall(r"^stage (\S+)$", log, flags=re.MULTILINE) for log in logs]  # not "skipped" or "waiting" lines
    gather = Study(tiny_config(refusing_model_dir, out, tiny_model_dir), data_dir)
    root = gather.run()
    assert gather.runner.ran == []  # the workers built every stage ...
    every = built[0] + built[1]
    assert len(every) == len(set(every)) and set(every) == set(gather.runner.skipped)  # ... each exactly once
    assert built[0] and built[1]
    _same_results(root, sequential)


SPILLOVER_SHIM = """#!{python}
import sys
sys.path.insert(0, {tests!r})
from study_stubs import install_marker_judge
install_marker_judge()
from spillover.cli import main
sys.exit(main())
"""


@pytest.mark.slow
def test_the_slurm_array_script_runs_the_study_in_shards(refusing_model_dir, tiny_model_dir, data_dir, tmp_path,
                                                         marker_judge, sequential):
    """scripts/slurm-study.sh as two concurrent array tasks (its ``spillover`` accepts the test judge),
    then a plain run gathers: every stage built by a task, results equal to the sequential run's."""
    import yaml

    cfg = tiny_config(refusing_model_dir, tmp_path / "slurm", tiny_model_dir)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "spillover"
    shim.write_text(SPILLOVER_SHIM.format(python=sys.executable, tests=str(Path(__file__).parent)))
    shim.chmod(0o755)
    script = Path(__file__).parents[1] / "scripts" / "slurm-study.sh"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", SPILLOVER_DATA_DIR=str(data_dir),
               SLURM_ARRAY_TASK_COUNT="2")
    procs = [subprocess.Popen(["bash", str(script), str(config)], env={**env, "SLURM_ARRAY_TASK_ID": str(i)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = [p.communicate(timeout=1200)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs[0][-3000:] + logs[1][-3000:]
    gather = Study(cfg, data_dir)
    root = gather.run()
    assert gather.runner.ran == [] and "train/cybersecurity/finetune/seed0" in gather.runner.skipped
    _same_results(root, sequential)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (the [ray] extra)")
def test_the_ray_executor_runs_the_units_as_tasks_and_matches_the_sequential_run(
        refusing_model_dir, tiny_model_dir, data_dir, tmp_path, marker_judge, sequential):
    """A new local Ray instance on the CPU: each unit a Ray task in a worker process, the driver
    builds only ``data`` and then gathers; results byte-identical to the sequential run's."""
    import spillover
    from spillover.study.ray_executor import RayExecutor

    path = os.pathsep.join([str(Path(__file__).parent), str(Path(spillover.__file__).parents[1])])
    executor = RayExecutor("local", runtime_env={"env_vars": {"PYTHONPATH": path},
                                                 "worker_process_setup_hook": "study_stubs.install_marker_judge"})
    study = Study(tiny_config(refusing_model_dir, tmp_path / "ray", tiny_model_dir), data_dir)
    root = study.run(executor=executor)
    assert study.runner.ran == ["data"]
    assert set(study.runner.skipped) >= {"baseline", "collect/cybersecurity", "eval/cybersecurity/aug_unlearn/seed0",
                                         "concepts"}
    owners = {lock.name: json.loads(lock.read_text())["owner"] for lock in (root / ".locks").glob("*.lock")}
    tasks = {owner for name, owner in owners.items() if name != "data.lock"}
    assert owners["data.lock"].endswith(f":{os.getpid()}") and len(tasks) >= 2  # units ran in Ray's workers
    assert not any(owner.endswith(f":{os.getpid()}") for owner in tasks)
    _same_results(root, sequential)


def test_a_target_with_no_refusals_is_reported_not_trained(tiny_model_dir, data_dir, tmp_path, marker_judge):
    """The aligned model never refuses, so the forget set is empty: the study finishes without
    training that run and says so in training_sets.csv, the manifest and the report."""
    cfg = tiny_config(tiny_model_dir, tmp_path / "n").model_dump(mode="json")
    cfg["variants"], cfg["concepts"]["enabled"] = ["unlearn"], False
    root = Study(StudyConfig.model_validate(cfg), data_dir).run()
    assert json.loads((root / "collect" / "cybersecurity" / "counts.json").read_text())["forget"] == 0
    assert not (root / "train" / "cybersecurity" / "unlearn").exists()
    sets = (root / "results" / "training_sets.csv").read_text().splitlines()
    assert sets[1] == "unlearn,cybersecurity,0,forget,0,0,False"
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["runs_not_trained"] == [{"target": "cybersecurity", "variant": "unlearn", "seed": 0,
                                             "examples": 0, "set": "collect/cybersecurity/forget"}]
    assert not any(r.startswith("unlearn,") for r in (root / "results" / "scores.csv").read_text().splitlines())
    assert "Not trained" in (root / "report" / "report.html").read_text()
