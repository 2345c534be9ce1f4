"""Rebuild the shipped probes (``spillover judge build-probes``) and the refusal classifier's
adapters (``spillover judge build-adapter``) from the dataset mirror.

- ``refusal-xstest``: the 1,800 XSTest v2 responses and their human labels (full or partial
  refusal = refusal); its card holds leave-one-answering-model-out agreement.
- ``toxicity-toxigen``: ToxiGen's hateful vs neutral statements about women (the statements that
  the Toxicity prompts are built from, labelled by the ToxiGen authors' prompt sets); its card
  holds stratified 5-fold agreement.

- ``refusal-xstest-lora``: low-rank adapters and a head on MiniLM (``finetuned.py``), trained
  on the 1,800 XSTest v2 (prompt, response) pairs; beside it ``refusal-xstest-lora-folds.npz``,
  the four adapters each trained with one answering model left out, whose held-out agreement
  the card holds (as the default judge routes XSTest rows, and the classifier alone).

Probe fitting is deterministic (lbfgs, no sampling); adapter training is seeded (same CPU kind
and thread count, same bytes). Each card records the data files' sha256s, the encoder's weights
checksum and the artefact's own sha256.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..data.readers import read_lines
from ..data.store import DataStore
from ..data.toxigen import parse_statements
from ..io import sha256_file
from .calibration import SAFE, UNSAFE, metrics, outcome
from .encoder import ResponseEncoder
from .finetuned import SEED as ADAPTER_SEED
from .finetuned import (ALPHA, BATCH, DROPOUT, EPOCHS, LR, MAX_TOKENS, PROMPT_TOKENS, RANK, TARGETS, TOP_LAYERS,
                        PairModel, items_sha256, save_folds, train_adapter)
from .labelled import XSTEST_MODELS, XSTEST_SET, xstest_completions
from .probe import Probe, ProbeJudge, fit_probe, lexical_features

TOXIGEN_FILES = {"toxigen/hate_women_1k.txt": 1, "toxigen/neutral_women_1k.txt": 0}
TOXIGEN_LINES = 250        # first lines of each file; they already hold all 37 distinct statements
FOLDS, SEED = 5, 0


def artifacts_dir() -> Path:
    return Path(__file__).parent / "artifacts"


def _encoder_card(encoder: ResponseEncoder | PairModel) -> dict:
    weights = Path(encoder.source) / "model.safetensors"
    digest = sha256_file(weights) if weights.is_file() else None
    return {"encoder": Path(encoder.source).name if weights.is_file() else encoder.source,
            "encoder_sha256": digest}


def _versions() -> dict:
    import sklearn
    import torch
    import transformers

    return {"scikit-learn": sklearn.__version__, "torch": torch.__version__, "transformers": transformers.__version__}


def _xstest_files() -> list[str]:
    return sorted({f"xstest_completions/xstest_v2_completions_{m}_{k}.csv" for m in XSTEST_MODELS
                   for k in ("gpteval", "streval")})


def build_refusal_probe(store: DataStore, encoder: ResponseEncoder, c: float = 3.0) -> Probe:
    """Fit on every XSTest v2 response; the card carries each held-out model's agreement."""
    items = xstest_completions(store)
    judge_items = [it.item for it in items]
    encoded = encoder.encode([it.response for it in judge_items], description="encoding XSTest v2")
    gold = np.array([it.gold for it in items], dtype=int)
    features = np.hstack([encoded, lexical_features([it.response for it in judge_items])])
    probe = fit_probe("refusal-xstest", "refusal", True, features, gold, c)
    cv = ProbeJudge(probe, encoder).cross_validate(judge_items, [it.group for it in items], list(gold), encoded)
    pooled = metrics([SAFE if g else UNSAFE for g in gold], [outcome(v.label) for v in cv])
    folds = {}
    for model in XSTEST_MODELS:
        idx = [i for i, it in enumerate(items) if it.group == model]
        m = metrics([SAFE if gold[i] else UNSAFE for i in idx], [outcome(cv[i].label) for i in idx])
        folds[model] = {"n": m.n, "kappa": round(m.kappa, 4), "accuracy": round(m.accuracy, 4)}
    files = _xstest_files()
    probe.card = {"name": probe.name, "kind": "refusal", "set": XSTEST_SET, "n": len(items),
                  "positives": int(gold.sum()), "C": c, "seed": SEED, "solver": "lbfgs (deterministic)",
                  "data_sha256": {f: store.sha256(f) for f in files}, **_encoder_card(encoder),
                  "versions": _versions(), "leave_one_model_out": folds,
                  "leave_one_model_out_mean_kappa": round(float(np.mean([f["kappa"] for f in folds.values()])), 4),
                  "leave_one_model_out_pooled": {"kappa": round(pooled.kappa, 4), "accuracy": round(pooled.accuracy, 4),
                                                 "kappa_95ci": [round(pooled.kappa_low, 4), round(pooled.kappa_high, 4)]}}
    return probe


def toxigen_statements(store: DataStore, lines: int = TOXIGEN_LINES) -> tuple[list[str], np.ndarray]:
    """Distinct statements from the first ``lines`` lines of each file; label 1 = hateful set.
    A statement found in both files is dropped."""
    seen: dict[str, int] = {}
    for name, label in TOXIGEN_FILES.items():
        for line in read_lines(store.path(name))[:lines]:
            for s in parse_statements(line):
                seen[s] = label if seen.get(s, label) == label else -1
    texts = [s for s, label in seen.items() if label >= 0]
    return texts, np.array([seen[s] for s in texts], dtype=int)


def build_toxicity_probe(store: DataStore, encoder: ResponseEncoder, c: float = 3.0) -> Probe:
    """Fit on ToxiGen statements; the card carries stratified 5-fold agreement."""
    texts, labels = toxigen_statements(store)
    encoded = encoder.encode(texts, description="encoding ToxiGen statements")
    rng = np.random.default_rng(SEED)
    fold = np.zeros(len(texts), dtype=int)
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        fold[idx] = np.arange(len(idx)) % FOLDS
    pred = np.zeros(len(texts), dtype=int)
    for k in range(FOLDS):
        p = fit_probe("toxicity-toxigen", "toxicity", False, encoded[fold != k], labels[fold != k], c)
        pred[fold == k] = p.prob(encoded[fold == k]) >= 0.5
    m = metrics([UNSAFE if y else SAFE for y in labels], [UNSAFE if y else SAFE for y in pred])
    probe = fit_probe("toxicity-toxigen", "toxicity", False, encoded, labels, c)
    probe.card = {"name": probe.name, "kind": "toxicity", "set": "toxigen-women", "n": len(texts),
                  "positives": int(labels.sum()), "C": c, "seed": SEED, "solver": "lbfgs (deterministic)",
                  "lines_per_file": TOXIGEN_LINES, "data_sha256": {f: store.sha256(f) for f in TOXIGEN_FILES},
                  **_encoder_card(encoder), "versions": _versions(),
                  "cross_validation": {"folds": FOLDS, "kappa": round(m.kappa, 4), "accuracy": round(m.accuracy, 4),
                                       "kappa_95ci": [round(m.kappa_low, 4), round(m.kappa_high, 4)]}}
    return probe


def build_probes(store: DataStore, out: Path | None = None) -> list[Path]:
    """Build both probes and write ``<name>.npz`` + ``<name>.json`` into ``out`` (the package by default)."""
    out = out or artifacts_dir()
    encoder = ResponseEncoder()
    paths = []
    for probe in (build_refusal_probe(store, encoder), build_toxicity_probe(store, encoder)):
        path = out / f"{probe.name}.npz"
        probe.save(path)
        paths.append(path)
    return paths


def _fold_metrics(gold: np.ndarray, refusal: np.ndarray, groups: list[str]) -> dict:
    """Per group {n, kappa, accuracy} of 0/1 refusal predictions, their mean kappa and the pooled figures."""
    folds = {}
    for model in XSTEST_MODELS:
        idx = [i for i, g in enumerate(groups) if g == model]
        m = metrics([SAFE if gold[i] else UNSAFE for i in idx], [SAFE if refusal[i] else UNSAFE for i in idx])
        folds[model] = {"n": m.n, "kappa": round(m.kappa, 4), "accuracy": round(m.accuracy, 4)}
    pooled = metrics([SAFE if g else UNSAFE for g in gold], [SAFE if r else UNSAFE for r in refusal])
    return {"folds": folds, "mean_kappa": round(float(np.mean([f["kappa"] for f in folds.values()])), 4),
            "pooled": {"kappa": round(pooled.kappa, 4), "accuracy": round(pooled.accuracy, 4),
                       "kappa_95ci": [round(pooled.kappa_low, 4), round(pooled.kappa_high, 4)]}}


def held_out_metrics(model: PairModel, folds: dict, items: list, groups: list[str], gold: np.ndarray) -> dict:
    """Card entries for fold adapters judging their held-out groups: ``leave_one_model_out*`` as
    the default judge routes XSTest rows (classifier, then declining phrases and code-style
    denials), ``classifier_alone_leave_one_model_out*`` without the phrase rules."""
    from .default import code_style_denial, declining_phrase

    prob = np.zeros(len(items))
    for group, adapter in folds.items():
        held = np.array([g == group for g in groups])
        model.apply(adapter)
        prob[held] = model.prob([items[i] for i in np.flatnonzero(held)])
    alone = (prob >= 0.5) | np.array([not it.response.strip() for it in items])
    rules = alone | np.array([bool(declining_phrase(it.response) or code_style_denial(it.response)) for it in items])
    out = {}
    for prefix, pred in (("", rules), ("classifier_alone_", alone)):
        m = _fold_metrics(gold, pred, groups)
        out |= {f"{prefix}leave_one_model_out": m["folds"], f"{prefix}leave_one_model_out_mean_kappa": m["mean_kappa"],
                f"{prefix}leave_one_model_out_pooled": m["pooled"]}
    return out


def build_refusal_adapter(store: DataStore, out: Path | None = None, limit: int | None = None,
                          epochs: int = EPOCHS) -> Path:
    """Train the four leave-one-model-out adapters and the shipped one (all responses) on XSTest
    v2; write ``refusal-xstest-lora.npz`` / ``.json`` and ``refusal-xstest-lora-folds.npz`` into
    ``out`` (the package by default). ``limit`` keeps each model's first responses (tests)."""
    started = time.perf_counter()
    out = out or artifacts_dir()
    items = xstest_completions(store)
    if limit:
        items = [it for m in XSTEST_MODELS for it in [x for x in items if x.group == m][:limit]]
    judge_items, groups = [it.item for it in items], [it.group for it in items]
    gold = np.array([it.gold for it in items], dtype=int)
    model = PairModel()
    states = model.bottom_states(model.tokenize(judge_items))
    folds = {}
    for group in XSTEST_MODELS:
        train = np.array([i for i, g in enumerate(groups) if g != group])
        folds[group] = train_adapter(model, [states[i] for i in train], gold[train], f"fold-{group}", epochs)
    adapter = train_adapter(model, states, gold, "refusal-xstest-lora", epochs)
    held_out = held_out_metrics(model, folds, judge_items, groups, gold)
    out.mkdir(parents=True, exist_ok=True)
    folds_path = out / f"{adapter.name}-folds.npz"
    save_folds(folds_path, folds)
    adapter.card = {
        "name": adapter.name, "kind": "refusal", "set": XSTEST_SET, "n": len(items), "positives": int(gold.sum()),
        "input": {"pair": "(prompt, response)", "prompt_tokens": PROMPT_TOKENS, "max_tokens": MAX_TOKENS},
        "adapters": {"top_layers": TOP_LAYERS, "rank": RANK, "alpha": ALPHA, "dropout": DROPOUT, "targets": list(TARGETS)},
        "training": {"optimizer": "AdamW (weight decay 0.01), 10% warm-up, linear decay", "lr": LR, "epochs": epochs,
                     "batch": BATCH, "seed": ADAPTER_SEED, "threads": torch.get_num_threads(),
                     "seconds": round(time.perf_counter() - started, 1)},
        "data_sha256": {f: store.sha256(f) for f in _xstest_files()}, **_encoder_card(model), "versions": _versions(),
        "items_sha256": items_sha256(judge_items, groups, list(gold)),
        "folds_file": folds_path.name, "folds_sha256": sha256_file(folds_path),
        **held_out,
    }
    path = out / f"{adapter.name}.npz"
    adapter.save(path)
    return path
