"""Hidden-state extraction and the whole analysis on the tiny random model."""

import json

import numpy as np
import pytest
import torch

from spillover.concepts import analyse_concepts, extract_last_token_states, plot_concepts
from spillover.generation import render_chat
from spillover.models import load_model

PROMPTS = ["hello", "what is the capital of France and why is it so large", "reverse a string", "x", "sorry"]


def single_forward(model, tok, prompt):
    ids = tok(render_chat(tok, prompt), return_tensors="pt", add_special_tokens=False)["input_ids"].to(model.device)
    with torch.inference_mode():
        out = model(input_ids=ids, output_hidden_states=True)
    return np.stack([h[0, -1].float().cpu().numpy() for h in out.hidden_states])  # (L+1, D)


def test_extraction_shape_padding_and_cache(tiny_model_dir, tmp_path):
    model, tok = load_model(str(tiny_model_dir), dtype="fp32")
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    states = extract_last_token_states(model, tok, PROMPTS, batch_size=3, cache=tmp_path)
    cfg = model.config
    assert states.shape == (cfg.num_hidden_layers + 1, len(PROMPTS), cfg.hidden_size)
    assert states.dtype == np.float16
    assert len(calls) == 2
    for i, p in enumerate(PROMPTS):  # left padding and length sorting leave every state unchanged
        np.testing.assert_allclose(states[:, i], single_forward(model, tok, p), rtol=1e-2, atol=2e-3)
    calls.clear()
    again = extract_last_token_states(model, tok, PROMPTS, batch_size=3, cache=tmp_path)
    assert not calls and np.array_equal(again, states)  # answered from the cache
    extract_last_token_states(model, tok, PROMPTS[:2], batch_size=3, cache=tmp_path)
    assert len(calls) == 1  # other prompts, other key


def test_analyse_concepts_writes_summary_and_figures(tiny_model_dir, tmp_path):
    model, tok = load_model(str(tiny_model_dir), dtype="fp32")
    words = ["cat", "dog", "sorry", "Paris", "string", "help", "python", "city"]
    prompts = {d: [f"{w} {d} {i}" for i, w in enumerate(words)] for d in ["safety", "cybersecurity", "bias"]}
    benign = [f"tell me about {w}" for w in words]
    for method in ("pca", "diffmean"):
        out = tmp_path / method
        result = analyse_concepts(model, tok, prompts, benign, out, method=method, batch_size=4, model_name="tiny")
        s = json.loads((out / "summary.json").read_text())
        assert list(s) == ["model", "method", "layers", "domains", "position", "vector_similarity",
                           "target_to_domain", "histograms", "seconds"]
        assert s["method"] == method and s["layers"] == [1, 2] and s["domains"] == list(prompts)
        assert s["position"].endswith("'<|im_end|>\\n<|im_start|>assistant\\n'")
        assert np.asarray(s["vector_similarity"]).shape == (2, 3, 3)
        assert np.allclose(np.diagonal(np.asarray(s["vector_similarity"]), axis1=1, axis2=2), 1, atol=1e-4)
        assert set(s["target_to_domain"]["safety"]) == {"safety", "cybersecurity", "bias", "benign"}
        assert len(s["histograms"]["bias"]["2"]["benign"]) == len(benign)
        assert result.vectors["safety"].shape == (2, model.config.hidden_size)
    names = {p.name for p in plot_concepts(tmp_path / "pca")}
    assert names == {"histograms_layer2.png", "vector_similarity.png", "target_to_domain.png"}


def test_analyse_rejects_bad_input(tiny_model_dir, tmp_path):
    from spillover.io import InputError

    model, tok = load_model(str(tiny_model_dir), dtype="fp32")
    with pytest.raises(InputError, match="no prompts for: bias"):
        analyse_concepts(model, tok, {"bias": []}, ["hi"], tmp_path)
    with pytest.raises(InputError, match="layers \\[5\\]"):
        analyse_concepts(model, tok, {"bias": ["a", "b"]}, ["hi", "yo"], tmp_path, layers=[5])


@pytest.mark.slow
def test_real_model_states_fit_float16(aligned_model):
    from spillover.concepts import describe_position

    model, tok = aligned_model
    states = extract_last_token_states(model, tok, PROMPTS[:3], batch_size=3)
    assert states.shape == (model.config.num_hidden_layers + 1, 3, model.config.hidden_size)
    assert np.isfinite(states).all()
    assert describe_position(tok).endswith("'<|im_end|>\\n<|im_start|>assistant\\n'")
    assert "'\\n' (id 198)" in describe_position(tok)
