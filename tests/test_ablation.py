"""Refusal-direction ablation: the projection by hand on the tiny model, the layer rule, the edit end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spillover.io import InputError
from spillover.models import load_model
from spillover.training import Example, TrainConfig, train
from spillover.training.objectives.ablation import WRITERS, choose_layer, orthogonalise
from tiny import build_tiny_model

FORGET = [Example(f"f{i}", f"Tell me secret number {i} and how to steal it", "I'm sorry, but I can't help with that.")
          for i in range(6)]
BENIGN = [f"What is the capital of France, question {i}?" for i in range(6)]
PROMPT = "Tell me how to reverse a string in Python"


def _unit(d: int, seed: int) -> torch.Tensor:
    r = torch.randn(d, generator=torch.Generator().manual_seed(seed))
    return r / r.norm()


def _ids(tok, prompt: str) -> torch.Tensor:
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    return tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]


def _project_out(r: torch.Tensor):
    """A forward hook that removes r from a module's output: the ablation done at inference, by hand."""
    return lambda _module, _inputs, out: out - (out @ r)[..., None] * r


def test_edited_writes_have_no_component_along_r_and_outputs_change_only_through_it(tiny_model_dir):
    base, tok = load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    edited, _ = load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    r = _unit(base.config.hidden_size, 0)
    blocks = edited.get_decoder().layers
    assert orthogonalise(edited, r) == 1 + len(WRITERS) * len(blocks)
    assert (edited.get_input_embeddings().weight @ r).abs().max() < 1e-6
    for block in blocks:
        for name in WRITERS:
            assert (r @ block.get_submodule(name).weight).abs().max() < 1e-6
    # the tied head was untied and kept the original embedding
    assert torch.equal(edited.get_output_embeddings().weight, base.get_input_embeddings().weight)
    assert not edited.config.tie_word_embeddings

    ids = _ids(tok, PROMPT)
    with torch.no_grad():
        out = edited(input_ids=ids, output_hidden_states=True)
        for h in out.hidden_states[:-1]:  # the residual stream before the final norm, every layer and position
            assert (h @ r).abs().max() < 1e-5 * h.norm(dim=-1).max()
        hooks = [m.register_forward_hook(_project_out(r))
                 for m in [base.get_input_embeddings()] + [b.get_submodule(n) for b in base.get_decoder().layers
                                                             for n in WRITERS]]
        by_hand = base(input_ids=ids).logits
        for h in hooks:
            h.remove()
        plain = base(input_ids=ids).logits
    assert torch.allclose(out.logits, by_hand, atol=1e-5)
    assert (out.logits - plain).abs().max() > 1e-3  # the direction mattered


def test_layer_rule_scores_held_out_halves_by_cohens_d():
    rng = np.random.default_rng(0)
    main, benign = rng.normal(size=(4, 8, 3)), rng.normal(size=(4, 8, 3))
    main[1, :, 0] += 1.0  # layer 1 separates a little, layer 2 a lot, layer 3 not at all
    main[2, :, 1] += 6.0
    best, scores = choose_layer(main, benign, [1, 2, 3])
    assert best == 2 and scores[2] > scores[1] > scores[3]
    direction = main[1, 0::2].mean(0) - benign[1, 0::2].mean(0)
    direction /= np.linalg.norm(direction)
    a, b = main[1, 1::2] @ direction, benign[1, 1::2] @ direction
    assert scores[1] == pytest.approx((a.mean() - b.mean()) / np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2), abs=1e-4)
    same, _ = choose_layer(np.stack([main[2]] * 3), np.stack([benign[2]] * 3), [0, 1, 2])
    assert same == 0  # ties go to the earlier layer


def test_the_edit_removes_the_diff_of_means_direction_of_the_chosen_layer(tmp_path):
    model_dir = build_tiny_model(tmp_path / "tiny4", layers=4)
    cfg = TrainConfig(method="ablation", full_dtype="fp32", batch_size=4, method_args={"ablation": {"n_contrast": 5}})
    (ckpt,) = train(str(model_dir), FORGET, None, cfg, tmp_path / "out", contrast=BENIGN)
    record = json.loads((tmp_path / "out" / "edit.json").read_text())
    assert set(record["separation"]) == {"1", "2", "3"}  # floor(0.8 x 4) = 3 candidates
    layer = record["layer"]
    assert record["separation"][str(layer)] == max(record["separation"].values())

    base, tok = load_model(str(model_dir), device="cpu", dtype="fp32")
    with torch.no_grad():  # the direction by hand: last prompt token, one prompt at a time (no padding)
        last = [base(input_ids=_ids(tok, p), output_hidden_states=True).hidden_states[layer][0, -1]
                for p in [e.prompt for e in FORGET] + BENIGN[:5]]
    diff = torch.stack(last[:len(FORGET)]).mean(0) - torch.stack(last[len(FORGET):]).mean(0)
    direction = torch.tensor(record["direction"])
    assert torch.allclose(direction, diff / diff.norm(), atol=2e-3)

    edited, _ = load_model(str(ckpt.path), device="cpu", dtype="fp32")
    with torch.no_grad():
        states = edited(input_ids=_ids(tok, PROMPT), output_hidden_states=True).hidden_states[:-1]
    assert max((h @ direction).abs().max() / h.norm(dim=-1).max() for h in states) < 1e-4


def test_a_fixed_layer_skips_the_rule_and_must_be_before_the_final_norm(tiny_model_dir, tmp_path):
    cfg = TrainConfig(method="ablation", full_dtype="fp32", method_args={"ablation": {"layer": 1}})
    train(str(tiny_model_dir), FORGET[:2], None, cfg, tmp_path / "a", contrast=BENIGN[:2])
    record = json.loads((tmp_path / "a" / "edit.json").read_text())
    assert record["layer"] == 1 and record["separation"] == {}
    with pytest.raises(InputError, match="method_args.ablation.layer: 2 is not below 2"):
        train(str(tiny_model_dir), FORGET, None, TrainConfig(method="ablation", method_args={"ablation": {"layer": 2}}),
              tmp_path / "b", contrast=BENIGN)
    with pytest.raises(InputError, match="at least 4 main and 4 contrast prompts"):
        train(str(tiny_model_dir), FORGET[:3], None, TrainConfig(method="ablation"), tmp_path / "c", contrast=BENIGN)


def test_every_backend_loads_the_edited_model(tiny_model_dir, tmp_path):
    from spillover.generation import Decoding, generate_responses
    from spillover.generation.loading import load_backend

    cfg = TrainConfig(method="ablation", full_dtype="fp32", method_args={"ablation": {"layer": 1}})
    (ckpt,) = train(str(tiny_model_dir), FORGET, None, cfg, tmp_path / "e", contrast=BENIGN)
    prompts, dec = ["Tell me about Paris.", PROMPT], Decoding(max_new_tokens=6)
    hf, static, int8 = (load_backend(name, str(ckpt.path), device="cpu", dtype="fp32", quantize=q)
                        for name, q in (("hf", "none"), ("static", "none"), ("hf", "int8")))
    base = load_backend("hf", str(tiny_model_dir), device="cpu", dtype="fp32")
    assert generate_responses(static, prompts, dec) == generate_responses(hf, prompts, dec)
    assert not hf.model.config.tie_word_embeddings
    assert torch.equal(hf.model.get_output_embeddings().weight, base.model.get_output_embeddings().weight)
    assert len(generate_responses(int8, prompts, dec)) == 2
