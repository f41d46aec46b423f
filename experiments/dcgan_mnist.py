"""DCGAN on MNIST (Radford et al. 2016), scored by MNIST-FID and MNIST-IS.

    python -m experiments.dcgan_mnist --workdir runs/dcgan_mnist [--config.num_steps=2000]
    python -m experiments.dcgan_mnist --workdir runs/dcgan_plain --config.clusters=0 [--config.pack=4]

By default the DCGAN is self-conditioned (below): both players see the k-means
cluster (one of 20) of the training image, or of the image to be generated.
With the same players this takes MNIST-FID / MNIST-IS from 6.02 / 7.74 (the
plain DCGAN with a PacGAN discriminator, 40,000 steps) to 2.40 / 8.88 in 10,000
steps (see the README). No digit label is used. `--config.clusters=0` is the
plain, unconditional DCGAN.

The players follow the DCGAN rules (`gm_jax.models.gan.DCGANGenerator` /
`DCGANDiscriminator`): strided convolutions in D, transposed convolutions in
G, batch norm in both (not on G's output nor D's input), ReLU in G with a tanh
output, LeakyReLU(0.2) in D, N(0, 0.02) init, Adam(2e-4, beta1 = 0.5) (constant;
`--config.lr_decay=linear` decays it to 0, an addition to the paper), the
non-saturating generator loss. Images are scaled to [-1, 1]; samples are
uint8 NHWC 0..255. Under `parallel=pmap` batch statistics are cross-device
means; sampling uses the running averages (eval mode).

`--config.pack=m` makes D a PacGAN discriminator (Lin et al. 2018): it judges
packs of m examples stacked along the channels, one logit per pack, which
penalises a generator that makes the digits in the wrong proportions (the
largest part of an unconditional DCGAN's MNIST-FID here; see the README).

`--config.clusters=K` makes it a self-conditioned GAN (Liu et al. 2020, "Diverse
Image Generation via Self-Conditioned GANs", Sec. 3): the training images are
partitioned by k-means into K clusters (scikit-learn's `KMeans` on the pixels,
seeded by `config.seed`, once at the start; Liu et al. re-cluster D's features
during training instead), both players are conditioned on the cluster id as the
cGAN is on the digit (`experiments.cgan_mnist`), and the sampler draws the id from
the clusters' training frequencies (`label_log_prior` in the state and the sampler's
variables). No digit label is used. The discriminator is then conditional, so
`pack` must be 1. Within a cluster the images are far more alike than across the
whole set (20 clusters: 71% of the images share their cluster's majority digit),
so each conditional distribution is nearer unimodal and the generator no longer
has to cover the gaps between digits with one continuous map from z; sampling
the cluster from its frequency also keeps the digits in the data's proportions.
The k-means takes about 10 s and runs where the state is first made
(`init_state`: training and `gm_jax.create`; `gm_jax.load` restores the prior).

At the end it writes to the workdir:

* `results.json`: `mnist_fid` (MNIST-FID of `num_eval_samples` samples vs the
  60,000 training images), `mnist_is` (MNIST-IS), and the real-data references
  `real_test_vs_train_mnist_fid`, `real_test_mnist_is` and their ratios
  `fid_ratio_to_real`, `is_fraction_of_real`; `classifier_test_accuracy`;
  `class_shares` (the fraction of samples the classifier puts in each digit),
  `class_kl_nats` (KL of those shares from the test set's, nats),
  `class_matched_real_mnist_fid` (MNIST-FID of real test images redrawn in the
  samples' class shares: the part of `mnist_fid` the class mix alone explains) and
  `confident_fraction` (samples whose top-class probability is above 0.9);
  self-conditioned runs add `cluster_digit_purity` (the fraction of training images
  whose digit is their cluster's most common digit; labels are used for this report only);
  `nn_mean_l2` (mean pixel L2 distance, 0..255 scale, of 1,000 samples to their
  nearest training image; `real_test_nn_mean_l2` the same for 1,000 test images) -- these are MNIST-feature variants from the
  project's classifier (`gm_jax.evaluation.classifier`), not Inception numbers;
* `samples.png` (8x8 samples), `nearest_neighbours.png` (each sample beside its
  closest training image), `losses.png` (losses against the step).

The classifier is loaded from `config.classifier_dir` (default
`runs/mnist_classifier` under the project root); if it is missing it is
trained once and cached there (about 3 minutes on a 2-core CPU).
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gm_jax import config as config_lib
from gm_jax import viz
from gm_jax.data import load_split, train_batches
from gm_jax.evaluation import classifier as classifier_lib
from gm_jax.evaluation import sample_quality
from gm_jax.models import gan

LR_DECAYS = ("none", "linear")


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def get_config() -> ml_collections.ConfigDict:
    """Default: a self-conditioned DCGAN (20 k-means clusters), G 64-32 / D 32-64-128 channels, z_dim 100,
    batch 64, 10,000 steps, sized for well under 30 min on a 2-core CPU. `--config.clusters=0` gives the
    unconditional DCGAN (then `--config.pack=4` for the PacGAN discriminator)."""
    c = config_lib.base_config()
    c.z_dim = 100
    c.g_channels = (64, 32)  # 7x7x64 -> 14x14x32 -> 28x28x1
    c.d_channels = (32, 64, 128)  # 28x28x1 -> 14x14x32 -> 7x7x64 -> 4x4x128
    c.k = 1  # discriminator updates per generator update
    c.pack = 1  # m > 1: PacGAN (Lin et al. 2018), D judges packs of m examples (an addition; unconditional D only)
    c.generator_loss = "non_saturating"  # non_saturating | saturating
    c.learning_rate = 2e-4  # both players
    c.beta1 = 0.5
    c.lr_decay = "none"  # none (DCGAN's constant rate) | linear (to 0 at num_steps)
    c.g_ema_decay = 0.0  # > 0: sample from a moving average of G (Yazici et al. 2019), an addition to the paper
    c.clusters = 20  # K > 1: condition both players on k-means clusters of the images (Liu et al. 2020), an addition
    c.num_steps = 10_000  # 10.7 epochs of the 60,000 training images at batch 64
    c.batch_size = 64
    c.log_every = 100
    c.checkpoint_every = 2500
    c.keep_checkpoints = 4  # MNIST-FID can be checked along training
    c.eval_batch_size = 500
    c.num_eval_samples = 10_000  # samples scored by MNIST-FID / MNIST-IS
    c.classifier_dir = ""  # "" = $GM_JAX_CLASSIFIER_DIR or <project>/runs/mnist_classifier
    return c


class Experiment(gan.GANExperiment):
    name = "dcgan_mnist"
    data_shape = (28, 28, 1)
    data_max = 255
    num_classes = 0

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.z_dim < 1 or not config.g_channels or not config.d_channels:
            raise ValueError("config.z_dim must be >= 1 and g_channels, d_channels non-empty")
        if 28 % (2 ** len(config.g_channels)):
            raise ValueError(f"config.g_channels={config.g_channels}: 28 must be divisible by 2^len(g_channels)")
        if config.num_eval_samples < 2:
            raise ValueError(f"config.num_eval_samples must be >= 2, got {config.num_eval_samples}")
        if config.clusters < 0 or config.clusters == 1 or (self.num_classes and config.clusters):
            raise ValueError(f"config.clusters={config.clusters} must be 0 (off) or >= 2, and 0 for a "
                             "conditional GAN")
        self.condition_classes = self.num_classes or int(config.clusters)  # G and D see one-hot labels of this size
        if config.pack < 1 or (self.condition_classes and config.pack != 1) or config.batch_size % config.pack:
            raise ValueError(f"config.pack={config.pack} must be >= 1, divide batch_size={config.batch_size}, and be 1 "
                             "for a conditional or self-conditioned (clusters > 0) GAN")
        z_dim = int(config.z_dim)
        if config.lr_decay not in LR_DECAYS:
            raise ValueError(f"config.lr_decay={config.lr_decay!r}; valid choices: {list(LR_DECAYS)}")
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
        self._clusters = None

    # -- data -------------------------------------------------------------------------
    def _split(self, split: str) -> dict:
        return load_split("mnist", split, self.config.data_dir or None)

    def clusters(self) -> tuple[np.ndarray, np.ndarray]:
        """The self-conditioning clusters (`config.clusters` = K > 1), computed once.

        k-means (scikit-learn `KMeans`, k-means++ init, one run, `random_state = config.seed`)
        of the training images as pixel vectors in [0, 1].

        Returns:
          (cluster int32 [60000], the cluster of each training image, in `_split("train")`'s
          order; log_prior float32 [K], the log of each cluster's share of the training images).
        """
        if self._clusters is None:
            from sklearn.cluster import KMeans

            images = self._split("train")["image"]
            pixels = images.reshape(len(images), -1).astype(np.float32) / 255.0
            k = int(self.config.clusters)
            cluster = KMeans(k, n_init=1, random_state=int(self.config.seed)).fit(pixels).labels_.astype(np.int32)
            log_prior = np.log(np.bincount(cluster, minlength=k) / len(cluster)).astype(np.float32)
            self._clusters = (cluster, log_prior)
        return self._clusters

    def train_batches(self, start_step: int = 0):
        data = self._split("train")
        arrays = {"image": data["image"], "label": data["label"]}
        if self.config.clusters:
            arrays["cluster"] = self.clusters()[0]
        return train_batches(arrays, self.config.batch_size, self.config.seed, start_step)

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
        if not _is_concrete(key):  # jax.eval_shape (gm_jax.load's restore target): shapes only
            return state.replace(label_log_prior=jnp.zeros((int(self.config.clusters),), jnp.float32))
        return state.replace(label_log_prior=jnp.asarray(self.clusters()[1]))

    # -- sampling ---------------------------------------------------------------------
    def sample(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """x = G(z), z ~ N(0, I): uint8 [num_samples, 28, 28, 1], values 0..255 (eval-mode batch norm).

        Self-conditioned (`config.clusters` = K): x = G(z, c) with c ~ Cat(exp(params["label_log_prior"]))
        drawn from `fold_in(key, 1)`.
        """
        c = None
        if self.config.clusters:
            c = jax.random.categorical(jax.random.fold_in(key, 1), params["label_log_prior"], shape=(num_samples,))
        return gan.to_uint8(self.gan.generate(params["params"], params["batch_stats"], key, num_samples, c))

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

    # -- evaluation -------------------------------------------------------------------
    def classifier(self) -> classifier_lib.Classifier:
        """The cached MNIST classifier (trained once and cached if missing)."""
        if self._classifier is None:
            self._classifier = classifier_lib.get_classifier(self.config.classifier_dir or None,
                                                             self.config.data_dir or None)
        return self._classifier

    def _reference_stats(self):
        directory = Path(self.config.classifier_dir) if self.config.classifier_dir else \
            classifier_lib.default_classifier_dir()
        return sample_quality.load_reference_stats(directory / classifier_lib.REFERENCE_FILE)

    def eval_labels(self, n: int) -> np.ndarray | None:
        return None

    def evaluate(self, params, key: jax.Array) -> dict:
        clf = self.classifier()
        n = int(self.config.num_eval_samples)
        labels = self.eval_labels(n)
        x = self._samples(params, key, n, labels)
        logits, feats = clf.outputs(x)
        probs = classifier_lib.softmax64(logits)
        reference = self._reference_stats()
        fid = sample_quality.frechet_distance(*sample_quality.feature_stats(feats), *reference)
        score = sample_quality.inception_score(probs)
        real_fid, real_is = clf.info["real_test_vs_train_mnist_fid"], clf.info["real_test_mnist_is"]
        out = {
            "mnist_fid": fid, "mnist_is": score, "num_eval_samples": n,
            "real_test_vs_train_mnist_fid": real_fid, "real_test_mnist_is": real_is,
            "fid_ratio_to_real": fid / real_fid, "is_fraction_of_real": score / real_is,
            "classifier_test_accuracy": clf.info["test_accuracy"],
            "figures": ["samples.png", "nearest_neighbours.png", "losses.png"],
            "metric_note": "MNIST-FID / MNIST-IS use the project's MNIST classifier, not Inception-v3",
        }
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

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        workdir = Path(workdir)
        labels = self.eval_labels(64)
        x = self._samples(params, key, 64, labels)
        viz.save_image_grid(workdir / "samples.png", x, cols=8, max_value=255.0)
        train = self._split("train")["image"]
        sample_quality.save_nearest_neighbour_figure(workdir / "nearest_neighbours.png", x[:32], train)
        gan.save_loss_curves(workdir / "metrics.jsonl", workdir / "losses.png", title=self.name)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("dcgan_mnist")
