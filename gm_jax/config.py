"""Experiment configs: ml_collections `ConfigDict`s with checked overrides.

Every experiment's `get_config()` starts from `base_config()`, which holds the
fields every training run has. Overrides (from `gm_jax.create(...)` keyword
arguments or `--config.key=value` on the command line) must name existing
keys; an unknown key is a `ValueError` that lists the valid ones.

Values are checked against a declarative schema: `BASE_SCHEMA` for the shared
fields, plus each experiment's `Experiment.schema`, a dict from a (dotted)
config key to a `Choice` or a `Range`:

    schema = {"dataset": Choice("binarized_mnist", "mnist"),
              "iwae_k": Range(1),                      # int >= 1
              "dropout": Range(0.0, 1.0, hi_open=True),  # 0 <= x < 1
              "hidden": Range(1, each=True)}            # every entry of a tuple >= 1
"""
from __future__ import annotations

import dataclasses
import math
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
    # evaluation during training: every eval_every steps, Experiment.validate on the first
    # num_validation_examples validation examples -> metrics.jsonl / TensorBoard, and samples ->
    # workdir/samples/step_N.* and TensorBoard (gm_jax.training.loop)
    c.eval_every = 0  # steps between evaluations during training; 0 = off
    # mixed precision: float32 | bfloat16, the dtype the model's matmuls and convolutions run in (parameters,
    # optimizer state and the likelihood terms stay float32); bfloat16 where the experiment implements it
    c.compute_dtype = "float32"
    c.num_validation_examples = 500  # size of the validation subset `validate` scores (see the experiment)
    return c


@dataclasses.dataclass(frozen=True)
class Choice:
    """The value must be one of `values`."""

    values: tuple

    def __init__(self, *values):
        object.__setattr__(self, "values", tuple(values))

    def check(self, key: str, value, name: str) -> None:
        if value not in self.values:
            raise ValueError(f"config.{key}={value!r} for {name}; valid choices: {list(self.values)}")


@dataclasses.dataclass(frozen=True)
class Range:
    """A number in [lo, hi] (`lo_open` / `hi_open` exclude the ends; None: unbounded).

    `integer=True` also requires an int; `each=True` applies the check to every
    entry of a tuple value (e.g. layer widths).
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    each: bool = False

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi}")
        return ("an int " if self.integer else "") + " and ".join(parts)

    def check(self, key: str, value, name: str) -> None:
        values = tuple(value) if self.each else (value,)
        if self.each and not isinstance(value, (tuple, list)):
            raise ValueError(f"config.{key} of {name} must be a tuple, got {value!r}")
        for v in values:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if ok and self.integer:
                ok = isinstance(v, int)
            if ok and self.lo is not None:
                ok = v > self.lo if self.lo_open else v >= self.lo
            if ok and self.hi is not None:
                ok = v < self.hi if self.hi_open else v <= self.hi
            if not ok:
                what = "every entry of " if self.each else ""
                raise ValueError(f"{what}config.{key} of {name} must be {self.describe()}, got {value!r}")


BASE_SCHEMA: dict[str, Choice | Range] = {
    "parallel": Choice(*PARALLEL_CHOICES),
    "compute_dtype": Choice("float32", "bfloat16"),
    "seed": Range(0, integer=True),
    "num_steps": Range(0, integer=True),
    "batch_size": Range(1, integer=True),
    "learning_rate": Range(0.0, lo_open=True),
    "log_every": Range(1, integer=True),
    "checkpoint_every": Range(1, integer=True),
    "keep_checkpoints": Range(1, integer=True),
    "eval_batch_size": Range(1, integer=True),
    "eval_every": Range(0, integer=True),
    "num_validation_examples": Range(1, integer=True),
}


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


def _get(config, key: str):
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def validate(config: ml_collections.ConfigDict, name: str = "experiment",
             schema: Mapping[str, Choice | Range] | None = None) -> None:
    """Check `config` against `BASE_SCHEMA` and `schema` (an experiment's own fields).

    Raises:
      ValueError: a shared field is missing, or a field is outside its schema
        (the message names the key, the value and what is valid).
    """
    for key in base_config().keys():
        if key not in config:
            raise ValueError(f"config of {name} lacks the required key {key!r}")
    for key, rule in {**BASE_SCHEMA, **(schema or {})}.items():
        if key.split(".")[0] in config:
            rule.check(key, _get(config, key), name)
