"""Evaluation: likelihood estimates averaged over a dataset and unit statements
(`gm_jax.evaluation.likelihood`); sample quality (MNIST-FID, MNIST-IS, nearest neighbours) with the project's MNIST classifier in
`gm_jax.evaluation.sample_quality` and `gm_jax.evaluation.classifier`."""
from __future__ import annotations

from gm_jax.evaluation.likelihood import mean_over_dataset, nll_metrics  # noqa: F401  (exports)
from gm_jax.evaluation.sample_quality import (  # noqa: F401  (exports)
    feature_stats,
    frechet_distance,
    inception_score,
    nearest_neighbours,
    save_nearest_neighbour_figure,
)

