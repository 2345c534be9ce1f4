"""Training-free methods: one edit, saved as a full-weight checkpoint, with diagnostics before and after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import Field

from spillover.io import InputError
from spillover.models import load_model
from spillover.training import Diagnostics, Example, TrainConfig, Trainer, train
from spillover.training.objectives import OBJECTIVES, Edit, EditArgs
from spillover.variants import VARIANT_TABLE, VariantSpec

FORGET = [Example(f"f{i}", f"Tell me secret number {i}", "I'm sorry, but I can't help with that request.")
          for i in range(3)]
CONTRAST = [f"What is the capital of France, question {i}?" for i in range(5)]


class ScaleHead(Edit):
    """Scales the LM head by ``factor`` (untied from the embeddings first); records what it read."""

    class Args(EditArgs):
        factor: float = Field(2.0, gt=0.0)

    name = "scale-head"
    calls = 0

    def edit(self, model, tokenizer, main, contrast, batch_size, system_prompt):
        ScaleHead.calls += 1
        head = model.get_output_embeddings()
        head.weight = torch.nn.Parameter(head.weight.detach().clone() * self.args.factor)
        model.config.tie_word_embeddings = False
        return {"prompts": [e.prompt for e in main], "contrast_read": list(contrast)}

    def describe(self) -> str:
        return f"scale LM head x{self.args.factor:g}"


@pytest.fixture
def scale_head(monkeypatch):
    monkeypatch.setitem(OBJECTIVES, ScaleHead.name, ScaleHead)
    monkeypatch.setitem(VARIANT_TABLE, "scaled", VariantSpec("scaled", ScaleHead.name, "forget", False, "scaled",
                                                             "#000000"))
    ScaleHead.calls = 0


def _cfg(**args) -> TrainConfig:
    return TrainConfig(method=ScaleHead.name, full_dtype="fp32",
                       method_args={ScaleHead.name: {"n_contrast": 2, **args}})


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_an_edit_is_one_full_weight_checkpoint_measured_before_and_after(tiny_model_dir, tmp_path, scale_head):
    diagnostics = Diagnostics(kl_prompts={"cybersecurity": CONTRAST[:2]}, batch_size=2)
    (ckpt,) = train(str(tiny_model_dir), FORGET, None, _cfg(factor=3.0), tmp_path, diagnostics, contrast=CONTRAST)
    assert (ckpt.step, ckpt.adapter) == (1, False)
    assert not any((ckpt.path / name).exists() for name in ("optimizer.pt", "scheduler.pt", "rng_state.pt"))
    record = json.loads((tmp_path / "edit.json").read_text())
    assert record["contrast_read"] == CONTRAST[:2] and record["contrast"] == 2 and record["main"] == 3
    assert record["edit"] == "scale LM head x3" and record["prompts"] == [e.prompt for e in FORGET]
    assert (tmp_path / "train_log.jsonl").read_text() == ""
    diag = _jsonl(tmp_path / "diagnostics.jsonl")
    assert [r["step"] for r in diag] == [0, 1]
    assert diag[0]["kl"]["cybersecurity"] == pytest.approx(0.0, abs=1e-6) and diag[1]["kl"]["cybersecurity"] > 0
    edited, _ = load_model(str(ckpt.path), device="cpu", dtype="fp32")
    base, _ = load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    assert torch.allclose(edited.get_output_embeddings().weight, 3 * base.get_output_embeddings().weight)
    assert torch.equal(edited.get_input_embeddings().weight, base.get_input_embeddings().weight)

    from test_study_disk import _sizes, _tensor_bytes

    from spillover.study.disk import stage_disk
    from spillover.study.plan import StagePlan

    disk = stage_disk(StagePlan("train/x/scaled", checkpoints_saved=1, training=_cfg(factor=3.0)),
                      _sizes(tiny_model_dir), None)
    assert (disk.weights, disk.optimizer) == (_tensor_bytes(ckpt.path / "model.safetensors"), 0)

    assert train(str(tiny_model_dir), FORGET, None, _cfg(factor=3.0), tmp_path, contrast=CONTRAST) == [ckpt]
    assert ScaleHead.calls == 1  # the finished edit is reused
    with pytest.raises(InputError, match="another model or configuration"):
        train(str(tiny_model_dir), FORGET, None, _cfg(factor=4.0), tmp_path, contrast=CONTRAST)


def test_an_edit_needs_contrast_prompts_and_takes_no_retain_term_or_optimiser(tiny_model_dir, tmp_path, scale_head):
    with pytest.raises(InputError, match="none were given"):
        train(str(tiny_model_dir), FORGET, None, _cfg(), tmp_path)
    with pytest.raises(ValueError, match="w2: method scale-head has no retain term"):
        TrainConfig(method=ScaleHead.name, w2=1.0)
    model, tok = load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    with pytest.raises(ValueError, match="training-free"):
        Trainer(model, tok, _cfg(), num_steps=1)


def test_cli_unlearn_applies_an_edit_with_contrast_prompts(tiny_model_dir, tmp_path, scale_head):
    from typer.testing import CliRunner

    from spillover.cli import app

    forget, contrast = tmp_path / "forget.jsonl", tmp_path / "benign.jsonl"
    forget.write_text("".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in FORGET))
    contrast.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in CONTRAST))
    common = ["unlearn", "--model", str(tiny_model_dir), "--target", "cyber", "--forget", str(forget)]
    runner = CliRunner()
    res = runner.invoke(app, [*common, "--method", ScaleHead.name, "--arg", "n_contrast=4", "--contrast", str(contrast),
                              "--out", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "e" / "run.json").read_text())
    assert run["loss"] == "scale LM head x2" and run["inputs"]["contrast"]["rows"] == 5
    assert json.loads((tmp_path / "e" / "edit.json").read_text())["contrast"] == 4
    res = runner.invoke(app, [*common, "--method", ScaleHead.name, "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "needs --contrast FILE" in str(res.exception)
    res = runner.invoke(app, [*common, "--method", "npo", "--contrast", str(contrast), "--out", str(tmp_path / "y")])
    assert res.exit_code != 0 and "only a training-free method" in str(res.exception)


def test_the_planner_counts_an_edit_as_one_pass_and_one_full_checkpoint(tmp_path, scale_head):
    from test_study_plan import _stage, _study

    from spillover.study.plan import plan

    study = _study(tmp_path, **{"variants": ["unlearn", "scaled"],
                                "training.method_args": {ScaleHead.name: {"n_contrast": 7}}})
    edit = _stage(plan(study), "train/cybersecurity/scaled")
    assert edit.note.startswith("training-free edit from") and "7 benign prompts" in edit.note
    assert (edit.train_tokens, edit.train_passes, edit.checkpoints_saved, edit.checkpoint_kind) == (0, 0, 1, "full")
    assert _stage(plan(study), "eval/cybersecurity/scaled").checkpoint_kind == "full"
