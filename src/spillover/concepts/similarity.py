"""Cosine similarities between concept vectors and hidden states, layer by layer."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def state_similarities(vectors: np.ndarray, states: np.ndarray) -> np.ndarray:
    """cos(c_l, h_{n,l}) for vectors (L, D) and states (L, N, D) -> (L, N)."""
    if vectors.shape[0] != states.shape[0] or vectors.shape[-1] != states.shape[-1]:
        raise ValueError(f"vectors {vectors.shape} and states {states.shape} differ in layers or width")
    return np.einsum("ld,lnd->ln", _normalise(vectors), _normalise(states))


def vector_similarity_matrix(vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    """cos between every pair of domain vectors, per layer: {domain: (L, D)} -> (L, K, K), dict order."""
    stacked = _normalise(np.stack(list(vectors.values()), axis=1))  # (L, K, D)
    return np.einsum("lkd,ljd->lkj", stacked, stacked)


def target_to_domain(vectors: Mapping[str, np.ndarray], states: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Mean cos of each target's vector to each domain's states: {target: {domain: (L,)}}."""
    return {
        t: {d: state_similarities(v, s).mean(axis=1) for d, s in states.items()}
        for t, v in vectors.items()
    }
