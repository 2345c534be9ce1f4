"""Concept vectors: how entangled the domains are inside the model, and whether that predicts EMA."""

from __future__ import annotations

from .analysis import (ConceptResult, analyse_concepts, correlate, histogram_layers, load_ema, predictions,
                       similarity_pairs)
from .behaviour import early_layers, ema_correlation, ema_correlation_within_targets, predict_ema, spearman
from .extract import describe_position, extract_last_token_states
from .plots import plot_concepts
from .similarity import state_similarities, target_to_domain, vector_similarity_matrix
from .vectors import diffmean_concept_vectors, pca_concept_vectors

__all__ = [
    "ConceptResult", "analyse_concepts", "correlate", "describe_position", "diffmean_concept_vectors",
    "early_layers", "ema_correlation", "ema_correlation_within_targets", "extract_last_token_states", "histogram_layers", "load_ema",
    "pca_concept_vectors", "plot_concepts", "predict_ema", "predictions",
    "similarity_pairs", "spearman", "state_similarities", "target_to_domain", "vector_similarity_matrix",
]
