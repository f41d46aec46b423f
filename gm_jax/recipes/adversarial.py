"""The adversarial family: GANs as experiments (toy problems, DCGAN, conditional and self-conditioned DCGAN).

* `GANExperiment`: the train state is a `gm_jax.models.gan.GANState` and `update` is
  `GAN.update` (Algorithm 1 of Goodfellow et al. 2014); no explicit density.
* `ToyGANExperiment`: MLP players on fresh draws of a 2-D ring of Gaussians or a 1-D
  Gaussian; mode coverage (`gm_jax.evaluation.toy`) and training snapshots.
* `DCGANExperiment`: DCGAN players on MNIST, unconditional, conditioned on the digit
  (`num_classes = 10`: a cGAN) or on k-means clusters of the images (`config.clusters`:
  a self-conditioned GAN); scored by MNIST-FID / MNIST-IS with the project's classifier, with
  `interpolations.png`: G along linear and spherical paths in z (`vae.interpolate`).
* `EBGANExperiment`: the energy-based GAN (Zhao et al. 2017) on MNIST, the DCGAN generator
  against an autoencoder discriminator (energy = reconstruction error) with the margin loss and
  the pulling-away term; the DCGAN's data, sampling and MNIST-FID / MNIST-IS evaluation.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gm_jax import viz
from gm_jax.config import Choice, Range
from gm_jax.data import load_split, toy, train_batches
from gm_jax.evaluation import classifier as classifier_lib
from gm_jax.evaluation import sample_quality
from gm_jax.evaluation import toy as toy_eval
from gm_jax.experiment import Experiment
from gm_jax.models import ebgan, gan, vae
from gm_jax.recipes.toy import ToyData
from gm_jax.training import checkpoint
from gm_jax.training.loop import run_keys
from gm_jax.viz import curves
from gm_jax.viz import latent as viz_latent
from gm_jax.viz import toy as toy_viz


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


class GANExperiment(Experiment):
    """Base of the GAN experiments: the train state is a `GANState`, `update` is `GAN.update`.

    Subclasses set `self.gan` (a `GAN`) in `__init__` and define `real_inputs(batch)`
    -> (x float [B, ...] in G's output range, labels int32 [B] or None) and
    `example_inputs()` -> (x [1, ...], labels [1] or None) for shapes.
    `params_of(state)` is `{"params": g_params, "batch_stats": g_batch_stats}`, what the
    sampler needs (the moving averages `g_ema_*` instead when the GAN's `ema_decay` > 0), plus
    `"label_log_prior"` when the state has one. `log_prob` raises `NotImplementedError` (a GAN
    has no explicit density).
    """

    gan: gan.GAN
    schema = {"k": Range(1, integer=True), "generator_loss": Choice(*gan.GENERATOR_LOSSES),
              "beta1": Range(0.0, 1.0, hi_open=True)}

    def real_inputs(self, batch: dict):
        raise NotImplementedError

    def example_inputs(self):
        raise NotImplementedError

    def init_state(self, key: jax.Array) -> gan.GANState:
        return self.gan.init(key, *self.example_inputs())

    def init_params(self, key: jax.Array) -> dict:
        """The sampler's variables at initialisation: `params_of(init_state(key))`."""
        return self.params_of(self.init_state(key))

    def update(self, state: gan.GANState, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """Algorithm 1 (k discriminator updates, one generator update) on `batch`; see `GAN.update`."""
        x, y = self.real_inputs(batch)
        return self.gan.update(state, x, y, keys, axis_name)

    def params_of(self, state: gan.GANState) -> dict:
        if self.gan.ema_decay:
            out = {"params": state.g_ema_params, "batch_stats": state.g_ema_batch_stats}
        else:
            out = {"params": state.g_params, "batch_stats": state.g_batch_stats}
        if isinstance(state.label_log_prior, dict):  # {}: no prior
            return out
        return {**out, "label_log_prior": state.label_log_prior}

    def log_prob(self, params, x, key):
        raise NotImplementedError(
            f"{self.name} is a GAN: it defines a sampler x = G(z) but no explicit density, so log_prob "
            "is not available (compare samples with MNIST-FID / MNIST-IS or the toy metrics instead)")


class ToyGANExperiment(ToyData, GANExperiment):
    """MLP players on a ring of Gaussians (`config.problem = "ring8"`) or N(gauss_mean, gauss_std^2) ("gauss1d").

    Config fields used: `problem`, `ring_radius`, `ring_std`, `num_modes`, `gauss_mean`, `gauss_std`,
    `num_eval_samples`, `min_mode_samples`. Subclasses set `self.gan` and `self.data_shape`.
    """

    def draw_data(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n points of p_data, float32 [n, d]."""
        c = self.config
        if c.problem == "gauss1d":
            return toy.gaussian_1d(rng, n, c.gauss_mean, c.gauss_std)
        return toy.ring_of_gaussians(rng, n, c.num_modes, c.ring_radius, c.ring_std)

    def centers(self) -> np.ndarray:
        """The ring's mode centres float [num_modes, 2]."""
        return toy.ring_centers(self.config.num_modes, self.config.ring_radius)

    def real_inputs(self, batch):
        return jnp.asarray(batch["x"], jnp.float32), None

    def example_inputs(self):
        return jnp.zeros((1, *self.data_shape), jnp.float32), None

    def sample(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """x = G(z), z ~ p(z): float32 [num_samples, d] points."""
        return self.gan.generate(params["params"], params["batch_stats"], key, num_samples)

    def evaluate(self, params, key: jax.Array) -> dict:
        c = self.config
        x = np.asarray(self.jit_sample(params, key, c.num_eval_samples))
        if c.problem == "ring8":
            out = toy_eval.ring_metrics(x, self.centers(), c.ring_std, c.min_mode_samples)
        else:
            out = {"sample_mean": float(x.mean()), "sample_std": float(x.std()),
                   "target_mean": float(c.gauss_mean), "target_std": float(c.gauss_std)}
        return {**out, "problem": c.problem, "num_eval_samples": int(c.num_eval_samples),
                "figures": ["samples.png", "training.png", "losses.png"]}

    def validate(self, params, key: jax.Array) -> dict:
        """`evaluate`'s sample metrics on `config.num_validation_examples` samples: ring8 `val_modes_covered`
        (modes with at least `min_mode_samples` samples within 3 std) and `val_high_quality_fraction`;
        gauss1d `val_sample_mean`, `val_sample_std`."""
        c = self.config
        x = np.asarray(self.jit_sample(params, key, c.num_validation_examples))
        if c.problem == "ring8":
            m = toy_eval.ring_metrics(x, self.centers(), c.ring_std, c.min_mode_samples)
            return {"val_modes_covered": m["modes_covered"], "val_high_quality_fraction": m["high_quality_fraction"]}
        return {"val_sample_mean": float(x.mean()), "val_sample_std": float(x.std())}

    def snapshots(self, workdir: Path) -> list[tuple[int, gan.GANState]]:
        """(step, state) at step 0 and every checkpoint kept in `workdir`."""
        init = self.init_state(run_keys(self.config.seed)["init"])
        out = [(0, init)]
        with checkpoint.Checkpointer(workdir, read_only=True) as ckpt:
            for step in ckpt.steps():
                out.append((step, ckpt.restore(init, step)))
        return out

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        workdir = Path(workdir)
        c = self.config
        curves.save_gan_losses(workdir / "metrics.jsonl", workdir / "losses.png", title=f"{self.name} ({c.problem})")
        snaps = [(step, state, np.asarray(self.jit_sample(self.params_of(state), key, c.num_eval_samples)))
                 for step, state in self.snapshots(workdir)]
        if c.problem == "ring8":
            toy_viz.save_ring_snapshots(workdir / "training.png", [(s, x) for s, _, x in snaps], self.centers(),
                                        c.ring_radius * 1.6)
        else:
            grid = np.linspace(c.gauss_mean - 5 * c.gauss_std - 2, c.gauss_mean + 5 * c.gauss_std + 2, 400)
            p = np.exp(-0.5 * ((grid - c.gauss_mean) / c.gauss_std) ** 2) / (c.gauss_std * np.sqrt(2 * np.pi))
            grid_x = jnp.asarray(grid[:, None], jnp.float32)
            panels = [(s, x, np.asarray(jax.nn.sigmoid(self.gan.discriminate(state.d_params, state.d_batch_stats,
                                                                              grid_x)))) for s, state, x in snaps]
            toy_viz.save_1d_snapshots(workdir / "training.png", panels, grid, p)
        x = np.asarray(self.jit_sample(params, key, c.num_eval_samples))
        toy_viz.save_samples(workdir / "samples.png", x, f"{self.name} {c.problem}: {c.num_eval_samples} samples",
                             self.centers() if c.problem == "ring8" else None)


class DCGANExperiment(GANExperiment):
    """DCGAN players (`gan.DCGANGenerator` / `DCGANDiscriminator`) on MNIST; samples uint8 [N, 28, 28, 1].

    `num_classes = 0`: unconditional, or self-conditioned on `config.clusters` k-means clusters
    of the training images (Liu et al. 2020); `num_classes > 0`: conditioned on the digit label
    (Mirza & Osindero 2014), with `labels` conditioning for `sample`. Config fields: `z_dim`,
    `g_channels`, `d_channels`, `k`, `pack`, `generator_loss`, `learning_rate`, `beta1`, `lr_decay`,
    `g_ema_decay`, `clusters`, `num_eval_samples`, `classifier_dir`.
    """

    data_kind = "uint8"
    data_shape = (28, 28, 1)
    num_classes = 0
    grid_samples, grid_cols, nn_samples, nn_pairs_per_row = 64, 8, 32, 4  # samples.png / nearest_neighbours.png
    schema = {**GANExperiment.schema, "z_dim": Range(1, integer=True), "g_channels": Range(1, integer=True, each=True),
              "d_channels": Range(1, integer=True, each=True), "num_eval_samples": Range(2, integer=True),
              "lr_decay": Choice("none", "linear"), "g_ema_decay": Range(0.0, 1.0, hi_open=True),
              "pack": Range(1, integer=True), "clusters": Range(0, integer=True)}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if not config.g_channels or not config.d_channels or 28 % (2 ** len(config.g_channels)):
            raise ValueError(f"config.g_channels={config.g_channels}, d_channels={config.d_channels}: both non-empty "
                             "and 28 divisible by 2^len(g_channels)")
        if config.clusters < 0 or config.clusters == 1 or (self.num_classes and config.clusters):
            raise ValueError(f"config.clusters={config.clusters} must be 0 (off) or >= 2, and 0 for a "
                             "conditional GAN")
        self.condition_classes = self.num_classes or int(config.clusters)  # G and D see one-hot labels of this size
        if config.pack < 1 or (self.condition_classes and config.pack != 1) or config.batch_size % config.pack:
            raise ValueError(f"config.pack={config.pack} must be >= 1, divide batch_size={config.batch_size}, and be 1 "
                             "for a conditional or self-conditioned (clusters > 0) GAN")
        z_dim = int(config.z_dim)
        linear = config.lr_decay == "linear"
        g_opt = gan.dcgan_optimizer(config.learning_rate, config.beta1, config.num_steps if linear else None)
        d_opt = gan.dcgan_optimizer(config.learning_rate, config.beta1, config.k * config.num_steps if linear else None)
        self.gan = gan.GAN(
            gan.DCGANGenerator(tuple(config.g_channels), self.data_shape, num_classes=self.condition_classes),
            gan.DCGANDiscriminator(tuple(config.d_channels), num_classes=self.condition_classes,
                                   pack=int(config.pack)),
            g_opt, d_opt, lambda k: jax.random.normal(k, (z_dim,)), k=config.k, loss=config.generator_loss,
            ema_decay=config.g_ema_decay)
        self._classifier = None
        if config.clusters:  # the k-means clusters are the data setup (`Experiment.data_setup`)
            self.setup_fields = ("data_dir", "clusters", "seed")
            self.setup_arrays = ("cluster", "log_prior")

    # -- data -------------------------------------------------------------------------
    def _split(self, split: str) -> dict:
        return load_split("mnist", split, self.config.data_dir or None)

    def compute_data_setup(self) -> dict[str, np.ndarray]:
        """The self-conditioning clusters (`config.clusters` = K > 1): k-means (scikit-learn `KMeans`,
        k-means++ init, one run, `random_state = config.seed`) of the training images as pixel vectors
        in [0, 1]. `cluster` int32 [N]: the cluster of each training image, in `_split("train")`'s order;
        `log_prior` float32 [K]: the log of each cluster's share of the training images."""
        from sklearn.cluster import KMeans

        images = self._split("train")["image"]
        pixels = images.reshape(len(images), -1).astype(np.float32) / 255.0
        k = int(self.config.clusters)
        cluster = KMeans(k, n_init=1, random_state=int(self.config.seed)).fit(pixels).labels_.astype(np.int32)
        log_prior = np.log(np.bincount(cluster, minlength=k) / len(cluster)).astype(np.float32)
        return {"cluster": cluster, "log_prior": log_prior}

    def clusters(self) -> tuple[np.ndarray, np.ndarray]:
        """(cluster int32 [N], log_prior float32 [K]) of the data setup (`compute_data_setup`), computed once
        per machine and stored with each run; only with `config.clusters` > 1."""
        return self.data_setup["cluster"], self.data_setup["log_prior"]

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        data = self._split("train")
        arrays = {"image": data["image"], "label": data["label"]}
        if self.config.clusters:
            arrays["cluster"] = self.clusters()[0]
        return train_batches(arrays, self.config.batch_size, self.config.seed, start_step, rows)

    def real_inputs(self, batch):
        y = None  # the labels the players are conditioned on: digits (cGAN), k-means clusters, or none
        if self.num_classes:
            y = batch["label"]
        elif self.config.clusters:
            y = batch["cluster"]
        return gan.from_uint8(batch["image"]), y

    def example_inputs(self):
        n = int(self.config.pack)  # one pack of examples (1 without PacGAN)
        y = jnp.zeros((n,), jnp.int32) if self.condition_classes else None
        return jnp.zeros((n, *self.data_shape), jnp.float32), y

    def init_state(self, key: jax.Array) -> gan.GANState:
        state = super().init_state(key)
        if not self.config.clusters:
            return state
        return state.replace(label_log_prior=jnp.asarray(self.clusters()[1]))

    # -- sampling ---------------------------------------------------------------------
    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """Check `sample`'s `labels` (conditional GANs) on concrete values, before the jitted sampler.

        Args:
          num_samples: the number of samples asked for.
          labels: optional int array [num_samples] of classes 0..num_classes-1 (default: i mod num_classes).

        Returns:
          `{"labels": int32 [num_samples]}` (conditional), `{}` otherwise.

        Raises:
          ValueError: an unknown keyword, or `labels` not an integer array of shape [num_samples]
            with values in 0..num_classes-1.
        """
        conditioning = super().check_conditioning(num_samples, **conditioning)
        if not self.num_classes:
            return conditioning
        labels, top = conditioning.get("labels"), self.num_classes - 1
        if labels is None:
            return {"labels": np.arange(num_samples, dtype=np.int32) % self.num_classes}
        y = np.asarray(labels)
        if y.shape != (num_samples,):
            raise ValueError(f"{self.name}: labels must have shape [num_samples] = [{num_samples}], got {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{self.name}: labels must be integers in 0..{top}, got dtype {y.dtype}")
        if y.size and (y.min() < 0 or y.max() > top):
            raise ValueError(f"{self.name}: labels must be digits in 0..{top}, got values in [{y.min()}, {y.max()}]")
        return {"labels": y.astype(np.int32)}

    def sample(self, params, key: jax.Array, num_samples: int, labels=None) -> jax.Array:
        """x = G(z[, y]), z ~ N(0, I): uint8 [num_samples, 28, 28, 1], values 0..255 (eval-mode batch norm).

        Conditional (`num_classes` > 0): `labels` int [num_samples] (default: i mod num_classes).
        Self-conditioned (`config.clusters` = K): x = G(z, c) with c ~ Cat(exp(params["label_log_prior"]))
        drawn from `fold_in(key, 1)`.

        Raises:
          ValueError: labels of the wrong shape or dtype (always), or out of range (when the
            labels are concrete values; under jit call `check_conditioning` first).
        """
        y = None
        if self.num_classes:
            if labels is None:
                labels = jnp.arange(num_samples, dtype=jnp.int32) % self.num_classes
            elif _is_concrete(labels):
                self.check_conditioning(num_samples, labels=labels)
            elif tuple(labels.shape) != (num_samples,) or not jnp.issubdtype(labels.dtype, jnp.integer):
                raise ValueError(f"{self.name}: labels must be integers of shape [{num_samples}], "
                                 f"got {labels.dtype} {tuple(labels.shape)}")
            y = jnp.asarray(labels, jnp.int32)
        elif self.config.clusters:
            y = jax.random.categorical(jax.random.fold_in(key, 1), params["label_log_prior"], shape=(num_samples,))
        return gan.to_uint8(self.gan.generate(params["params"], params["batch_stats"], key, num_samples, y))

    def _samples(self, params, key: jax.Array, n: int, labels: np.ndarray | None = None) -> np.ndarray:
        """n samples as a host uint8 array, generated in jitted chunks of eval_batch_size."""
        bs = self.config.eval_batch_size
        if not hasattr(self, "_chunk_fn"):
            if self.num_classes:
                self._chunk_fn = jax.jit(lambda p, k, y: self.sample(p, k, bs, labels=y))
            else:
                self._chunk_fn = jax.jit(lambda p, k, y: self.sample(p, k, bs))
        out = []
        for i in range(0, n, bs):
            y = None
            if labels is not None:
                y = np.resize(labels[i:i + bs], bs).astype(np.int32)
            out.append(np.asarray(self._chunk_fn(params, jax.random.fold_in(key, i // bs), y)))
        return np.concatenate(out)[:n]

    def eval_labels(self, n: int) -> np.ndarray | None:
        """The labels of the evaluation samples: i mod num_classes (conditional), None otherwise."""
        return (np.arange(n) % self.num_classes).astype(np.int32) if self.num_classes else None

    # -- evaluation -------------------------------------------------------------------
    def classifier(self):
        """(the MNIST classifier, the training set's reference feature stats), loaded once
        (`classifier.classifier_and_reference`; the smoke-test classifier on synthetic data)."""
        if self._classifier is None:
            self._classifier = classifier_lib.classifier_and_reference(self.config.classifier_dir or None,
                                                                       self.config.data_dir or None)
        return self._classifier

    def evaluate(self, params, key: jax.Array) -> dict:
        clf, reference = self.classifier()
        n = int(self.config.num_eval_samples)
        labels = self.eval_labels(n)
        x = self._samples(params, key, n, labels)
        fid, score, logits = sample_quality.mnist_fid_and_is(clf, x, reference)
        probs = classifier_lib.softmax64(logits)
        real_fid, real_is = clf.info["real_test_vs_train_mnist_fid"], clf.info["real_test_mnist_is"]
        out = {
            "mnist_fid": fid, "mnist_is": score, "num_eval_samples": n,
            "real_test_vs_train_mnist_fid": real_fid, "real_test_mnist_is": real_is,
            "fid_ratio_to_real": fid / real_fid, "is_fraction_of_real": score / real_is,
            "classifier_test_accuracy": clf.info["test_accuracy"],
            "figures": ["samples.png", "nearest_neighbours.png", "losses.png", "interpolations.png"],
            "metric_note": "MNIST-FID / MNIST-IS use the project's MNIST classifier, not Inception-v3",
        }
        if "smoke_test" in clf.info:
            out["classifier_smoke_test"] = clf.info["smoke_test"]
        train, test, predicted = self._split("train"), self._split("test"), np.argmax(logits, 1)
        shares, out["class_kl_nats"] = sample_quality.class_share_kl(predicted, test["label"], probs.shape[1])
        out["class_shares"] = [round(float(v), 4) for v in shares]
        matched = sample_quality.class_resampled_features(clf.features(test["image"]), test["label"], shares, n)
        out["class_matched_real_mnist_fid"] = sample_quality.frechet_distance(
            *sample_quality.feature_stats(matched), *reference)
        out["confident_fraction"] = float(np.mean(probs.max(1) > 0.9))  # top-class probability > 0.9
        if labels is not None:
            out["label_accuracy"] = float(np.mean(predicted == labels))
        if self.config.clusters:  # how digit-like the unsupervised clusters are (labels used for this report only)
            cluster, digit = self.clusters()[0], train["label"]
            majority = sum(np.bincount(digit[cluster == j], minlength=10).max() for j in range(self.config.clusters))
            out["cluster_digit_purity"] = float(majority / len(cluster))
        out["nn_mean_l2"] = float(sample_quality.nearest_neighbours(x[:1000], train["image"])[1].mean())
        out["real_test_nn_mean_l2"] = float(
            sample_quality.nearest_neighbours(test["image"][:1000], train["image"])[1].mean())
        return out

    def validate(self, params, key: jax.Array) -> dict:
        """`val_mnist_fid` and `val_mnist_is` (and `val_label_accuracy` of a conditional GAN) of
        `config.num_validation_examples` samples, scored as `evaluate` scores `num_eval_samples` (the same
        classifier and training-set reference). FID is biased upwards at small sample sizes: compare values
        of the same size only."""
        clf, reference = self.classifier()
        n = int(self.config.num_validation_examples)
        labels = self.eval_labels(n)
        fid, score, logits = sample_quality.mnist_fid_and_is(clf, self._samples(params, key, n, labels), reference)
        out = {"val_mnist_fid": fid, "val_mnist_is": score}
        if labels is not None:
            out["val_label_accuracy"] = float(np.mean(np.argmax(logits, 1) == labels))
        return out

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        workdir = Path(workdir)
        x = self._samples(params, key, self.grid_samples, self.eval_labels(self.grid_samples))
        viz.save_image_grid(workdir / "samples.png", x, cols=self.grid_cols, max_value=255.0)
        train = self._split("train")["image"]
        sample_quality.save_nearest_neighbour_figure(workdir / "nearest_neighbours.png", x[:self.nn_samples], train,
                                                     pairs_per_row=self.nn_pairs_per_row)
        curves.save_gan_losses(workdir / "metrics.jsonl", workdir / "losses.png", title=self.name)
        self.write_interpolations(params, key, workdir)

    def write_interpolations(self, params, key: jax.Array, workdir: Path, rows: int = 6, steps: int = 10) -> None:
        """`interpolations.png`: x = G(z[, y]) along linear and spherical paths (`vae.interpolate`; slerp after
        White 2016) between `rows` pairs of z ~ p(z) drawn from `fold_in(key, 2)`, `steps` points each. A
        conditional GAN keeps the label of row i at i mod num_classes, a self-conditioned one at a cluster drawn
        from the clusters' frequencies, so each row shows z's part alone."""
        k0, k1, ky = jax.random.split(jax.random.fold_in(key, 2), 3)
        z0, z1 = self.gan.draw_noise(jax.random.split(k0, rows)), self.gan.draw_noise(jax.random.split(k1, rows))
        y = None
        if self.num_classes:
            y = jnp.arange(rows, dtype=jnp.int32) % self.num_classes
        elif self.config.clusters:
            y = jax.random.categorical(ky, params["label_log_prior"], shape=(rows,))
        variables = {"params": params["params"]}
        if params["batch_stats"]:
            variables["batch_stats"] = params["batch_stats"]
        generate = jax.jit(lambda v, z, y: gan.to_uint8(self.gan.generator.apply(v, z, y, train=False)))
        panels = []
        for method in vae.INTERPOLATIONS:
            z = vae.interpolate(z0, z1, steps, method)
            x = generate(variables, z.reshape(rows * steps, -1), None if y is None else jnp.repeat(y, steps))
            panels.append((method, np.asarray(x).reshape(rows, steps, *self.data_shape)))
        viz_latent.save_interpolations(workdir / "interpolations.png", panels,
                                       f"{self.name}: G(z) along paths between draws of p(z)", max_value=255.0)


class EBGANExperiment(DCGANExperiment):
    """The energy-based GAN (Zhao et al. 2017) on MNIST: `gan.DCGANGenerator` against an autoencoder
    discriminator (`ebgan.EBGANDiscriminator`, energy = per-example mean squared reconstruction error)
    under the margin loss and the pulling-away term (`ebgan.EBGANObjective`); unconditional.

    Data, sampling, MNIST-FID / MNIST-IS evaluation and figures are the DCGAN's, plus `energies.png`
    (the mean energies of data and fakes and the pulling-away term along training). Config fields beyond
    the DCGAN's: `margin` (m > 0, per-pixel squared-error units), `pt_weight` (>= 0), `code_dim` (the
    encoder's code size) and `d_learning_rate` (the discriminator's Adam rate; `learning_rate` is the
    generator's); `d_channels` are the encoder's channels (2^len(d_channels) must divide 28).

    Raises:
      ValueError: (besides the DCGAN's checks) margin <= 0, pt_weight < 0, clusters or pack set, or
        d_channels that do not halve 28 evenly.
    """

    schema = {**DCGANExperiment.schema, "margin": Range(0.0, lo_open=True), "pt_weight": Range(0.0),
              "code_dim": Range(1, integer=True), "d_learning_rate": Range(0.0, lo_open=True)}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.clusters or config.pack != 1:
            raise ValueError(f"{self.name} is unconditional with a single-example energy: config.clusters must be 0 "
                             f"and config.pack 1, got clusters={config.clusters}, pack={config.pack}")
        if 28 % (2 ** len(config.d_channels)):
            raise ValueError(f"config.d_channels={config.d_channels}: the autoencoder needs 28 divisible by "
                             "2^len(d_channels) (at most 2 stride-2 layers)")
        z_dim = int(config.z_dim)
        linear = config.lr_decay == "linear"
        g_opt = gan.dcgan_optimizer(config.learning_rate, config.beta1, config.num_steps if linear else None)
        d_opt = gan.dcgan_optimizer(config.d_learning_rate, config.beta1,
                                    config.k * config.num_steps if linear else None)
        self.gan = gan.GAN(
            gan.DCGANGenerator(tuple(config.g_channels), self.data_shape),
            ebgan.EBGANDiscriminator(tuple(config.d_channels), int(config.code_dim)),
            g_opt, d_opt, lambda k: jax.random.normal(k, (z_dim,)), k=config.k, ema_decay=config.g_ema_decay,
            objective=ebgan.EBGANObjective(config.margin, config.pt_weight))

    def evaluate(self, params, key: jax.Array) -> dict:
        out = super().evaluate(params, key)
        return {**out, "figures": [*out["figures"], "energies.png"], "margin": float(self.config.margin),
                "pt_weight": float(self.config.pt_weight)}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        super().write_artifacts(params, key, workdir)
        viz.save_metric_curves(Path(workdir) / "metrics.jsonl", Path(workdir) / "energies.png",
                               [("d_real_energy", "D(x), data"), ("d_fake_energy", "D(G(z)), fakes (D step)"),
                                ("pt", "pulling-away term")], "generator step",
                               "energy: MSE per pixel ([-1, 1] units); PT",
                               f"{self.name}: margin m = {self.config.margin}")
