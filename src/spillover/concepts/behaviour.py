"""Relating representation similarity to measured emergent misalignment (EMA).

EMA for a (target, domain) pair is the drop in refusal rate on the off-target ``domain`` after
intervening on ``target`` (aligned minus after, in points). The test is whether a target's concept
vector being closer to a domain's prompts goes with a larger drop: a Spearman correlation over the
off-target pairs, per layer, with a two-sided permutation p-value (exact over all orderings when
there are few pairs). With one target there are only six pairs: 720 orderings, so the smallest
possible p-value is 2/720 and any p-value is coarse. Picking the best of several layers needs
a family-wise correction: :func:`max_statistic_p`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

Pair = tuple[str, str]
BENIGN = "benign"


def _zscore_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks (ties averaged) along the last axis, centred and scaled so a dot / n is Pearson."""
    r = rankdata(x, axis=-1)
    r = r - r.mean(axis=-1, keepdims=True)
    sd = r.std(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, r / sd, np.nan)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho of two equal-length 1-D arrays (nan when either is constant)."""
    zx, zy = _zscore_ranks(np.asarray(x, float)), _zscore_ranks(np.asarray(y, float))
    return float(zx @ zy / len(zx))


def _permutations(y: np.ndarray, n_permutations: int, seed: int) -> tuple[np.ndarray, bool]:
    """All orderings of ``y`` when there are at most ``n_permutations`` of them, else random ones."""
    if math.factorial(len(y)) <= n_permutations:
        return np.array([y[list(p)] for p in itertools.permutations(range(len(y)))]), True
    rng = np.random.default_rng(seed)
    return rng.permuted(np.tile(y, (n_permutations, 1)), axis=1), False


def off_target_pairs(similarity: Mapping[Pair, np.ndarray], ema: Mapping[Pair, float]) -> list[Pair]:
    """Pairs present in both mappings whose domain is neither the target nor the benign set."""
    return sorted(p for p in ema if p in similarity and p[0] != p[1] and p[1] != BENIGN)


def ema_correlation(
    similarity: Mapping[Pair, np.ndarray],
    ema: Mapping[Pair, float],
    n_permutations: int = 10000,
    seed: int = 0,
    layers: Sequence[int] | None = None,
) -> list[dict]:
    """Per layer: Spearman rho between similarity (each value (L,)) and EMA over off-target pairs.

    Returns ``[{layer, spearman, p_value, n_pairs, exact}]``; ``layers`` names each of the L
    entries (default 0..L-1). rho and p are None with fewer than 3 pairs or a constant input.
    """
    names, pairs, rho, null, exact = _rho_and_null(similarity, ema, n_permutations, seed, layers)
    if rho is None:
        return [dict(layer=l, spearman=None, p_value=None, n_pairs=len(pairs), exact=None) for l in names]
    rows = []
    for i, layer in enumerate(names):
        if not np.isfinite(rho[i]):
            rows.append(dict(layer=layer, spearman=None, p_value=None, n_pairs=len(pairs), exact=exact))
            continue
        p = _p_value(int(np.sum(np.abs(null[i]) >= abs(rho[i]) - 1e-12)), null.shape[1], exact)
        rows.append(dict(layer=layer, spearman=float(rho[i]), p_value=p, n_pairs=len(pairs), exact=exact))
    return rows


def max_statistic_p(
    similarity: Mapping[Pair, np.ndarray],
    ema: Mapping[Pair, float],
    family: Sequence[int],
    n_permutations: int = 10000,
    seed: int = 0,
    layers: Sequence[int] | None = None,
) -> dict[int, float]:
    """Family-wise adjusted p-values of the layers in ``family`` (permutation max-statistic).

    Layer i's p is the share of permutations whose largest |rho| over the family reaches
    |rho_i| (Westfall & Young's single-step maxT): it controls the family-wise error of picking
    the best of several correlated layers. Layers with an undefined rho are left out.
    """
    names, _, rho, null, exact = _rho_and_null(similarity, ema, n_permutations, seed, layers)
    if rho is None:
        return {}
    wanted = set(family)
    idx = [i for i, l in enumerate(names) if l in wanted and np.isfinite(rho[i])]
    if not idx:
        return {}
    largest = np.abs(null[idx]).max(axis=0)  # (P,)
    return {names[i]: _p_value(int(np.sum(largest >= abs(rho[i]) - 1e-12)), null.shape[1], exact) for i in idx}


def _rho_and_null(similarity, ema, n_permutations, seed, layers):
    """(layer names, pairs, rho (L,), null rho (L, P), exact); rho is None with < 3 pairs."""
    pairs = off_target_pairs(similarity, ema)
    sims = np.array([np.asarray(similarity[p], float) for p in pairs]).T  # (L, n)
    n_layers = sims.shape[0] if pairs else len(next(iter(similarity.values()), []))
    names = list(layers) if layers is not None else list(range(n_layers))
    if len(names) != n_layers:
        raise ValueError(f"{len(names)} layer names for {n_layers} similarity entries")
    if len(pairs) < 3:
        return names, pairs, None, None, None
    y = np.array([float(ema[p]) for p in pairs])
    zs = _zscore_ranks(sims)  # (L, n)
    perms, exact = _permutations(y, n_permutations, seed)
    rho = zs @ _zscore_ranks(y) / len(pairs)  # (L,)
    null = zs @ _zscore_ranks(perms).T / len(pairs)  # (L, P)
    return names, pairs, rho, null, exact


def _p_value(hits: int, n_perms: int, exact: bool) -> float:
    """Permutation p from the count of permutations at least as extreme."""
    return float(hits / n_perms if exact else (hits + 1) / (n_perms + 1))


def ema_correlation_within_targets(
    similarity: Mapping[Pair, np.ndarray],
    ema: Mapping[Pair, float],
    n_permutations: int = 10000,
    seed: int = 0,
    layers: Sequence[int] | None = None,
) -> list[dict]:
    """Like :func:`ema_correlation`, but rho is the mean of each target's own Spearman rho.

    Pooling targets mixes "this target spills over a lot" with "this domain is close to the
    target"; this version ranks domains only within a target. The null permutes EMA within each
    target (random permutations; with a single target it is :func:`ema_correlation`). Targets with
    fewer than 3 off-target pairs are left out.
    """
    pairs = off_target_pairs(similarity, ema)
    groups = {t: [p for p in pairs if p[0] == t] for t in dict.fromkeys(p[0] for p in pairs)}
    groups = {t: ps for t, ps in groups.items() if len(ps) >= 3}
    if len(groups) <= 1:
        kept = {p: ema[p] for ps in groups.values() for p in ps}
        return ema_correlation(similarity, kept, n_permutations, seed, layers)
    rng = np.random.default_rng(seed)
    rho, null = 0.0, 0.0
    for ps in groups.values():
        zs = _zscore_ranks(np.array([np.asarray(similarity[p], float) for p in ps]).T)  # (L, n_t)
        y = np.array([float(ema[p]) for p in ps])
        perms = _zscore_ranks(rng.permuted(np.tile(y, (n_permutations, 1)), axis=1))  # (P, n_t)
        rho = rho + zs @ _zscore_ranks(y) / len(ps) / len(groups)
        null = null + zs @ perms.T / len(ps) / len(groups)
    names = list(layers) if layers is not None else list(range(len(rho)))
    n_pairs = sum(len(ps) for ps in groups.values())
    rows = []
    for i, layer in enumerate(names):
        if not np.isfinite(rho[i]):
            rows.append(dict(layer=layer, spearman=None, p_value=None, n_pairs=n_pairs, exact=False))
            continue
        hits = int(np.sum(np.abs(null[i]) >= abs(rho[i]) - 1e-12))
        rows.append(dict(layer=layer, spearman=float(rho[i]), p_value=(hits + 1) / (n_permutations + 1),
                         n_pairs=n_pairs, exact=False))
    return rows


def early_layers(layers: Sequence[int]) -> list[int]:
    """The first third (rounded up) of the analysed layers."""
    return list(layers[: math.ceil(len(layers) / 3)])


def predict_ema(
    target: str,
    similarity: Mapping[Pair, np.ndarray],
    layers: Sequence[int] | None = None,
    layer_ids: Sequence[int] | None = None,
) -> list[tuple[str, float]]:
    """Rank the off-target domains by expected EMA for ``target``, before any training.

    Score of a domain: the mean cosine of the target's concept vector to the domain's states,
    averaged over ``layers`` (default: the early third of ``layer_ids``, which names each entry
    of the similarity arrays, default 0..L-1). Higher score = more spillover expected.
    """
    own = {d: np.asarray(s, float) for (t, d), s in similarity.items() if t == target and d not in (target, BENIGN)}
    if not own:
        raise ValueError(f"no off-target similarities for target {target!r}")
    ids = list(layer_ids) if layer_ids is not None else list(range(len(next(iter(own.values())))))
    chosen = list(layers) if layers is not None else early_layers(ids)
    missing = [l for l in chosen if l not in ids]
    if missing:
        raise ValueError(f"layers {missing} were not analysed (have {ids})")
    idx = [ids.index(l) for l in chosen]
    scores = [(d, float(s[idx].mean())) for d, s in own.items()]
    return sorted(scores, key=lambda ds: -ds[1])
