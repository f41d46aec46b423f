"""Experiment configs: ml_collections `ConfigDict`s with checked overrides.

Every experiment's `get_config()` starts from `base_config()`, which holds the
fields every training run has. Overrides (from `gm_jax.create(...)` keyword
arguments or `--config.key=value` on the command line) must name existing
keys; an unknown key is a `ValueError` that lists the valid ones.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_collections

from gm_jax.training.steps import PARALLEL_CHOICES


def base_config() -> ml_collections.ConfigDict:
    """Fields shared by every experiment (see README, "Configs")."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # one int seeds init, data order and every per-step key
    c.num_steps = 1000  # optimizer updates
    c.batch_size = 100  # global batch, split over devices when parallel != "none"
    c.data_dir = ""  # TFDS data dir; "" = TFDS_DATA_DIR, then ../shared/tfds, then TFDS's default
    c.parallel = "none"  # none | pmap | sharded
    c.learning_rate = 1e-3
    c.log_every = 100  # steps between metrics.jsonl / TensorBoard records
    c.checkpoint_every = 1000  # steps between checkpoints (the last step is always saved)
    c.keep_checkpoints = 2
    c.eval_batch_size = 500
    c.progress_bar = True
    return c


def flat_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """All leaf keys of `config`, dotted for nested ConfigDicts, sorted."""
    keys = []
    for k, v in config.items():
        if isinstance(v, ml_collections.ConfigDict):
            keys += flat_keys(v, f"{prefix}{k}.")
        else:
            keys.append(f"{prefix}{k}")
    return sorted(keys)


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any],
                    name: str = "experiment") -> ml_collections.ConfigDict:
    """Return a copy of `config` with `overrides` (dotted keys allowed) applied.

    Lists are accepted where the config holds a tuple (as after a JSON round trip).

    Raises:
      ValueError: an override names a key the config does not have (the
        message lists the valid keys), or gives a value of the wrong type.
    """
    config = ml_collections.ConfigDict(config.to_dict())
    valid = flat_keys(config)
    for key, value in overrides.items():
        if key not in valid:
            raise ValueError(f"unknown config key {key!r} for {name}; valid keys: {', '.join(valid)}")
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node[p]
        if isinstance(node[leaf], tuple) and isinstance(value, list):
            value = tuple(value)
        try:
            node[leaf] = value
        except TypeError as e:
            raise ValueError(f"config key {key!r} of {name}: {e}") from e
    validate(config, name)
    return config


def validate(config: ml_collections.ConfigDict, name: str = "experiment") -> None:
    """Check the shared fields of `config`.

    Raises:
      ValueError: a shared field is missing or out of range.
    """
    for key in base_config().keys():
        if key not in config:
            raise ValueError(f"config of {name} lacks the required key {key!r}")
    if config.parallel not in PARALLEL_CHOICES:
        raise ValueError(f"config.parallel={config.parallel!r} for {name}; valid choices: {list(PARALLEL_CHOICES)}")
    for key in ("num_steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints", "eval_batch_size"):
        if config[key] < (0 if key == "num_steps" else 1):
            raise ValueError(f"config.{key} of {name} must be positive, got {config[key]}")
