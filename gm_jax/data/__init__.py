"""Datasets and input pipelines: TFDS readers, batching, transforms."""
from gm_jax.data.datasets import (
    DATASETS,
    DatasetNotFoundError,
    candidate_data_dirs,
    find_data_dir,
    load_split,
)
from gm_jax.data.pipeline import dynamic_binarize, eval_batches, num_examples, train_batches

__all__ = [
    "DATASETS",
    "DatasetNotFoundError",
    "candidate_data_dirs",
    "dynamic_binarize",
    "eval_batches",
    "find_data_dir",
    "load_split",
    "num_examples",
    "train_batches",
]
