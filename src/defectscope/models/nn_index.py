"""Kept for existing imports: the index lives in ``defectscope.scoring.nn_index`` (torch-free)."""

from defectscope.scoring.nn_index import EXACT_LIMIT, HNSW_M, NearestNeighbours

__all__ = ["EXACT_LIMIT", "HNSW_M", "NearestNeighbours"]
