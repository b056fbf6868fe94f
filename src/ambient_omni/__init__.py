"""Ambient Diffusion Omni: train diffusion models with clean, low-quality and out-of-distribution data.

Data flows one way through the subpackages:
``data`` (readers, corruptions, mixed datasets, annotation files) ->
``annotate`` (quality classifiers, sigma_min / sigma_max annotation) ->
``training`` (one loop for every model kind) with ``diffusion`` (preconditioning, ambient loss,
sigma-first sampling, samplers) and ``networks`` (U-Net and its encoder) ->
``metrics`` (Frechet distances, precision/recall, memorization) -> ``report`` (HTML/Markdown).
``theory`` holds the paper's bounds; ``experiments`` the demo and the benchmark recipes.
"""

__version__ = "0.1.0"
