"""Likelihood models on MNIST images: the family base of vae_mnist, pixelcnn_mnist,
gated_pixelcnn_mnist, pixelcnn_pp_mnist, realnvp_mnist and glow_mnist.

`ImageLikelihoodExperiment` holds what they share:

* data: `load(split, limit, binarize_key)` reads one split of `mnist` or
  `binarized_mnist` (TFDS, or `data_dir="synthetic"`), keeps the labels of
  class-conditional models, and binarizes 8-bit images of binary models once
  with `binarize_key` (evaluation: one fixed dynamic binarization of the test
  set); `binarize_batch` does the per-example dynamic binarization of training
  batches (Burda et al. 2016, Sec. 5.1); `train_batches` shuffles by `(seed, step)`;
* one evaluation: per-example terms (`eval_terms`, default `-log_prob`)
  averaged over the test set in order, reported as `test_nll_nats` (nats per
  image) and `test_bits_per_dim` = nats / (784 ln 2) with a statement of what
  the bits are of (`likelihood_note`: binary pixels, the discretized logistic
  of the 8-bit values, or uniform dequantization), the other terms as
  `test_<term>_nats`, and the same on the first `train_eval_size` training
  images (`train_<term>_nats`) where the experiment reports it;
* one sample-grid writer: `samples.png`, 8x8 samples (`grid_images`).

Family bases built on it: `PixelCNNExperiment` (PixelCNN, Gated PixelCNN: binary
pixels, exact likelihood, optional class conditioning), `PixelRNNExperiment` (the
PixelRNNs: the same, with their own samplers) and
`ImageFlowExperiment` (RealNVP, Glow on dequantized 8-bit images). The VAE, the
PixelVAE and the VQ-VAE build on it in `gm_jax.recipes.latent`; PixelCNN++ subclasses
`ImageLikelihoodExperiment` directly.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gm_jax.config import Choice, Range
from gm_jax.data import dynamic_binarize, load_split, train_batches
from gm_jax.data.datasets import DATASETS as TFDS_DATASETS
from gm_jax.distributions import nats_to_bits
from gm_jax.evaluation import likelihood
from gm_jax.experiment import Experiment
from gm_jax.models import flows, pixelcnn, pixelrnn
from gm_jax.sampling import completion_mask
from gm_jax.viz import images as viz_images

DATASETS = ("binarized_mnist", "mnist")


class ImageLikelihoodExperiment(Experiment):
    """A likelihood model of 28x28x1 MNIST images (binary or 8-bit: `data_kind`).

    Subclasses set `name`, `data_kind` ("binary" or "uint8"), `likelihood_note`
    and the model's pure functions; they may override `eval_keys`, `eval_terms`,
    `train_eval_terms`, `extra_metrics` and `grid_images`.
    """

    data_shape = (28, 28, 1)
    dataset = "mnist"  # the TFDS dataset when the config has no `dataset` field
    keep_labels = False  # class-conditional models train on (image, label)
    train_eval_size = 0  # > 0: also report the train NLL on the first this many training images
    num_test_images: int | None = None  # the test images `evaluate` scores (None: all of them)
    likelihood_note: dict = {}  # {key: statement} of what the bits/dim are bits of
    num_grid_samples = 64

    @property
    def num_dims(self) -> int:
        return math.prod(self.data_shape)

    @property
    def dataset_name(self) -> str:
        return self.config.get("dataset", self.dataset)

    # -- data ---------------------------------------------------------------------
    def load(self, split: str, limit: int | None = None, binarize_key=None) -> dict:
        """One split as arrays: `image` uint8 [N, 28, 28, 1] (and `label` int32 [N] with `keep_labels`).

        Args:
          split: "train" or "test".
          limit: keep the first `limit` examples (None: all).
          binarize_key: for a binary model on 8-bit `mnist`, binarize the images
            once with this key (one fixed dynamic binarization); None: as stored.
        """
        data = load_split(self.dataset_name, split, self.config.data_dir or None)
        out = {"image": data["image"][:limit]}
        if self.keep_labels:
            out["label"] = data["label"][:limit]
        if binarize_key is not None and self.data_kind == "binary" and self.dataset_name == "mnist":
            out["image"] = np.asarray(dynamic_binarize(binarize_key, out["image"]))
        return out

    def binarize_batch(self, images, keys: jax.Array, dtype) -> jax.Array:
        """Training images as `dtype`: per-example Bernoulli(x / 255) draws (one key each) for 8-bit
        `mnist`, as stored for `binarized_mnist`."""
        if self.dataset_name == "binarized_mnist":
            return jnp.asarray(images, dtype)
        return jax.vmap(dynamic_binarize)(keys, images).astype(dtype)

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        return train_batches(self.load("train"), self.config.batch_size, self.config.seed, start_step, rows)

    # -- evaluation ---------------------------------------------------------------
    def eval_keys(self, key: jax.Array) -> dict:
        """The keys of `evaluate`: "binarize" (the fixed binarization of 8-bit evaluation images),
        "test" and "train" (a key or a pytree of keys per pass; batch i folds in i). Default: `key` for all."""
        return {"binarize": key, "test": key, "train": key}

    def eval_terms(self, params, batch: dict, key) -> dict:
        """Per-example terms of a test batch, nats: {"nll": float [B], ...} (default: -log_prob)."""
        return {"nll": -self.log_prob(params, batch["image"], key)}

    train_eval_terms = None  # per-example terms on the training subset (None: `eval_terms`)

    def extra_metrics(self, params, keys: dict) -> dict:
        """Metrics besides the likelihood (default none)."""
        return {}

    def evaluate(self, params, key: jax.Array) -> dict:
        keys = self.eval_keys(key)
        bs = self.config.eval_batch_size
        test_fn = jax.jit(lambda batch, k: self.eval_terms(params, batch, k))
        test = likelihood.mean_over_dataset(test_fn, self.load("test", self.num_test_images,
                                                                     binarize_key=keys["binarize"]), bs,
                                            keys["test"])
        results = likelihood.nll_metrics("test", test.pop("nll"), self.num_dims)
        results.update({f"test_{k}_nats": v for k, v in test.items()})
        if self.train_eval_size:
            train_fn = test_fn if self.train_eval_terms is None else jax.jit(
                lambda batch, k: self.train_eval_terms(params, batch, k))
            train = likelihood.mean_over_dataset(
                train_fn, self.load("train", self.train_eval_size, keys["binarize"]), bs, keys["train"])
            results.update({f"train_{k}_nats": v for k, v in train.items()})
        binarized = self.data_kind == "binary" and self.dataset_name == "mnist"
        results["dataset"] = self.dataset_name + (" (one dynamic binarization of the test set)" if binarized else "")
        results.update(self.likelihood_note)
        results.update(self.extra_metrics(params, keys))
        return results

    # -- artifacts ----------------------------------------------------------------
    def grid_images(self, params, key: jax.Array) -> np.ndarray:
        """The `num_grid_samples` images of samples.png, in [0, data_max] (default: `jit_sample`)."""
        return np.asarray(self.jit_sample(params, key, self.num_grid_samples))

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        viz_images.save_samples(Path(workdir) / "samples.png", self.grid_images(params, key), self.data_max)

    # -- evaluation during training -----------------------------------------------------
    @property
    def num_progress_samples(self) -> int:
        """16 images, or `num_grid_samples` where that is fewer."""
        return min(16, self.num_grid_samples)

    @property
    def validation_split(self) -> str:
        """The split `validate` reads: "validation" where the dataset has one (binarized_mnist), else "test"
        (8-bit mnist has none, and every training image is trained on)."""
        return "validation" if "validation" in TFDS_DATASETS[self.dataset_name]["splits"] else "test"

    @functools.cached_property
    def _jit_eval_terms(self):
        return jax.jit(self.eval_terms)  # the parameters are an argument: compiled once for every evaluation

    def validate(self, params, key: jax.Array) -> dict:
        """`evaluate`'s test likelihood on the first `config.num_validation_examples` images of
        `validation_split`: `val_nll_nats` (nats per image; the same estimate as `test_nll_nats`),
        `val_bits_per_dim` and the other `eval_terms` as `val_<term>_nats` (8-bit images of a binary model
        binarized once with the evaluation's binarization key)."""
        keys = self.eval_keys(key)
        data = self.load(self.validation_split, self.config.num_validation_examples, keys["binarize"])
        terms = likelihood.mean_over_dataset(lambda batch, k: self._jit_eval_terms(params, batch, k), data,
                                             self.config.eval_batch_size, keys["test"])
        out = likelihood.nll_metrics("val", terms.pop("nll"), self.num_dims)
        out.update({f"val_{k}_nats": v for k, v in terms.items()})
        return out


class ClassConditional:
    """Mixin for an `ImageLikelihoodExperiment` with an optional class-conditional model (`config.conditional`):
    with it, the labels are kept and `sample` takes `labels`, and the data are 8-bit `mnist` binarized
    dynamically (`binarized_mnist` has no labels; a config asking for it is switched to `mnist`)."""

    def __init__(self, config: ml_collections.ConfigDict):
        if config.get("conditional", False) and config.get("dataset") == "binarized_mnist":
            from gm_jax import config as config_lib

            config = config_lib.apply_overrides(config, {"dataset": "mnist"}, self.name)
        super().__init__(config)

    @property
    def conditional(self) -> bool:
        return bool(self.config.get("conditional", False))

    @property
    def keep_labels(self) -> bool:
        return self.conditional

    @property
    def conditioning(self) -> tuple:
        return ("labels",) if self.conditional else ()


# -- PixelCNN and Gated PixelCNN: binary pixels, exact likelihood ------------------------------------

def pixelcnn_config(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Add the fields of the binary PixelCNN family to a base config `c` (in place; returned)."""
    c.dataset = "binarized_mnist"  # binarized_mnist (fixed) | mnist (dynamic binarization)
    c.features = 32
    c.num_layers = 5
    c.output_features = 64
    c.sampler = "cached"  # cached | naive
    return c


class PixelCNNExperiment(ClassConditional, ImageLikelihoodExperiment):
    """The binary-pixel PixelCNN family on MNIST (28x28x1, values {0, 1}), exact -log p(x).

    Subclasses set `name` and `build_model(config)`. When `config.conditional`
    is true (gated_pixelcnn_mnist) the data are 8-bit `mnist` binarized
    dynamically, with labels; `log_prob` is then the marginal over the 10 labels.
    """

    data_kind = "binary"
    train_eval_size = 10_000
    likelihood_note = {"discretization": likelihood.BINARY_PIXELS}
    sample_methods = ("cached", "naive")
    schema = {"dataset": Choice(*DATASETS), "sampler": Choice("cached", "naive"),
              "features": Range(1, integer=True), "num_layers": Range(1, integer=True),
              "output_features": Range(1, integer=True)}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.model = self.build_model(self.config)

    def build_model(self, config) -> nn.Module:
        raise NotImplementedError

    def init_params(self, key: jax.Array):
        x = jnp.zeros((1, *self.data_shape), jnp.int32)
        labels = jnp.zeros((1,), jnp.int32) if self.conditional else None
        return self.model.init(key, x, labels)["params"]

    def _log_prob(self, params, x, labels=None):
        return pixelcnn.log_prob(self.model, params, x, labels)

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        """Negative log-likelihood, nats per image, averaged over the batch."""
        x = self.binarize_batch(batch["image"], keys, jnp.int32)
        return -self._log_prob(params, x, batch.get("label")).mean(), {}

    def samplers(self) -> dict:
        """{method name: sampler fn(model, params, key, num_samples, labels)}, the names of `sample_methods`
        (a subclass whose model has its own samplers, e.g. PixelRNN, overrides this)."""
        return {"naive": pixelcnn.sample_naive, "cached": pixelcnn.sample_cached}

    def sample(self, params, key: jax.Array, num_samples: int, labels=None, method=None) -> jax.Array:
        """Samples uint8 [num_samples, 28, 28, 1] in {0, 1}; `method`: "cached" | "naive" (default
        `config.sampler`; the same samples for the same key)."""
        fn = self.samplers()[self.sample_method(method)]
        if self.conditional and labels is None:
            labels = jnp.arange(num_samples) % 10
        return fn(self.model, params, key, num_samples, labels if self.conditional else None)

    def log_prob_per_position(self, params, x: jax.Array, labels=None) -> jax.Array:
        """log p(x_i | x_<i) of every pixel (raster order), nats, float32 [N, 28, 28, 1]; the sum over
        pixels is `log_prob` (class-conditional models: log p(x | labels), `labels` int32 [N] required)."""
        return pixelcnn.log_prob_per_pixel(self.model, params, jnp.asarray(x, jnp.int32),
                                           labels if self.conditional else None)

    @property
    def conditionals_kind(self) -> str:
        return "bernoulli" if self.model.num_values == 2 else "categorical"

    def conditionals(self, params, x: jax.Array, labels=None) -> dict:
        """{"logits": float32 [N, 28, 28, 1]} Bernoulli logits of x_i = 1 of every pixel given the pixels
        before it (binary models; [N, 28, 28, 1, V] categorical logits for V-valued pixels): the
        distributions of `log_prob_per_position` (`labels` as there)."""
        return {"logits": pixelcnn.conditional_logits(self.model, params, jnp.asarray(x, jnp.int32),
                                                      labels if self.conditional else None)}

    def check_score_conditioning(self, num_examples: int, **conditioning) -> dict:
        """Class-conditional models need `labels` (int, or int [N] in 0..9: a per-pixel decomposition
        exists for p(x | y), not for the marginal over labels); unconditional ones take none.

        Raises:
          ValueError: missing labels, labels of the wrong shape or range, or other names.
        """
        if not self.conditional:
            return super().check_score_conditioning(num_examples, **conditioning)
        unknown = sorted(set(conditioning) - {"labels"})
        if unknown or "labels" not in conditioning:
            raise ValueError(f"{self.name} is class-conditional: log_prob_per_position and conditionals need labels "
                             "(an int or int [N] in 0..9; the marginal over labels has no per-pixel terms), got "
                             f"{sorted(conditioning)}")
        labels = np.asarray(conditioning["labels"])
        labels = np.full(num_examples, labels) if labels.ndim == 0 else labels
        if labels.shape != (num_examples,) or not np.issubdtype(labels.dtype, np.integer) or \
                labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"labels must be an int or int [{num_examples}] in 0..9, got {conditioning['labels']!r}")
        return {"labels": jnp.asarray(labels, jnp.int32)}

    def log_prob(self, params, x: jax.Array, key: jax.Array = None) -> jax.Array:
        """Exact log p(x), nats, float32 [N] (class-conditional models: log (1/10) sum_y p(x | y))."""
        x = jnp.asarray(x, jnp.int32)
        if not self.conditional:
            return self._log_prob(params, x)
        per_class = jnp.stack([self._log_prob(params, x, jnp.full((x.shape[0],), y, jnp.int32)) for y in range(10)])
        return jax.nn.logsumexp(per_class, axis=0) - jnp.log(10.0)

    def eval_terms(self, params, batch: dict, key) -> dict:
        out = {"nll": -self.log_prob(params, batch["image"])}
        if self.conditional:  # -> test_nll_given_label_nats
            out["nll_given_label"] = -self._log_prob(params, jnp.asarray(batch["image"], jnp.int32), batch["label"])
        return out

    def grid_images(self, params, key: jax.Array) -> np.ndarray:
        if not self.conditional:
            return super().grid_images(params, key)
        labels = jnp.arange(self.num_grid_samples) % 10  # rows cycle through the digits
        return np.asarray(self.jit_sample(params, key, self.num_grid_samples, labels))

    # -- completion (inpainting) -------------------------------------------------------------
    @functools.cached_property
    def _jit_complete(self):
        return jax.jit(functools.partial(pixelcnn.complete, self.model), static_argnames=("start", "method"))

    def complete(self, params, key: jax.Array, x, mask, labels=None, method=None,
                 allow_approximate: bool = False) -> jax.Array:
        """Keep the observed pixels of `x` and sample the missing ones from the model (`pixelcnn.complete`).

        Exact -- a draw of p(x_missing | x_observed) (class-conditional models: given `labels` too) -- when
        each image's observed pixels are a raster-order prefix (`pixelcnn.is_raster_prefix`: all pixels
        before its first missing one, none after; e.g. the top half, or the top rows and part of the next):
        the pixels from the first missing one on are drawn by ancestral sampling (`sampling.ancestral`
        with `given`), p(x_i | x_<i) being the model's own factor (van den Oord et al. 2016a, Eq. 1). An
        autoregressive model has no tractable conditional on pixels that come later in raster order, so
        other masks raise ValueError unless `allow_approximate=True`, which clamps the observed pixels
        after the first missing one and samples the others from p(x_i | x_<i): NOT the conditional (the
        missing pixels ignore the observed pixels after them). For arbitrary masks use a model that
        conditions on all observed pixels (the VAE's pseudo-Gibbs completion, Rezende et al. 2014 App. F,
        or the EBM's Langevin completion).

        Args:
          params: the model's parameters.
          key: PRNG key; the missing pixel with raster index i draws with `fold_in(key, i)`.
          x: integer or bool [N, 28, 28, 1] pixels in {0, 1} (values at missing pixels are ignored).
          mask: bool, or integers / floats in {0, 1}, True / 1 = observed: [N, 28, 28, 1], or [28, 28, 1] /
            [28, 28] for the same mask on every image (`completion_mask`).
          labels: int [N] (or an int) in 0..9 for class-conditional models; None for unconditional ones.
          method: "cached" | "naive" (default `config.sampler`): the same completions for the same key.
          allow_approximate: accept masks that are not raster prefixes (see above).

        Returns:
          uint8 [N, 28, 28, 1] in {0, 1}, equal to `x` where `mask` is observed.

        Raises:
          ValueError: `x` not [N, 28, 28, 1] pixels in {0, 1} (N >= 1); a mask of another shape, dtype or
            values; an image with every pixel observed (nothing to complete) or none (an empty mask: use
            `sample`); a mask that is not a raster prefix without `allow_approximate`; labels missing,
            given to an unconditional model, or out of range.
        """
        method = self.sample_method(method)
        x = np.asarray(x)
        pixelcnn.check_pixels(x, self.model.num_values, self.data_shape)
        if len(x) == 0:
            raise ValueError("x holds no image (expected [N, 28, 28, 1] with N >= 1)")
        observed = completion_mask(mask, x.shape)
        if not allow_approximate and not pixelcnn.is_raster_prefix(observed).all():
            bad = np.flatnonzero(~pixelcnn.is_raster_prefix(observed))
            raise ValueError(
                f"the mask of image(s) {bad[:5].tolist()} is not a raster-order prefix (observed pixels after a "
                "missing one): an autoregressive model completes exactly only masks whose observed pixels all "
                "come first in raster order (e.g. the top half). Use the VAE's pseudo-Gibbs or the EBM's Langevin "
                "completion for arbitrary masks, or pass allow_approximate=True (not the exact conditional)")
        if self.conditional:
            if labels is None:
                raise ValueError(f"{self.name} is class-conditional: complete needs labels (an int or int [N] in 0..9)")
            labels = self.check_score_conditioning(len(x), labels=labels)["labels"]
        elif labels is not None:
            raise ValueError(f"{self.name} is unconditional: complete takes no labels")
        start = int(pixelcnn.first_missing(observed).min())
        return self._jit_complete(params, key, jnp.asarray(x, jnp.int32), jnp.asarray(observed), start=start,
                                  labels=labels, method=method)

    def completion_study(self, params, key: jax.Array, num_images: int = 1000, classifier=None,
                         batch_size: int = 500, num_figure_images: int = 8, num_completions: int = 6,
                         figure_path=None) -> dict:
        """Bottom-half completion of binarized MNIST test digits, scored by the MNIST classifier.

        The first `num_images` 8-bit `mnist` test images (they carry the labels; `binarized_mnist` has
        none) are binarized once (`dynamic_binarize` with `fold_in(key, 0)`); their top 14 rows are kept
        and the bottom 14 completed (`complete`, exact: a raster prefix; class-conditional models complete
        from p(x | y) with the true labels). The classifier (`gm_jax.evaluation.classifier`, images
        scaled to 0/255) classifies the real binarized digits and the completions.

        Args:
          params: the model's parameters; key: PRNG key.
          num_images: test digits completed (>= 1, at most the test set).
          classifier: a `gm_jax.evaluation.classifier.Classifier` (default: `get_classifier(data_dir=...)`).
          batch_size: images per `complete` call.
          num_figure_images, num_completions: the figure's digits (the first ones) and completions per
            digit (drawn with other keys); figure_path: where to write it (None: no figure).

        Returns:
          {"num_images", "accuracy_real", "accuracy_completed", "accuracy_ratio" (completed / real),
           "observed_rows": 14, "rows_above": the model's `rows_above` (None where it has none),
           "figure": path or None}. A pixel of the bottom row sees the kept rows >= 27 - `rows_above`:
           rows 12-13 only for the default 6-layer Gated PixelCNN (15), all 14 with 12 layers (27).

        Raises:
          ValueError: `num_images` < 1 or above the test set's size.
        """
        from gm_jax.evaluation import classifier as classifier_lib

        data = load_split("mnist", "test", self.config.data_dir or None)
        if not 1 <= num_images <= len(data["image"]):
            raise ValueError(f"num_images must be in [1, {len(data['image'])}], got {num_images}")
        clf = classifier or classifier_lib.get_classifier(data_dir=self.config.data_dir or None)
        real = np.asarray(dynamic_binarize(jax.random.fold_in(key, 0), data["image"][:num_images]))
        labels = np.asarray(data["label"][:num_images], np.int32)
        h = self.data_shape[0] // 2
        mask = np.arange(self.data_shape[0])[:, None].repeat(self.data_shape[1], 1) < h  # [28, 28]: top rows
        done_key, fig_key = jax.random.split(jax.random.fold_in(key, 1))
        completed = np.concatenate([
            np.asarray(self.complete(params, jax.random.fold_in(done_key, i), real[i:i + batch_size], mask,
                                     labels[i:i + batch_size] if self.conditional else None))
            for i in range(0, num_images, batch_size)])
        acc_real = clf.accuracy(real * 255, labels)
        acc_done = clf.accuracy(completed * 255, labels)
        out = {"num_images": int(num_images), "accuracy_real": acc_real, "accuracy_completed": acc_done,
               "accuracy_ratio": acc_done / acc_real if acc_real > 0 else float("nan"), "observed_rows": h,
               "rows_above": getattr(self.model, "rows_above", None), "figure": None}
        if figure_path is not None:
            k = min(num_figure_images, num_images)
            rep = np.repeat(real[:k], num_completions, axis=0)
            rep_labels = np.repeat(labels[:k], num_completions) if self.conditional else None
            fills = np.asarray(self.complete(params, fig_key, rep, mask, rep_labels))
            viz_images.save_completions(figure_path, real[:k], mask, fills.reshape(k, num_completions,
                                                                                   *self.data_shape),
                                        f"{self.name}: top {h} rows kept, bottom completed "
                                        f"({num_completions} draws per digit)")
            out["figure"] = str(figure_path)
        return out

    # -- Bayes-rule classification (class-conditional models) ------------------------------------
    @functools.cached_property
    def _jit_class_log_likelihoods(self):
        def per_class(params, x):
            n = x.shape[0]
            return jnp.stack([self._log_prob(params, x, jnp.full((n,), y, jnp.int32)) for y in range(10)], axis=1)

        return jax.jit(per_class)

    def class_log_likelihoods(self, params, x, batch_size: int = 500) -> np.ndarray:
        """Exact log p(x | y) of every label y = 0..9, nats, float32 [N, 10] (10 network passes per batch).

        Args:
          x: integer or bool [N, 28, 28, 1] pixels in {0, 1}.
          batch_size: images per jitted call.

        Raises:
          ValueError: an unconditional model (no p(x | y)); `x` not binary pixels [N, 28, 28, 1].
        """
        if not self.conditional:
            raise ValueError(f"{self.name} is unconditional: class_log_likelihoods needs a class-conditional model "
                             "(--config.conditional=True)")
        x = np.asarray(x)
        pixelcnn.check_pixels(x, self.model.num_values, self.data_shape)
        return np.concatenate([np.asarray(self._jit_class_log_likelihoods(params, jnp.asarray(x[i:i + batch_size],
                                                                                              jnp.int32)))
                               for i in range(0, len(x), batch_size)])

    def bayes_classify(self, params, x, batch_size: int = 500) -> np.ndarray:
        """Bayes' rule with the uniform label prior of `log_prob` (p(y) = 1/10): argmax_y log p(x | y), int [N]
        (`class_log_likelihoods`; same arguments and errors)."""
        return np.argmax(self.class_log_likelihoods(params, x, batch_size), axis=1)

    def bayes_study(self, params, key: jax.Array, num_images: int = 10_000, batch_size: int = 500) -> dict:
        """Bayes-rule accuracy of a class-conditional model on the first `num_images` 8-bit `mnist` test digits,
        binarized once with `fold_in(key, 0)` (`dynamic_binarize`).

        Returns:
          {"num_images", "bayes_accuracy" (fraction), "mean_log_likelihood_true_label_nats" (mean log p(x | y)
           of the true labels), "mean_log_marginal_nats" (mean log (1/10) sum_y p(x | y)),
           "per_class_accuracy" (10 fractions)}.

        Raises:
          ValueError: an unconditional model; `num_images` < 1 or above the test set's size.
        """
        data = load_split("mnist", "test", self.config.data_dir or None)
        if not 1 <= num_images <= len(data["image"]):
            raise ValueError(f"num_images must be in [1, {len(data['image'])}], got {num_images}")
        x = np.asarray(dynamic_binarize(jax.random.fold_in(key, 0), data["image"][:num_images]))
        labels = np.asarray(data["label"][:num_images])
        ll = self.class_log_likelihoods(params, x, batch_size)
        pred = np.argmax(ll, axis=1)
        marginal = np.logaddexp.reduce(ll.astype(np.float64), axis=1) - np.log(10.0)
        return {"num_images": int(num_images), "bayes_accuracy": float(np.mean(pred == labels)),
                "mean_log_likelihood_true_label_nats": float(np.mean(ll[np.arange(len(x)), labels])),
                "mean_log_marginal_nats": float(np.mean(marginal)),
                "per_class_accuracy": [float(np.mean(pred[labels == c] == c)) if np.any(labels == c) else None
                                       for c in range(10)]}


class PixelRNNExperiment(PixelCNNExperiment):
    """The PixelRNNs (Row LSTM, Diagonal BiLSTM; `gm_jax.models.pixelrnn`) on binary MNIST: the PixelCNN family's
    data, exact likelihood and evaluation, with the PixelRNN samplers (the cached one carries the LSTM states).
    Subclasses set `name` and `build_model(config)`."""

    schema = {**PixelCNNExperiment.schema, "first_kernel": Range(1, integer=True)}

    def samplers(self) -> dict:
        return {"naive": pixelrnn.sample_naive, "cached": pixelrnn.sample_cached}


# -- RealNVP and Glow on dequantized 8-bit images ------------------------------------------------

def image_flow_config(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Add the fields every image flow experiment has to a base config `c` (in place; returned)."""
    c.preprocess = "logit"  # logit (RealNVP) | center (Glow's x - 0.5)
    c.logit_alpha = 0.05
    c.hidden = 64  # conditioner width
    c.num_layers = 2  # conditioner depth (hidden layers)
    c.warmup_steps = 200  # linear learning-rate warmup, then cosine decay to lr_final_fraction * lr
    c.lr_final_fraction = 0.05
    c.grad_clip = 50.0  # global-norm gradient clipping
    c.init_batch_size = 256  # training images for the actnorm data-dependent init
    c.num_recon_images = 10_000  # test images for the reconstruction error of f^-1(f(x~)) (all of them)
    c.temperatures = (0.0, 0.25, 0.5, 0.7, 0.85, 1.0)  # rows of temperature_sweep.png
    c.sample_temperature = 1.0  # temperature of samples.png
    return c


FLOW_SCHEMA = {
    "preprocess": Choice("logit", "center"),
    "logit_alpha": Range(0.0, 0.5, lo_open=True, hi_open=True),
    "hidden": Range(1, integer=True),
    "num_layers": Range(1, integer=True),
    "init_batch_size": Range(2, integer=True),
    "warmup_steps": Range(0, integer=True),
    "lr_final_fraction": Range(0.0),
    "grad_clip": Range(0.0, lo_open=True),
    "num_recon_images": Range(1, integer=True),
    "temperatures": Range(0.0, each=True),
    "sample_temperature": Range(0.0),
}


class ImageFlowExperiment(ImageLikelihoodExperiment):
    """A flow on dequantized 8-bit MNIST: exact log-likelihood, bits/dim, samples with a temperature.

    Subclasses define `name` and `build_flow()` (a bijector [B, 28, 28, 1] in [0, 1] -> [B, 784]).

    `log_prob(params, x, key)` is the exact log density of the dequantized point
    x + u in [0, 256]^D, u ~ U[0, 1)^D drawn from `key`:
    `log p(x~) - D ln 256` nats with x~ = (x + u) / 256; its expectation over u is a
    lower bound on log P(x) of the discrete data, and `-log_prob / (D ln 2)` is the
    bits/dim of `flows.bits_per_dim`. `sample(params, key, n, temperature=1.0)` returns
    uint8 images [n, 28, 28, 1] in 0-255 (`quantize(f^-1(z))`, z ~ N(0, T^2 I)).
    """

    # the flows' steps are many small convolutions, which YNNPACK runs faster side by side than XLA's own
    # kernels (measured for Glow, RealNVP and FFJORD: README "Against PyTorch")
    xla_cpu_convolutions = "ynnpack"

    data_kind = "uint8"
    conditioning = ("temperature",)
    log_prob_needs_key = True
    likelihood_note = {"dequantization": likelihood.UNIFORM_DEQUANTIZATION}
    schema = FLOW_SCHEMA

    def __init__(self, config):
        super().__init__(config)
        self.dim = self.num_dims
        self.flow = self.build_flow()

    def build_flow(self) -> nn.Module:
        raise NotImplementedError

    # The actnorm initialisation batch is the data setup (`Experiment.data_setup`).
    setup_fields = ("data_dir", "seed", "init_batch_size")
    setup_arrays = ("init_images",)

    def compute_data_setup(self) -> dict[str, np.ndarray]:
        """{"init_images": uint8 [init_batch_size, 28, 28, 1]}: training images chosen by `config.seed`."""
        train = self.load("train")["image"]
        idx = np.sort(np.random.default_rng([self.config.seed, 7]).choice(len(train), self.config.init_batch_size,
                                                                            replace=False))
        return {"init_images": train[idx]}

    def init_params(self, key):
        """Parameters with the actnorm data-dependent init on the `init_batch_size` training images of the
        data setup, dequantized with `key`."""
        init_key, u_key = jax.random.split(key)
        x = flows.dequantize(u_key, jnp.asarray(self.data_setup["init_images"]))
        return self.flow.init(init_key, x, method="forward_and_log_det")["params"]

    def optimizer(self):
        c = self.config
        warmup = max(1, min(c.warmup_steps, max(c.num_steps - 1, 1)))
        schedule = optax.warmup_cosine_decay_schedule(0.0, c.learning_rate, warmup, max(c.num_steps, warmup + 1),
                                                      c.learning_rate * c.lr_final_fraction)
        return optax.chain(optax.clip_by_global_norm(c.grad_clip), optax.adam(schedule))

    def loss_fn(self, params, batch, keys):
        """-log p(x~) + D ln 256, nats per image (the dequantized NLL of the 8-bit image); u per example from keys."""
        x = jax.vmap(flows.dequantize)(keys, batch["image"])
        nll = -(flows.log_prob(self.flow, params, x) - self.dim * flows.LN256).mean()
        return nll, {"bits_per_dim": nats_to_bits(nll, self.dim)}

    def log_prob(self, params, x, key):
        """Exact log density of x + u in [0, 256]^D, nats, float32 [N] (u ~ U[0,1)^D from `key`; see class doc)."""
        x_t = flows.dequantize(key, jnp.asarray(x))
        return flows.log_prob(self.flow, params, x_t) - self.dim * flows.LN256

    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """Accepts `temperature` (a finite float >= 0, default 1.0). ValueError otherwise."""
        conditioning = super().check_conditioning(num_samples, **conditioning)
        return {"temperature": flows.check_temperature(conditioning.get("temperature", 1.0))}

    def sample(self, params, key, num_samples: int, temperature=1.0):
        """uint8 [num_samples, 28, 28, 1] in 0-255: quantize(f^-1(z)), z ~ N(0, temperature^2 I)."""
        return flows.quantize(flows.sample(self.flow, params, key, num_samples, self.dim, temperature))

    # -- evaluation ---------------------------------------------------------------------------
    def reconstruction_errors(self, params, x_t, dtype=jnp.float32) -> np.ndarray:
        """Per-image max |f^-1(f(x~)) - x~| for images x~ [N, 28, 28, 1] in [0, 1], computed in `dtype`
        (float32, or float64 under `jax.enable_x64`): float64 [N]."""
        @jax.jit
        def err(p, xb):
            z, _ = self.flow.apply({"params": p}, xb, method="forward_and_log_det")
            back, _ = self.flow.apply({"params": p}, z, method="inverse_and_log_det")
            return jnp.max(jnp.abs(back - xb).reshape(xb.shape[0], -1), axis=1)

        p = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)
        x_t = np.asarray(x_t)
        bs = self.config.eval_batch_size
        return np.concatenate([np.asarray(err(p, jnp.asarray(x_t[i:i + bs], dtype)), np.float64)
                               for i in range(0, len(x_t), bs)])

    def reconstruction_error(self, params, x_t: jax.Array) -> float:
        """max |f^-1(f(x~)) - x~| over float32 images x~ [N, 28, 28, 1] in [0, 1] (float32 arithmetic)."""
        return float(self.reconstruction_errors(params, x_t).max())

    def reconstruction_report(self, params, x_t) -> dict:
        """The float32 reconstruction error (max, median and 99th percentile of the per-image max, share
        of images above 1e-4) and the max in float64 arithmetic (same parameters and inputs), which
        separates float32 round-off amplified by the trained flow's conditioning from an inexact inverse."""
        e32 = self.reconstruction_errors(params, x_t)
        with jax.enable_x64(True):
            e64 = self.reconstruction_errors(params, x_t, jnp.float64)
        return {"reconstruction_max_abs_error": float(e32.max()),
                "reconstruction_median_abs_error": float(np.median(e32)),
                "reconstruction_p99_abs_error": float(np.percentile(e32, 99)),
                "reconstruction_fraction_above_1e-4": float(np.mean(e32 > 1e-4)),
                "reconstruction_max_abs_error_float64": float(e64.max())}

    def eval_keys(self, key):
        test_key, recon_key = jax.random.split(key)
        return {"binarize": None, "test": test_key, "train": None, "recon": recon_key}

    def extra_metrics(self, params, keys):
        test = self.load("test", self.config.num_recon_images)["image"]
        x_t = flows.dequantize(keys["recon"], jnp.asarray(test))
        return {**self.reconstruction_report(params, x_t),
                "num_recon_images": int(len(x_t)),
                "num_params": int(sum(x.size for x in jax.tree_util.tree_leaves(params))),
                "figures": ["samples.png", "temperature_sweep.png"]}

    def grid_images(self, params, key):
        return np.asarray(self.jit_sample(params, key, self.num_grid_samples, self.config.sample_temperature))

    def write_artifacts(self, params, key, workdir: Path) -> None:
        super().write_artifacts(params, key, workdir)
        sweep_key = jax.random.fold_in(key, 1)
        rows = [np.asarray(self.jit_sample(params, sweep_key, 10, t)) for t in self.config.temperatures]
        viz_images.save_temperature_sweep(Path(workdir) / "temperature_sweep.png", self.config.temperatures, rows,
                                          f"{self.name}: samples at temperature T (same z per column)")
