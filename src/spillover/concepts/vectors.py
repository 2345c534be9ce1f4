"""Concept vectors: one unit direction per layer for a domain's prompts.

PCA (the paper's method, "PCA" in AxBench): at each layer mean-centre the domain's states and take
the first principal component. A principal component has no sign of its own; the rule used here
is that the domain's mean state, minus the reference (benign) mean when one is given, has a
non-negative projection on the vector, so the vector points from the reference prompts toward
the domain. Without a reference the raw domain mean is used.

Difference of means (as in the refusal-direction literature): mean domain state minus mean
benign state, normalised.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-8


def _check(states: np.ndarray, name: str) -> np.ndarray:
    if states.ndim != 3:
        raise ValueError(f"{name} must have shape (L, N, D), got {states.shape}")
    return states.astype(np.float64)


def _unit(vectors: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    bad = np.flatnonzero(norms[:, 0] < EPS)
    if bad.size:
        raise ValueError(f"{what} is zero at layer position(s) {bad.tolist()} (all states identical?)")
    return vectors / norms


def pca_concept_vectors(states: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """First principal component per layer of (L, N, D) states -> unit vectors (L, D).

    Sign: ``(mean(states) - mean(reference)) . v >= 0`` (``reference`` (L, M, D), optional).
    """
    x = _check(states, "states")
    if x.shape[1] < 2:
        raise ValueError("PCA needs at least 2 prompts per domain")
    anchor = x.mean(axis=1)  # (L, D)
    if reference is not None:
        anchor = anchor - _check(reference, "reference").mean(axis=1)
    out = np.empty((x.shape[0], x.shape[2]))
    for layer in range(x.shape[0]):
        centred = x[layer] - x[layer].mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        if s[0] < EPS:
            raise ValueError(f"PCA: all states are identical at layer position {layer}")
        v = vt[0]
        out[layer] = -v if anchor[layer] @ v < 0 else v
    return _unit(out, "PCA vector")


def diffmean_concept_vectors(states: np.ndarray, benign: np.ndarray) -> np.ndarray:
    """Unit difference of means per layer: normalise(mean(states) - mean(benign)), (L, D)."""
    x, b = _check(states, "states"), _check(benign, "benign")
    if x.shape[0] != b.shape[0] or x.shape[2] != b.shape[2]:
        raise ValueError(f"states {x.shape} and benign {b.shape} differ in layers or width")
    return _unit(x.mean(axis=1) - b.mean(axis=1), "difference of means")
