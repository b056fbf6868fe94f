"""Metrics: feature extractors, Frechet distance, KID, precision/recall, Vendi score, memorization, patch FD,
cached reference statistics, and :func:`evaluate` (the protocol is docs/PROTOCOL.md)."""

from ambient_omni.metrics.cache import reference_statistics
from ambient_omni.metrics.evaluate import evaluate
from ambient_omni.metrics.features import FeatureExtractor, available_extractors, get_extractor
from ambient_omni.metrics.frechet import feature_statistics, frechet_distance
from ambient_omni.metrics.kid import kernel_inception_distance
from ambient_omni.metrics.memorization import memorization
from ambient_omni.metrics.patches import patch_frechet_distance
from ambient_omni.metrics.precision_recall import precision_recall
from ambient_omni.metrics.vendi import vendi_score

__all__ = ["FeatureExtractor", "available_extractors", "evaluate", "feature_statistics", "frechet_distance",
           "get_extractor", "kernel_inception_distance", "memorization", "patch_frechet_distance",
           "precision_recall", "reference_statistics", "vendi_score"]
