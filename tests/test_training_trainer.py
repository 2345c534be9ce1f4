"""Trainer tests on the tiny random model: reference handling, checkpoints, resume, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from spillover.models import load_model
from spillover.training import Diagnostics, Example, TrainConfig, Trainer, train
from spillover.training.examples import EncodedSet
from spillover.training.logprobs import naive_sequence_logprobs
from spillover.training.trainer import stream_indices

FORGET = [Example(f"f{i}", f"Tell me secret number {i}", "I'm sorry, but I can't help with that request.")
          for i in range(6)]
RETAIN = [Example(f"r{i}", f"What is the capital of France, question {i}?", "The capital of France is Paris.",
                  "retain") for i in range(6)]


def _model(tiny_model_dir, dtype: str = "fp32"):
    return load_model(str(tiny_model_dir), device="cpu", dtype=dtype)


def _base_logps(model, batch) -> torch.Tensor:
    """(B,) log-probs of the untrained model on the device and in the precision the trainer uses
    (accelerate's device; bf16 autocast there when it is a GPU), returned on the CPU."""
    from accelerate import PartialState

    device = PartialState().device
    model.to(device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logps = naive_sequence_logprobs(model, *(batch[k].to(device) for k in ("input_ids", "attention_mask", "labels")))
    return logps.float().cpu()


#: How close two log-prob computations of one model agree: fp32 on a CPU, bf16 autocast on a GPU.
CLOSE = {"rtol": 1e-5, "atol": 1e-4} if not torch.cuda.is_available() else {"rtol": 1e-3, "atol": 5e-2}


def _log(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]


def test_stream_indices_cover_each_epoch_once():
    first = stream_indices(5, seed=3, start=0, count=10)
    assert sorted(first[:5]) == list(range(5)) and sorted(first[5:]) == list(range(5))
    assert stream_indices(5, 3, 4, 3) == first[4:7]


def test_lora_reference_is_the_base_model(tiny_model_dir):
    model, tok = _model(tiny_model_dir)
    batch = EncodedSet(FORGET[:3], tok, 64).batch([0, 1, 2], tok.pad_token_id)
    base = _base_logps(model, batch)
    cfg = TrainConfig(lr=5e-2, batch_size=3, lora={"r": 4}, max_steps=3, logprob_chunk_size=7,
                      gradient_checkpointing=True)
    trainer = Trainer(model, tok, cfg, num_steps=3)
    for _ in range(3):
        trainer.train_step([(batch, None)])
    with torch.no_grad():
        policy = trainer.logps(batch).float().cpu()
    ref = trainer.reference_logps(batch).float().cpu()
    torch.testing.assert_close(ref, base, **CLOSE)
    assert (policy < base - 1e-3).all()  # the adapter moved, and NPO lowered the refusal log-probs


def _crash_at(step: int):
    def hook(s, _row):
        if s == step:
            raise KeyboardInterrupt("simulated crash")
    return hook


@pytest.mark.parametrize("full,dtype", [(False, "fp32"), (True, "fp32"), (True, "bf16")],
                         ids=["lora", "full", "full-bf16-kahan"])
def test_resume_after_crash_continues_with_same_losses(tiny_model_dir, tmp_path, full, dtype):
    cfg = TrainConfig(lr=1e-2, batch_size=2, grad_accum=2, max_steps=6, save_every=2, w2=0.5,
                      lora={"r": 4}, full=full, logprob_chunk_size=16)
    ref_out, out = tmp_path / "ref", tmp_path / "run"
    train(_model(tiny_model_dir, dtype), FORGET, RETAIN, cfg, ref_out, resume=False)
    with pytest.raises(KeyboardInterrupt):
        train(_model(tiny_model_dir, dtype), FORGET, RETAIN, cfg, out, on_step=_crash_at(5))
    assert [r["step"] for r in _log(out)] == [1, 2, 3, 4, 5]
    seen = []
    ckpts = train(_model(tiny_model_dir, dtype), FORGET, RETAIN, cfg, out, on_step=lambda s, r: seen.append(s))
    assert seen == [5, 6]  # resumed after checkpoint-4
    assert [c.step for c in ckpts] == [2, 4, 6]
    expected, got = _log(ref_out), _log(out)
    assert [r["step"] for r in got] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(expected, got):
        for key in ("loss", "npo", "retain_ce", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (a["step"], key)
    assert not list(out.glob(".checkpoint-*"))


def test_full_rank_caches_reference_and_saves_loadable_weights(tiny_model_dir, tmp_path):
    model, tok = _model(tiny_model_dir)
    enc = EncodedSet(FORGET, tok, 64)
    batch = enc.batch(list(range(len(FORGET))), tok.pad_token_id)
    base = _base_logps(model, batch)
    cfg = TrainConfig(full=True, lr=1e-3, batch_size=3, max_steps=4, save_every=4,
                      method_args={"npo": {"beta": 0.1}})
    ckpts = train((model, tok), FORGET, None, cfg, tmp_path)
    cached = torch.load(tmp_path / "reference_logps.pt")
    assert cached["key"]["ids"] == [e.id for e in FORGET]
    torch.testing.assert_close(cached["logps"].float().cpu(), base, **CLOSE)
    log = _log(tmp_path)
    assert log[0]["npo"] == pytest.approx(20 * math.log(2), rel=CLOSE["rtol"])  # policy == reference at step 1
    assert log[-1]["npo"] < log[0]["npo"]
    ckpt = ckpts[-1].path
    assert (ckpt / "model.safetensors").exists() and (ckpt / "optimizer.pt").exists()
    reloaded, _ = load_model(str(ckpt), device="cpu", dtype="fp32")
    with torch.no_grad():
        after = naive_sequence_logprobs(reloaded, batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert (after < base).all()


@pytest.mark.parametrize("full", [False, True], ids=["lora", "full"])
def test_diagnostics_logged_at_step_zero_and_checkpoints(tiny_model_dir, tmp_path, full):
    diag = Diagnostics(kl_prompts={"cybersecurity": ["write malware", "hack wifi"], "safety": ["make a bomb"]})
    cfg = TrainConfig(lr=5e-2 if not full else 1e-3, batch_size=3, max_steps=4, save_every=2, lora={"r": 4},
                      full=full)
    train(_model(tiny_model_dir), FORGET, None, cfg, tmp_path, diagnostics=diag)
    rows = [json.loads(x) for x in (tmp_path / "diagnostics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert rows[0]["kl"] == {"cybersecurity": pytest.approx(0, abs=1e-6), "safety": pytest.approx(0, abs=1e-6)}
    assert rows[2]["kl"]["cybersecurity"] > 0


def test_kl_diagnostics_use_the_training_system_prompt(tiny_model_dir, tmp_path):
    from spillover.training.diagnostics import first_token_logprobs, kl_divergence

    system, prompts = "You are a careful assistant.", ["write malware", "hack wifi"]
    model, tok = _model(tiny_model_dir)
    aligned = {sp: first_token_logprobs(model, tok, prompts, system_prompt=sp) for sp in (system, None)}
    cfg = TrainConfig(full=True, lr=1e-2, batch_size=3, max_steps=2, save_every=2, system_prompt=system)
    train((model, tok), FORGET, None, cfg, tmp_path, diagnostics=Diagnostics(kl_prompts={"cybersecurity": prompts}))
    row = [json.loads(x) for x in (tmp_path / "diagnostics.jsonl").read_text().splitlines()][-1]
    kl = {sp: float(kl_divergence(aligned[sp], first_token_logprobs(model, tok, prompts, system_prompt=sp)).mean())
          for sp in aligned}
    assert kl[system] != pytest.approx(kl[None], rel=0.01)  # the system turn matters here
    assert row["step"] == 2 and row["kl"]["cybersecurity"] == pytest.approx(kl[system], rel=1e-3)


def test_changed_config_refuses_to_resume(tiny_model_dir, tmp_path):
    cfg = TrainConfig(lr=1e-3, batch_size=3, max_steps=2, save_every=1, lora={"r": 4})
    train(_model(tiny_model_dir), FORGET, None, cfg, tmp_path)
    from spillover.io import InputError

    with pytest.raises(InputError, match="another model or configuration"):
        train(_model(tiny_model_dir), FORGET, None, cfg.model_copy(update={"lr": 1e-2}), tmp_path)
    ckpts = train(_model(tiny_model_dir), FORGET, None, cfg.model_copy(update={"lr": 1e-2, "max_steps": 1}),
                  tmp_path, resume=False)  # starting over clears the old run
    assert [c.step for c in ckpts] == [1] and len(_log(tmp_path)) == 1


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_unlearn_and_finetune_from_files(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from spillover.cli import app

    forget = _write(tmp_path / "forget.jsonl", [{"id": e.id, "prompt": e.prompt, "response": e.response}
                                                for e in FORGET])
    retain = _write(tmp_path / "retain.jsonl", [{"id": e.id, "prompt": e.prompt, "response": e.response}
                                                for e in RETAIN])
    preset = tmp_path / "preset.yaml"
    preset.write_text("lr: 0.01\nbatch_size: 2\nsave_every: 2\nce_reduction: sequence_sum\nlora:\n  r: 8\n")
    runner = CliRunner()
    res = runner.invoke(app, ["unlearn", "--model", str(tiny_model_dir), "--target", "cyber", "--forget", str(forget),
                              "--retain", str(retain), "--w2", "1", "--lora-r", "4", "--max-steps", "2",
                              "--config", str(preset), "--out", str(tmp_path / "u")])
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "u" / "run.json").read_text())
    assert run["target"] == "cybersecurity" and run["config"]["lora"]["r"] == 4 and run["config"]["lr"] == 0.01
    assert run["loss"] == "1 * NPO[beta=0.1](forget) + 1 * CE[sequence_sum](retain)"
    assert (tmp_path / "u" / "checkpoint-2" / "adapter_model.safetensors").exists()
    res = runner.invoke(app, ["finetune", "--model", str(tiny_model_dir), "--target", "safety", "--train", str(forget),
                              "--max-steps", "1", "--batch-size", "2", "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    assert "retain_ce" not in _log(tmp_path / "f")[0] and "ce" in _log(tmp_path / "f")[0]


@pytest.mark.parametrize("extra", [["--config", "p.yaml"], ["--retain", "r.jsonl"], ["--kl-prompts", "k.jsonl"],
                                   ["--mmlu", "m.jsonl"], ["--no-resume"]])
def test_cli_unlearn_without_forget_refuses_file_only_options(monkeypatch, tmp_path, extra):
    from typer.testing import CliRunner

    import spillover.study.single as single
    from spillover.cli import app
    from spillover.io import InputError

    calls = []
    monkeypatch.setattr(single, "single_run", lambda *a, **k: calls.append((a, k)))
    res = CliRunner().invoke(app, ["unlearn", "--model", "m", "--target", "cyber", "--out", str(tmp_path),
                                   "--study-config", "configs/quick-cpu.yaml", *extra])
    assert isinstance(res.exception, InputError) and extra[0] in str(res.exception) and "--forget" in str(res.exception)
    assert calls == []


def test_cli_unlearn_without_forget_passes_every_training_option(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import spillover.study.single as single
    from spillover.cli import app

    calls = []
    monkeypatch.setattr(single, "single_run", lambda *a, **k: calls.append(a))
    res = CliRunner().invoke(app, ["unlearn", "--model", "m", "--target", "cyber", "--out", str(tmp_path),
                                   "--study-config", "configs/quick-cpu.yaml", "--max-length", "128", "--grad-accum", "4", "--lr", "0.001", "--w2", "1"])
    assert res.exit_code == 0, res.output
    (_, _, _, variant, _, _, training), = calls
    assert variant == "aug_unlearn"
    assert {k: v for k, v in training.items() if v is not None} == {"max_length": 128, "grad_accum": 4, "lr": 0.001,
                                                                      "w2": 1.0}


def test_cli_bad_input_names_file_and_row(tiny_model_dir, tmp_path):
    import subprocess
    import sys

    bad = _write(tmp_path / "forget.jsonl", [{"id": "a", "prompt": "p", "response": "r"}, {"id": "b", "prompt": "p"}])
    proc = subprocess.run([sys.executable, "-c", "from spillover.cli import main; main()", "unlearn",
                           "--model", str(tiny_model_dir), "--target", "cyber", "--forget", str(bad),
                           "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "forget.jsonl, row 2: missing field 'response'" in proc.stderr


DDP_SCRIPT = """
import sys
from pathlib import Path
import torch.distributed as dist
from spillover.models import load_model
from spillover.training import Example, TrainConfig, train
forget = [Example(f"f{i}", f"secret {i}", "I'm sorry, but I can't help with that request.") for i in range(8)]
model, tok = load_model(sys.argv[1], device="cpu", dtype="fp32")
train((model, tok), forget, None, TrainConfig(lr=1e-2, batch_size=2, max_steps=2, save_every=2, lora={"r": 4}),
      Path(sys.argv[2]))
trained = [p.detach().sum().item() for p in model.parameters() if p.requires_grad]
# one file per rank: two processes printing to one pipe can interleave within a line
(Path(sys.argv[2]) / f"rank{dist.get_rank()}.txt").write_text(f"rank {dist.get_rank()} of {dist.get_world_size()}: {sum(trained):.6f}")
"""


def test_two_process_ddp_keeps_replicas_identical(tiny_model_dir, tmp_path):
    import os
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # gloo on CPU
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script),
                           str(tiny_model_dir), str(tmp_path / "out")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = sorted(p.read_text() for p in (tmp_path / "out").glob("rank*.txt"))
    assert [x.split(":")[0] for x in lines] == ["rank 0 of 2", "rank 1 of 2"]
    assert lines[0].split(":")[1] == lines[1].split(":")[1]  # gradients were averaged across processes
    assert [r["step"] for r in _log(tmp_path / "out")] == [1, 2]  # logged once, by the main process


def test_step_zero_mmlu_is_memoised_and_later_steps_are_measured(tiny_model_dir, tmp_path):
    from types import SimpleNamespace

    from spillover.mmlu import mmlu_accuracy
    from spillover.training.diagnostics import DiagnosticsRunner

    model, tok = _model(tiny_model_dir)
    mmlu = [SimpleNamespace(id=f"m{i}", prompt=f"What is {i} plus {i}?",
                            meta={"choices": [str(2 * i), str(i), "7", "0"], "answer": i % 4}) for i in range(6)]
    memo = tmp_path / "memo" / "step0.json"
    spec = Diagnostics(kl_prompts={}, mmlu=mmlu, mmlu_method="cloze", step0_mmlu=memo)
    runner = DiagnosticsRunner(spec, tok, tmp_path, lora=True)
    measured = mmlu_accuracy(model, tok, mmlu, 8, "cloze")
    first = runner.run(model, 0)
    assert (first["mmlu_correct"], first["mmlu_n"]) == measured
    assert json.loads(memo.read_text()) == {"correct": measured[0], "n": 6}
    memo.write_text(json.dumps({"correct": 5, "n": 6}))  # another run's figure is read back, not recomputed
    assert runner.run(model, 0)["mmlu_correct"] == 5
    assert runner.run(model, 3)["mmlu_correct"] == measured[0]  # only step 0 is memoised
    assert json.loads(memo.read_text()) == {"correct": 5, "n": 6}


def test_only_the_latest_checkpoint_keeps_the_resume_state(tiny_model_dir, tmp_path):
    from spillover.training.checkpoints import RESUME_FILES

    cfg = TrainConfig(lr=1e-3, batch_size=3, max_steps=4, save_every=1, lora={"r": 4})

    def crash(step, row):
        if step == 3:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train(_model(tiny_model_dir), FORGET, None, cfg, tmp_path, on_step=crash)
    ckpts = train(_model(tiny_model_dir), FORGET, None, cfg, tmp_path)  # resumes from checkpoint-2
    assert [c.step for c in ckpts] == [1, 2, 3, 4] and [r["step"] for r in _log(tmp_path)] == [1, 2, 3, 4]
    for c in ckpts:
        assert (c.path / "adapter_model.safetensors").exists()  # every checkpoint stays evaluable
        kept = {f for f in RESUME_FILES if (c.path / f).exists()}
        assert kept == ({"optimizer.pt", "scheduler.pt", "rng_state.pt"} if c.step == 4 else set())
