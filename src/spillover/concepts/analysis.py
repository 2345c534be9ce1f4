"""The concept-vector analysis end to end: states -> vectors -> similarities -> summary.json.

``summary.json`` holds: model, method, layers (hidden-state indices, 1 = first decoder layer),
domains (those with a concept vector), position (which token's state), vector_similarity
[L][K][K] (cos between domain vectors, in ``domains`` order), target_to_domain
{target: {domain: [mean cos per layer]}} (``domain`` also takes ``"benign"`` as a baseline),
histograms {target: {layer: {domain: [cos per prompt]}}} for a few representative layers, and
seconds (wall time). ``correlate`` adds ``correlation.json`` beside it once EMA is measured.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import InputError, read_json, write_json
from .behaviour import (BENIGN, Pair, early_layers, ema_correlation, ema_correlation_within_targets, max_statistic_p,
                        off_target_pairs, predict_ema)
from .extract import describe_position, extract_last_token_states
from .similarity import state_similarities, target_to_domain, vector_similarity_matrix
from .vectors import diffmean_concept_vectors, pca_concept_vectors

METHODS = ("pca", "diffmean")


@dataclass
class ConceptResult:
    """What ``analyse_concepts`` computed; ``vectors[domain]`` is (L, D) over ``layers``."""

    summary: dict
    vectors: dict[str, np.ndarray]
    layers: list[int]
    out_dir: Path


def histogram_layers(layers: Sequence[int]) -> list[int]:
    """Representative layers for histograms: first, 1/4, 1/2, last, and layer 5 when analysed."""
    picks = {layers[0], layers[len(layers) // 4], layers[len(layers) // 2], layers[-1]}
    if 5 in layers:
        picks.add(5)
    return sorted(picks)


def check_layers(layers: Sequence[int] | None, n_layers: int) -> list[int]:
    """Validate layer indices against a model with ``n_layers`` decoder layers (default: all)."""
    if layers is None:
        return list(range(1, n_layers + 1))
    bad = [l for l in layers if not 1 <= l <= n_layers]
    if bad:
        raise InputError(
            f"layers {bad} out of range: use 1..{n_layers} (0, the token embedding, is the same for "
            f"every prompt at the last template token)"
        )
    return sorted(set(layers))


def _rounded(x: np.ndarray, digits: int = 5) -> list:
    return np.round(np.asarray(x, float), digits).tolist()


def analyse_concepts(
    model,
    tokenizer,
    prompts_by_domain: Mapping[str, list[str]],
    benign: list[str],
    out_dir: Path,
    method: str = "pca",
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
    cache: Path | None = None,
    model_name: str | None = None,
    system_prompt: str | None = None,
) -> ConceptResult:
    """Extract states for every domain and the benign set, build vectors, write summary.json.

    ``cache`` (default ``out_dir/cache``) keeps the extracted states; PCA vectors take their sign
    from the benign set (see :mod:`.vectors`). Vectors are also saved to ``vectors.npz``.
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    if BENIGN in prompts_by_domain:
        raise InputError(f"{BENIGN!r} is the reference set, not a domain")
    empty = [d for d, p in prompts_by_domain.items() if not p] + ([BENIGN] if not benign else [])
    if empty:
        raise InputError(f"no prompts for: {', '.join(empty)}")
    chosen = check_layers(layers, model.config.num_hidden_layers)
    out_dir = Path(out_dir)
    start = time.perf_counter()
    groups = {**{d: list(p) for d, p in prompts_by_domain.items()}, BENIGN: list(benign)}
    flat = [p for ps in groups.values() for p in ps]
    all_states = extract_last_token_states(model, tokenizer, flat, batch_size=batch_size,
                                           cache=cache or out_dir / "cache", system_prompt=system_prompt)
    states, offset = {}, 0
    for name, ps in groups.items():
        states[name] = all_states[chosen, offset:offset + len(ps)].astype(np.float32)
        offset += len(ps)
    domains = list(prompts_by_domain)
    if method == "pca":
        vectors = {d: pca_concept_vectors(states[d], reference=states[BENIGN]) for d in domains}
    else:
        vectors = {d: diffmean_concept_vectors(states[d], states[BENIGN]) for d in domains}
    means = target_to_domain(vectors, states)
    hist_at = histogram_layers(chosen)
    hist_idx = [chosen.index(l) for l in hist_at]
    histograms = {
        t: {str(l): {d: _rounded(state_similarities(v[[i]], states[d][[i]])[0], 4) for d in states}
            for l, i in zip(hist_at, hist_idx)}
        for t, v in vectors.items()
    }
    summary = {
        "model": model_name or str(getattr(model.config, "_name_or_path", "")),
        "method": method,
        "layers": chosen,
        "domains": domains,
        "position": describe_position(tokenizer, system_prompt),
        "vector_similarity": _rounded(vector_similarity_matrix(vectors)),
        "target_to_domain": {t: {d: _rounded(m) for d, m in row.items()} for t, row in means.items()},
        "histograms": histograms,
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_json(out_dir / "summary.json", summary)
    np.savez(out_dir / "vectors.npz", layers=np.array(chosen), **vectors)
    return ConceptResult(summary=summary, vectors=vectors, layers=chosen, out_dir=out_dir)


def similarity_pairs(summary: Mapping) -> dict[Pair, np.ndarray]:
    """{(target, domain): per-layer mean cos} from a summary's ``target_to_domain``."""
    return {(t, d): np.asarray(v, float) for t, row in summary["target_to_domain"].items() for d, v in row.items()}


def predictions(summary: Mapping, layers: Sequence[int] | None = None) -> dict[str, list[tuple[str, float]]]:
    """For every target in a summary, the off-target domains ranked by expected EMA."""
    sims = similarity_pairs(summary)
    return {t: predict_ema(t, sims, layers, summary["layers"]) for t in summary["domains"]}


def load_ema(path: Path, variant: str = "unlearn") -> dict[Pair, float]:
    """Read EMA as JSON ``{target: {domain: refusal drop in points}}``, or a study's
    ``results/ema.json`` ``{variant: {target: {domain: drop}}}``, from which ``variant`` is taken."""
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected an object {{target: {{domain: value}}}}")
    nested = raw and all(isinstance(r, dict) and r and all(isinstance(v, dict) for v in r.values()) for r in raw.values())
    if nested:
        if variant not in raw:
            raise InputError(f"{path}: no variant {variant!r} (has {', '.join(raw)})")
        raw = raw[variant]
    ema: dict[Pair, float] = {}
    for t, row in raw.items():
        if not isinstance(row, dict):
            raise InputError(f"{path}, target {t!r}: expected an object {{domain: value}}")
        for d, v in row.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InputError(f"{path}, target {t!r}, domain {d!r}: expected a number, got {v!r}")
            ema[(t, d)] = float(v)
    return ema


def _early_verdict(rows: list[dict], layers: list[int], adjusted: dict[int, float]) -> tuple[bool | None, str]:
    """The verdict on the best early layer, whose p-value is adjusted over all early layers."""
    n = rows[0]["n_pairs"] if rows else 0
    valid = [r for r in rows if r["spearman"] is not None]
    if n < 5 or not valid:
        return None, f"with {n} (target, domain) pairs no correlation can reach p < 0.05, so the data cannot tell."
    early = early_layers(layers)
    best_early = max((r for r in valid if r["layer"] in early), key=lambda r: r["spearman"], default=None)
    best_late = max((r for r in valid if r["layer"] not in early), key=lambda r: r["spearman"], default=None)
    if best_early is None:
        return None, "no early layer has a defined correlation."
    p_adj = adjusted[best_early["layer"]]
    tag = (f"rho={best_early['spearman']:.2f} at layer {best_early['layer']}, raw p={best_early['p_value']:.3g}, "
           f"p={p_adj:.3g} corrected for the best of {len(early)} early layers")
    if best_early["spearman"] <= 0 or p_adj >= 0.05:
        return False, f"the best early-layer correlation ({tag}) is not positive and significant at 0.05."
    if best_late is not None and best_late["spearman"] > best_early["spearman"]:
        return False, (f"early layers correlate ({tag}) but later layer {best_late['layer']} does better "
                       f"(rho={best_late['spearman']:.2f}).")
    return True, f"the strongest positive correlation is in the first third of the layers ({tag})."


def correlate(summary_path: Path, ema: Mapping[Pair, float], n_permutations: int = 10000, seed: int = 0) -> dict:
    """Correlate per-layer similarity with measured EMA; write and return ``correlation.json``."""
    summary_path = Path(summary_path)
    summary = read_json(summary_path)
    sims = similarity_pairs(summary)
    targets = sorted({t for t, _ in ema if t not in summary["domains"]})
    if targets:
        raise InputError(f"EMA targets {targets} have no concept vector in {summary_path} (domains: {summary['domains']})")
    ignored = sorted(f"{t}/{d}" for t, d in ema if (t, d) not in sims)  # e.g. xstest, mmlu
    rows = ema_correlation(sims, ema, n_permutations=n_permutations, seed=seed, layers=summary["layers"])
    within = ema_correlation_within_targets(sims, ema, n_permutations=n_permutations, seed=seed,
                                            layers=summary["layers"])
    valid = [r for r in rows if r["spearman"] is not None]
    early = early_layers(summary["layers"])
    adjusted = max_statistic_p(sims, ema, early, n_permutations=n_permutations, seed=seed, layers=summary["layers"])
    verdict, rationale = _early_verdict(rows, summary["layers"], adjusted)
    result = {
        "layers": [r["layer"] for r in rows],
        "spearman": [r["spearman"] for r in rows],
        "p_value": [r["p_value"] for r in rows],
        "n_pairs": len(off_target_pairs(sims, ema)),
        "exact_permutation": rows[0]["exact"] if rows else None,
        "best_layer": max(valid, key=lambda r: r["spearman"])["layer"] if valid else None,
        "early_layers": early,
        "p_value_early_adjusted": [adjusted.get(l) for l in summary["layers"]],
        "early_layers_predict": verdict,
        "rationale": rationale,
        "ignored_pairs": ignored,
        "spearman_within_target": [r["spearman"] for r in within],
        "p_value_within_target": [r["p_value"] for r in within],
    }
    write_json(summary_path.with_name("correlation.json"), result)
    return result
