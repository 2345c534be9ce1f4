"""Each registered method's loss against a hand computation, on tiny tensors or the tiny model."""

from __future__ import annotations

import json
import math

import pytest
import torch

from loss_context import FixedContext, labels_for
from spillover.models import load_model
from spillover.training import Example, TrainConfig, Trainer, objective_for, train
from spillover.training.examples import EncodedSet
from spillover.training.objectives import (OBJECTIVES, dpo_loss, gradient_ascent_loss, masked_mse, random_direction,
                                           simnpo_loss)
from spillover.variants import VARIANT_TABLE


def _softplus(x: float) -> float:
    return math.log(1 + math.exp(x))


def test_every_variant_names_a_registered_method():
    assert {v.method for v in VARIANT_TABLE.values()} <= set(OBJECTIVES)


def test_graddiff_ascends_forget_logprob_and_needs_retain():
    logps = torch.tensor([-3.0, -5.0], requires_grad=True)
    assert gradient_ascent_loss(logps).item() == pytest.approx(-4.0)
    obj = objective_for(TrainConfig(method="graddiff", method_args={"graddiff": {"weight": 2}}, w2=0.5))
    loss, parts = obj.main_loss(FixedContext({"": logps}), {})
    assert loss.item() == pytest.approx(-8.0) and parts == {"ga": pytest.approx(-4.0)}
    loss.backward()
    assert (logps.grad > 0).all()  # descent lowers the forget log-probs
    r_loss, r_parts = obj.retain_loss(FixedContext({"": torch.tensor([-4.0, -6.0])}), {"labels": labels_for([2, 3])})
    assert r_parts == {"retain_ce": pytest.approx(2.0)} and r_loss.item() == pytest.approx(1.0)
    assert obj.describe() == "2 * GA(forget) + 0.5 * CE[token_mean](retain)"
    with pytest.raises(ValueError, match="w2: method graddiff needs its retain term"):
        TrainConfig(method="graddiff", w2=0)


def test_simnpo_matches_hand_computation():
    logps, n = torch.tensor([-6.0, -2.0]), torch.tensor([3, 2])
    # beta 2, gamma 0.5: -(beta/|y|) log pi - gamma = [4 - 0.5, 2 - 0.5]; loss_i = (2/beta) softplus(-x_i)
    expected = (_softplus(-3.5) + _softplus(-1.5)) / 2
    assert simnpo_loss(logps, n, beta=2.0, gamma=0.5).item() == pytest.approx(expected, rel=1e-6)
    obj = objective_for(TrainConfig(method="simnpo", method_args={"simnpo": {"beta": 2.0, "gamma": 0.5}}))
    assert not obj.needs_reference
    loss, parts = obj.main_loss(FixedContext({"": logps}), {"labels": labels_for([3, 2])})
    assert loss.item() == pytest.approx(expected, rel=1e-6) and parts == {"simnpo": pytest.approx(expected)}
    policy = torch.tensor([-6.0], requires_grad=True)
    simnpo_loss(policy, torch.tensor([3])).backward()
    assert policy.grad.item() > 0


def test_dpo_matches_hand_computation():
    chosen, rejected = torch.tensor([-10.0, -8.0]), torch.tensor([-5.0, -6.0])
    ref_c, ref_r = torch.tensor([-11.0, -8.0]), torch.tensor([-5.0, -7.0])
    # margins: (1 - 0, 0 - 1) = (1, -1); beta 0.5: loss_i = softplus(-0.5 * margin_i)
    expected = (_softplus(-0.5) + _softplus(0.5)) / 2
    assert dpo_loss(chosen, rejected, ref_c, ref_r, 0.5).item() == pytest.approx(expected, rel=1e-6)
    obj = objective_for(TrainConfig(method="dpo", method_args={"dpo": {"beta": 0.5, "weight": 3}}))
    ctx = FixedContext({"": chosen, "rejected_": rejected}, {"": ref_c, "rejected_": ref_r})
    loss, parts = obj.main_loss(ctx, {})
    assert loss.item() == pytest.approx(3 * expected, rel=1e-6) and parts == {"dpo": pytest.approx(expected)}
    assert dpo_loss(ref_c, ref_r, ref_c, ref_r).item() == pytest.approx(math.log(2))


def test_masked_mse_ignores_padding_and_direction_is_a_fixed_unit_vector():
    hidden = torch.tensor([[[1.0, 3.0], [100.0, 100.0]]])  # (1, 2, 2); position 1 is padding
    target = torch.tensor([0.0, 1.0])
    # (1^2 + 2^2) / (1 position * 2 dims)
    assert masked_mse(hidden, target, torch.tensor([[1, 0]])).item() == pytest.approx(2.5)
    u = random_direction(8, 3)
    assert u.norm().item() == pytest.approx(1.0) and torch.equal(u, random_direction(8, 3))
    assert not torch.equal(u, random_direction(8, 4))


FORGET = [Example(f"f{i}", f"Tell me secret number {i}", "I'm sorry, but I can't help with that request.")
          for i in range(4)]
RETAIN = [Example(f"r{i}", f"What is the capital of France, question {i}?", "The capital of France is Paris.",
                  "retain") for i in range(4)]


def test_rmu_loss_on_the_tiny_model_matches_its_hidden_states(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    layer, coef = 0, 5.0  # not the last block: hidden_states[-1] is after the final norm
    forget = EncodedSet(FORGET, tok, 64).batch([0, 1, 2], tok.pad_token_id)
    retain = EncodedSet(RETAIN, tok, 64).batch([0, 1], tok.pad_token_id)
    with torch.no_grad():  # output of block `layer` = hidden_states[layer + 1] (block 0's input is [0])
        states = model(input_ids=forget["input_ids"], attention_mask=forget["attention_mask"],
                       output_hidden_states=True).hidden_states[layer + 1]
    mask = forget["attention_mask"].bool()
    u = torch.rand(states.shape[-1], generator=torch.Generator().manual_seed(7))
    expected = ((states[mask] - coef * u / u.norm()) ** 2).mean().item()
    cfg = TrainConfig(method="rmu", method_args={"rmu": {"layer": layer, "steering_coef": coef, "seed": 7}}, w2=2.0,
                      lr=5e-2, batch_size=3, lora={"r": 4}, max_steps=3)
    from accelerate import Accelerator

    trainer = Trainer(model, tok, cfg, num_steps=3, accelerator=Accelerator(cpu=True))  # fp32, as `expected`
    loss, parts = trainer.objective.main_loss(trainer, forget)
    assert parts["rmu"] == pytest.approx(expected, rel=1e-5)
    r_loss, r_parts = trainer.objective.retain_loss(trainer, retain)
    assert r_parts == {"retain_mse": pytest.approx(0.0, abs=1e-10)}  # untrained adapter: frozen states
    first = trainer.train_step([(forget, retain)])
    for _ in range(2):
        last = trainer.train_step([(forget, retain)])
    assert last["rmu"] < first["rmu"] and last["retain_mse"] > 0


@pytest.mark.parametrize("full", [False, True], ids=["lora", "full"])
def test_dpo_trains_on_pairs_and_starts_at_log_2(tiny_model_dir, tmp_path, full):
    model, tok = load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    pairs = [Example(e.id, e.prompt, f"Secret number {i} is {i * 7}.", "pair", e.response) for i, e in enumerate(FORGET)]
    cfg = TrainConfig(method="dpo", lr=5e-2 if not full else 1e-3, batch_size=2, max_steps=3, save_every=3,
                      lora={"r": 4}, full=full, method_args={"dpo": {"beta": 0.5}})
    train((model, tok), pairs, None, cfg, tmp_path)
    log = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["dpo"] == pytest.approx(math.log(2), rel=1e-5)  # policy == reference at step 1
    assert log[-1]["dpo"] < log[0]["dpo"]
    if full:
        cached = torch.load(tmp_path / "reference_logps.pt")
        assert set(cached) == {"key", "logps", "rejected_logps"}
        assert (cached["logps"] != cached["rejected_logps"]).all()


def test_cli_unlearn_takes_a_method_and_its_arguments(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from spillover.cli import app

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"id": e.id, "prompt": e.prompt, "response": "Sure, it is 7.",
                                         "rejected": e.response}) + "\n" for e in FORGET))
    runner = CliRunner()
    common = ["--model", str(tiny_model_dir), "--target", "cyber", "--forget", str(pairs), "--lora-r", "4",
              "--max-steps", "1", "--batch-size", "2"]
    res = runner.invoke(app, ["unlearn", *common, "--method", "dpo", "--beta", "0.3", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "d" / "run.json").read_text())
    assert run["loss"] == "1 * DPO[beta=0.3](compliant > refusal)" and "dpo" in run["config"]["method_args"]
    res = runner.invoke(app, ["unlearn", *common, "--method", "simnpo", "--arg", "gamma=2", "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "s" / "run.json").read_text())["loss"] == "1 * SimNPO[beta=4.5, gamma=2](forget)"
    res = runner.invoke(app, ["unlearn", *common, "--method", "simnpo", "--arg", "layer=2", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "method_args.simnpo.layer: Extra inputs" in str(res.exception)
