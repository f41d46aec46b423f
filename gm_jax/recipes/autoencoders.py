"""Autoencoders whose codes are matched to a prior: the adversarial autoencoder (aae_mnist).

`AAEExperiment` trains `gm_jax.models.aae.AAE` (Makhzani et al. 2016) on MNIST binarized dynamically
(8-bit `mnist`, a fresh Bernoulli(x / 255) draw per pixel each time an image is seen; the labels are
kept: they colour the latent plot and condition the "mixture_labels" prior). The data path is the
image recipe's (`ImageLikelihoodExperiment.load`, `binarize_batch`, `train_batches`); the update,
evaluation and figures are the AAE's own:

* `update`: the two phases of `AAE.update` (reconstruction, then discriminator and encoder) on one
  batch; the train state is an `AAEState` (three optimizer states); the sampler's variables
  (`params_of`) are the encoder's and the decoder's.
* `evaluate` (all on the test set, binarized once with the evaluation key): the test codes are E(x)
  (posterior "deterministic") or one draw z ~ q(z | x) per image (posterior "gaussian": together, a
  sample of the aggregated posterior q(z)); `test_recon_nll_nats` (-log p(x | z) of those codes, nats
  per image: a reconstruction cost, NOT a likelihood of x); `mmd2_mean` /
  `mmd2_std`, the match of the codes to the prior (`gm_jax.evaluation.two_sample.mmd2_to_prior`:
  unbiased MMD^2, Gaussian RBF kernel with the prior's median-heuristic bandwidth, disjoint batches of
  `mmd_batch_size` codes, each against its own prior sample); with "mixture_labels" also the MMD^2 of
  each digit's codes to its component (`mmd2_given_label_mean`); MNIST-FID and MNIST-IS of
  `num_eval_samples` samples with the project's classifier (as `DCGANExperiment.evaluate`): the binary
  samples scaled to 0/255 (`mnist_fid`, `mnist_is`) and their Bernoulli means (`mnist_fid_means`,
  `mnist_is_means`), beside the same scores of the binarized test images (the floor binary images
  can reach against the 8-bit training reference); with "mixture_labels" the samples' labels cycle
  through 0..9 and `label_accuracy` (`label_accuracy_means`) is the share the classifier assigns to
  their label.
* `write_artifacts`: `samples.png` (Bernoulli means of p(x | z), z ~ p(z); with "mixture_labels" column
  j is digit j), `latent.png` (the test codes coloured by digit beside prior samples),
  `reconstructions.png` (test images alternating with the Bernoulli means of their reconstructions)
  and `losses.png` (the regularisation phase's d_loss and g_loss).

`log_prob` raises `NotImplementedError`: the AAE defines no tractable density of x.
"""
from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gm_jax import distributions as dist
from gm_jax.config import Choice, Range
from gm_jax.data import eval_batches, train_batches
from gm_jax.evaluation import classifier as classifier_lib
from gm_jax.evaluation import sample_quality, two_sample
from gm_jax.experiment import Experiment
from gm_jax.models import aae, gan
from gm_jax.recipes.images import ImageLikelihoodExperiment
from gm_jax.viz import curves
from gm_jax.viz import images as viz_images
from gm_jax.viz import latent as viz_latent


def aae_config(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Add the AAE fields to a base config `c` (in place; returned)."""
    c.prior = "gaussian"  # gaussian | mixture | mixture_labels
    c.posterior = "deterministic"  # q(z | x): deterministic (z = E(x)) | gaussian (reparameterized N(mu, sigma^2))
    c.latent_dim = 2
    c.hidden = (500, 500)  # encoder widths (the decoder's, reversed)
    c.disc_hidden = (500, 500)  # discriminator widths
    c.learning_rate = 1e-3  # Adam, reconstruction phase
    # Adam of the discriminator and the encoder-as-generator. The DCGAN setting (2e-4, beta1 0.5) under a
    # reconstruction phase at 1e-3 let reconstruction win (D rejected ever more codes, which spread far beyond
    # the prior); 1e-3 and 0.9 for every phase kept them matched (README, results).
    c.adv_learning_rate = 1e-3
    c.beta1 = 0.9  # Adam beta1 of the regularisation phase
    # constant | cosine: every phase's learning rate decays to 0 over num_steps (optax.cosine_decay_schedule), so
    # that the two-player game in code space settles instead of oscillating at the end of training.
    c.lr_schedule = "cosine"
    c.generator_loss = "non_saturating"  # non_saturating | saturating
    c.mixture_radius = 4.0  # the 10 components' distance from the origin
    c.mixture_std_radial = 1.0  # std along each component's ray
    c.mixture_std_tangential = 0.25  # std across it
    c.labelled_fraction = 1.0  # mixture_labels: share of training images whose label is used (the rest: -1)
    c.num_eval_samples = 10_000  # samples scored by MNIST-FID / MNIST-IS
    c.mmd_batch_size = 1000  # codes (and prior samples) per MMD comparison
    c.mmd_num_batches = 10  # comparisons: mmd2_mean +- mmd2_std
    c.classifier_dir = ""  # "" = $GM_JAX_CLASSIFIER_DIR or <project>/runs/mnist_classifier
    return c


class AAEExperiment(ImageLikelihoodExperiment):
    """An adversarial autoencoder on dynamically binarized MNIST; see the module docstring."""

    data_kind = "binary"
    dataset = "mnist"  # labels: the latent plot, the mixture_labels prior
    keep_labels = True
    resumable_keys = Experiment.resumable_keys + ("mmd_batch_size", "mmd_num_batches")
    schema = {"prior": Choice(*aae.PRIORS), "posterior": Choice(*aae.POSTERIORS), "latent_dim": Range(1, integer=True),
              "hidden": Range(1, integer=True, each=True), "disc_hidden": Range(1, integer=True, each=True),
              "adv_learning_rate": Range(0.0, lo_open=True), "beta1": Range(0.0, 1.0, hi_open=True),
              "generator_loss": Choice(*gan.GENERATOR_LOSSES), "lr_schedule": Choice("constant", "cosine"),
              "mixture_radius": Range(0.0, lo_open=True),
              "mixture_std_radial": Range(0.0, lo_open=True), "mixture_std_tangential": Range(0.0, lo_open=True),
              "labelled_fraction": Range(0.0, 1.0), "num_eval_samples": Range(2, integer=True),
              "mmd_batch_size": Range(2, integer=True), "mmd_num_batches": Range(1, integer=True)}

    def __init__(self, config: ml_collections.ConfigDict):
        """Raises ValueError: a config outside the schema, or a mixture prior with latent_dim < 2."""
        super().__init__(config)
        self.prior = aae.Prior(config.prior, config.latent_dim, config.mixture_radius, config.mixture_std_radial,
                               config.mixture_std_tangential)
        lr, adv_lr = config.learning_rate, config.adv_learning_rate
        if config.lr_schedule == "cosine":
            lr, adv_lr = (optax.cosine_decay_schedule(v, max(config.num_steps, 1)) for v in (lr, adv_lr))
        self.aae = aae.build(config.hidden, config.disc_hidden, self.prior, self.data_shape, lr, adv_lr,
                             config.beta1, config.generator_loss, config.posterior)
        self._classifier = None

    @property
    def conditioning(self) -> tuple:
        return ("labels",) if self.aae.uses_labels else ()

    # -- data and the update ----------------------------------------------------------------
    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        """Batches of `image` uint8 8-bit and `label` int32 (-1 for the images left unlabelled by
        `labelled_fraction`: a fixed random subset, seeded by `config.seed`)."""
        data = self.load("train")
        frac = self.config.labelled_fraction
        if self.aae.uses_labels and frac < 1.0:
            n = len(data["label"])
            unlabelled = np.random.default_rng(self.config.seed).permutation(n)[int(round(frac * n)):]
            data["label"] = np.array(data["label"], np.int32)
            data["label"][unlabelled] = -1
        return train_batches(data, self.config.batch_size, self.config.seed, start_step, rows)

    def init_state(self, key: jax.Array) -> aae.AAEState:
        return self.aae.init(key)

    def init_params(self, key: jax.Array) -> dict:
        """The sampler's variables at initialisation: `params_of(init_state(key))`."""
        return self.params_of(self.init_state(key))

    def params_of(self, state: aae.AAEState) -> dict:
        """{"encoder", "decoder"}: what sampling, encoding and evaluation need (not the discriminator)."""
        return {"encoder": state.params["encoder"], "decoder": state.params["decoder"]}

    def update(self, state: aae.AAEState, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """`AAE.update` on the batch, binarized per example with `fold_in(keys, 0)`; `AAE.update`'s keys (the
        prior draws, the Gaussian posterior's noise) are `fold_in(keys, 1)`."""
        bin_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys)
        prior_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
        x = self.binarize_batch(batch["image"], bin_keys, jnp.float32)
        labels = jnp.asarray(batch["label"], jnp.int32) if self.aae.uses_labels else None
        return self.aae.update(state, x, labels, prior_keys, axis_name)

    # -- sampling -----------------------------------------------------------------------------
    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """`labels` (mixture_labels only): None (z from the whole mixture) or int [num_samples] digits 0..9.

        Raises:
          ValueError: an unknown keyword (any, for the other priors), or labels of the wrong shape,
            dtype or range.
        """
        conditioning = super().check_conditioning(num_samples, **conditioning)
        labels = conditioning.get("labels")
        if labels is None:
            return {}
        try:
            aae.check_components(np.asarray(labels), num_samples, self.prior)
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None
        return {"labels": np.asarray(labels, np.int32)}

    def sample(self, params, key: jax.Array, num_samples: int, labels=None) -> jax.Array:
        """x ~ p(x | z), z ~ p(z) (with `labels`, mixture_labels: z ~ the labels' components): uint8
        [num_samples, 28, 28, 1] in {0, 1}.

        Raises:
          ValueError: labels with another prior, or of the wrong shape, dtype or (concrete) range.
        """
        if labels is not None and not self.aae.uses_labels:
            raise ValueError(f"{self.name} with prior {self.prior.kind!r} takes no labels (prior='mixture_labels' does)")
        return self.aae.sample(params["decoder"], key, num_samples, labels)

    def log_prob(self, params, x, key):
        raise NotImplementedError(
            f"{self.name} is an adversarial autoencoder: its codes are matched to the prior adversarially and no "
            "bound on log p(x) is optimised, so p(x) = int p(x|z) p(z) dz has no tractable form and no bound is optimised; log_prob "
            "is not available (see evaluate: test_recon_nll_nats, the MMD of the codes to the prior, MNIST-FID/IS)")

    # -- evaluation -----------------------------------------------------------------------------
    @functools.cached_property
    def _jit_codes_nll(self):
        def fn(params, x, keys):
            z = self.aae.encode(params["encoder"], x, self.aae.posterior_noise(keys))
            x = jnp.asarray(x, jnp.float32)
            nll = -dist.bernoulli_log_prob(self.aae.decode(params["decoder"], z), x)
            return z, nll
        return jax.jit(fn)

    @functools.cached_property
    def _jit_prior(self):
        return jax.jit(self.prior.sample_n, static_argnums=1)

    @functools.cached_property
    def _jit_probs(self):
        return jax.jit(self.aae.sample_probs, static_argnums=2)

    @functools.cached_property
    def _jit_samples_and_probs(self):
        def fn(decoder_params, key, n, labels):  # the draws of AAE.sample, with their Bernoulli means
            z_key, x_key = jax.random.split(key)
            probs = self.aae.sample_probs(decoder_params, z_key, n, labels)
            return jax.random.bernoulli(x_key, probs).astype(jnp.uint8), probs
        return jax.jit(fn, static_argnums=2)

    @functools.cached_property
    def _jit_reconstruct(self):
        return jax.jit(lambda params, x: jax.nn.sigmoid(self.aae.decode(params["decoder"],
                                                                        self.aae.encode(params["encoder"], x))))

    def codes(self, params, images: np.ndarray, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
        """(codes float32 [N, latent_dim], reconstruction NLL float64 [N] nats) of binary images [N, 28, 28, 1].

        The codes are E(x) (deterministic posterior) or one draw z ~ q(z | x) per image, image i's from
        `fold_in(key, i)` (Gaussian posterior; whatever the batch size), and the NLL is -log p(x | z) of them.
        """
        zs, nlls = [], []
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(len(images)))
        for batch in eval_batches({"image": images, "key": keys}, self.config.eval_batch_size):
            z, nll = self._jit_codes_nll(params, batch["image"], batch["key"])
            zs.append(np.asarray(z))
            nlls.append(np.asarray(nll, np.float64))
        return np.concatenate(zs), np.concatenate(nlls)

    def prior_mmd(self, codes: np.ndarray, key: jax.Array, labels: np.ndarray | None = None, batch_size=None,
                  num_batches=None, component=None) -> dict:
        """`two_sample.mmd2_to_prior` of `codes` against p(z) (or one mixture component), draw b from fold_in(key, b)."""
        comp = None if component is None else int(component)

        def draw(b, n):
            c = None if comp is None else np.full(n, comp, np.int32)
            return np.asarray(self._jit_prior(jax.random.fold_in(key, b + 1), n, c))

        return two_sample.mmd2_to_prior(codes, draw, batch_size or self.config.mmd_batch_size,
                                        num_batches or self.config.mmd_num_batches, seed=self.config.seed)

    def classifier(self):
        """(the MNIST classifier, the training set's reference feature stats), loaded once."""
        if self._classifier is None:
            self._classifier = classifier_lib.classifier_and_reference(self.config.classifier_dir or None,
                                                                       self.config.data_dir or None)
        return self._classifier

    def eval_labels(self, n: int) -> np.ndarray | None:
        """The labels of the scored samples: digits cycling 0..9 with mixture_labels, None otherwise."""
        return (np.arange(n) % 10).astype(np.int32) if self.aae.uses_labels else None

    def _samples(self, params, key: jax.Array, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(binary samples uint8 [n, 28, 28, 1], their Bernoulli means float32), in chunks of eval_batch_size."""
        bs, labels = self.config.eval_batch_size, self.eval_labels(n)
        xs, ps = [], []
        for i in range(0, n, bs):
            y = None if labels is None else np.resize(labels[i:i + bs], bs)
            x, p = self._jit_samples_and_probs(params["decoder"], jax.random.fold_in(key, i // bs), bs, y)
            xs.append(np.asarray(x))
            ps.append(np.asarray(p))
        return np.concatenate(xs)[:n], np.concatenate(ps)[:n]

    def _scores(self, images_uint8: np.ndarray) -> tuple[float, float, np.ndarray]:
        clf, reference = self.classifier()
        fid, score, logits = sample_quality.mnist_fid_and_is(clf, images_uint8, reference)
        return fid, score, np.argmax(logits, 1)

    def evaluate(self, params, key: jax.Array) -> dict:
        bin_key, mmd_key, sample_key = jax.random.split(key, 3)
        test = self.load("test", binarize_key=bin_key)
        codes, nll = self.codes(params, test["image"], jax.random.fold_in(bin_key, 1))
        out = {"test_recon_nll_nats": float(nll.mean()),
               "recon_note": "-log p(x | z) of the binarized test images at their codes (E(x), or one draw of the "
                             "Gaussian q(z | x)), nats per image: a reconstruction cost, not a likelihood or bound "
                             "of p(x)",
               "prior": self.prior.kind, "posterior": self.aae.posterior, "latent_dim": int(self.prior.latent_dim),
               "test_code_mean": [round(float(v), 4) for v in codes.mean(0)],
               "test_code_std": [round(float(v), 4) for v in codes.std(0)]}
        mmd = self.prior_mmd(codes, mmd_key)
        out.update(mmd)
        if self.aae.uses_labels:  # each digit's codes against its own component
            per = [self.prior_mmd(codes[test["label"] == d], jax.random.fold_in(mmd_key, 100 + d), num_batches=1,
                                  component=d)["mmd2_mean"] for d in range(10) if np.sum(test["label"] == d) >= 2]
            out["mmd2_given_label_mean"], out["mmd2_given_label_values"] = float(np.mean(per)), per
        n = int(self.config.num_eval_samples)
        x, probs = self._samples(params, sample_key, n)
        out["mnist_fid"], out["mnist_is"], predicted = self._scores(x * np.uint8(255))
        out["mnist_fid_means"], out["mnist_is_means"], predicted_means = self._scores(
            np.round(probs * 255).astype(np.uint8))
        ref = test["image"][:n] * np.uint8(255)
        out["real_binarized_test_mnist_fid"], out["real_binarized_test_mnist_is"], _ = self._scores(ref)
        clf = self.classifier()[0]
        out.update({"num_eval_samples": n, "real_test_vs_train_mnist_fid": clf.info["real_test_vs_train_mnist_fid"],
                    "real_test_mnist_is": clf.info["real_test_mnist_is"],
                    "classifier_test_accuracy": clf.info["test_accuracy"],
                    "metric_note": "MNIST-FID / MNIST-IS use the project's MNIST classifier, not Inception-v3; "
                                   "binary samples are scored as 0/255 images against the 8-bit training "
                                   "reference (real_binarized_test_* is the same for binarized test images)"})
        if "smoke_test" in clf.info:
            out["classifier_smoke_test"] = clf.info["smoke_test"]
        labels = self.eval_labels(n)
        if labels is not None:
            out["label_accuracy"] = float(np.mean(predicted == labels))  # of the binary samples
            out["label_accuracy_means"] = float(np.mean(predicted_means == labels))
        out["figures"] = ["samples.png", "latent.png", "reconstructions.png", "losses.png"]
        return out

    def validate(self, params, key: jax.Array) -> dict:
        """`val_recon_nll_nats` and `val_mmd2` (one comparison) on the first `num_validation_examples` test
        images, binarized and scored as in `evaluate`."""
        bin_key, mmd_key, _ = jax.random.split(key, 3)
        test = self.load("test", self.config.num_validation_examples, bin_key)
        codes, nll = self.codes(params, test["image"], jax.random.fold_in(bin_key, 1))
        mmd = self.prior_mmd(codes, mmd_key, batch_size=len(codes), num_batches=1)
        return {"val_recon_nll_nats": float(nll.mean()), "val_mmd2": mmd["mmd2_mean"]}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        workdir = Path(workdir)
        bin_key, mmd_key, sample_key = jax.random.split(key, 3)
        cols = 10 if self.aae.uses_labels else 8
        n = 100 if self.aae.uses_labels else self.num_grid_samples
        labels = self.eval_labels(n)
        probs = self._jit_probs(params["decoder"], sample_key, n, labels)
        viz_images.save_samples(workdir / "samples.png", np.asarray(probs), cols=cols)
        test = self.load("test", binarize_key=bin_key)
        codes, _ = self.codes(params, test["image"], jax.random.fold_in(bin_key, 1))
        comps = (np.arange(len(codes)) % 10).astype(np.int32) if self.prior.is_mixture else None
        prior = np.asarray(self._jit_prior(jax.random.fold_in(mmd_key, 0), len(codes), comps))
        viz_latent.save_latent_scatter(
            workdir / "latent.png", codes, test["label"], prior, comps,
            title=f"{self.name}: q(z), {len(codes)} test codes by digit", prior_title=f"p(z): {self.prior.kind}")
        x = test["image"][:32]
        viz_images.save_reconstructions(workdir / "reconstructions.png", x, np.asarray(self._jit_reconstruct(params, x)))
        curves.save_gan_losses(workdir / "metrics.jsonl", workdir / "losses.png", title=f"{self.name} ({self.prior.kind})")
