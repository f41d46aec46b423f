"""Datasets and input pipelines: TFDS readers, batching, transforms."""
from gm_jax.data.datasets import (
    DATASETS,
    DatasetNotFoundError,
    candidate_data_dirs,
    find_data_dir,
    load_split,
)
from gm_jax.data.pipeline import dynamic_binarize, eval_batches, num_examples, take_rows, train_batches
from gm_jax.data.text import CharVocab, load_text, random_windows, windows
from gm_jax.data.music import load_melodies, load_piano_rolls
from gm_jax.data.audio import load_recordings, mu_law_decode, mu_law_encode

__all__ = [
    "CharVocab",
    "load_melodies",
    "load_piano_rolls",
    "load_recordings",
    "mu_law_decode",
    "mu_law_encode",
    "load_text",
    "random_windows",
    "windows",
    "DATASETS",
    "DatasetNotFoundError",
    "candidate_data_dirs",
    "dynamic_binarize",
    "eval_batches",
    "find_data_dir",
    "load_split",
    "num_examples",
    "take_rows",
    "train_batches",
]
