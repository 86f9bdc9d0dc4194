"""Exact retrieval evaluation: distances, chunked k-NN search, Recall@K and MAP@R.

The k-NN search lives in :mod:`atlantis.evaluation.knn` and is deliberately not re-exported
here: a package attribute named ``knn`` would shadow the submodule of the same name.
"""

from atlantis.evaluation.distances import DISTANCES, get_distance, pairwise_distances
from atlantis.evaluation.knn import DEFAULT_MEMORY_BUDGET
from atlantis.evaluation.recall import (
    DEFAULT_KS,
    SOP_KS,
    RetrievalMetrics,
    default_ks,
    evaluate_retrieval,
    recall_at_k,
)

__all__ = [
    "DEFAULT_KS",
    "DEFAULT_MEMORY_BUDGET",
    "DISTANCES",
    "SOP_KS",
    "RetrievalMetrics",
    "default_ks",
    "evaluate_retrieval",
    "get_distance",
    "pairwise_distances",
    "recall_at_k",
]
