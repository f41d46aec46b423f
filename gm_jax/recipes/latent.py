"""Latent-variable models of MNIST images: the family bases of vae_mnist, pixelvae_mnist and vqvae_mnist.

* `GaussianLatentExperiment`: a Gaussian posterior q(z | x) and an N(0, I)
  prior (the VAE, the PixelVAE). Training minimises the negative ELBO per image
  (optionally with a linear KL warm-up, `kl_warmup_steps`); evaluation reports
  the IWAE estimate of the test NLL (`iwae_k` samples, Burda et al. 2016) as
  `test_nll_nats`, with the one-sample ELBO terms `test_neg_elbo_nats`,
  `test_recon_nats`, `test_kl_nats`, and the ELBO on 10,000 training images;
  figures: `samples.png` and `reconstructions.png`. A subclass gives the
  model's pure functions (`neg_elbo_terms`, `iwae_log_prob`, `sample`,
  `reconstruct`). A subclass whose decoder factorises over pixels (the VAE:
  `factorised_decoder = True`) also gives `encode_mean`, `decode_means`,
  `impute` and `complete`, and gets what such a model is for: training with
  pixels missing at random (`config.missing_fraction`), the imputation error of
  missing test pixels, and the figures `interpolations.png`, `completions.png`
  and (2-D latents) `manifold.png`.
* `VQVAEExperiment`, below.

`VQVAEExperiment` trains both stages in one run of the one training loop:
steps 1 .. `vqvae_steps` train the VQ-VAE (encoder, codebook, decoder: Eq. 3
of van den Oord et al. 2017, `gm_jax.models.vqvae`), steps `vqvae_steps + 1`
.. `num_steps` train the Gated PixelCNN prior on the codes of the frozen
encoder (Sec. 3.2). The train state (`VQVAEState`) holds both parameter sets
with one optimizer state each, so the stage that is not training is not moved
at all (one Adam over both would keep moving the encoder by its momentum
during stage 2), and the codebook statistics. Each stage has its own update
(`update_stages`), which the loop compiles as its own train step, so a run
checkpoints, resumes and runs under every `parallel` mode like any other. Data, evaluation and figures are the image
recipe's (`ImageLikelihoodExperiment`): binary MNIST, the test bound in nats
and bits/dim, `samples.png`, plus `reconstructions.png` and the codebook
usage.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gm_jax.config import Choice, Range
from gm_jax.data import train_batches
from gm_jax.evaluation import likelihood
from gm_jax.models import pixelcnn, vae, vqvae
from gm_jax.nn import pmean
from gm_jax.recipes.images import DATASETS, ClassConditional, ImageLikelihoodExperiment
from gm_jax.training.steps import loss_update
from gm_jax.viz import images as viz_images
from gm_jax.viz import latent as viz_latent


# -- Gaussian posterior, N(0, I) prior: the VAE and the PixelVAE --------------------------------------------

def gaussian_latent_config(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Add the fields of `GaussianLatentExperiment` to a base config `c` (in place; returned)."""
    c.dataset = "binarized_mnist"  # binarized_mnist (fixed) | mnist (dynamic binarization)
    c.latent_dim = 50
    c.kl_warmup_steps = 0  # > 0: the KL weight rises linearly from 0 to 1 over this many steps
    c.iwae_k = 500  # importance samples for test_nll_nats
    return c


class GaussianLatentExperiment(ImageLikelihoodExperiment):
    """A latent-variable model of binary MNIST with q(z | x) = N(mean, diag exp(log_var)) and p(z) = N(0, I).

    Subclasses build `self.model` and give its pure functions: `neg_elbo_terms(params, x, eps)` (dict of
    float32 [B] "neg_elbo", "recon", "kl", nats), `iwae_log_prob(params, x, key, k)` (float32 [B], nats),
    `sample` and `reconstruct(params, x, key)` (the images of reconstructions.png, in [0, 1]).
    """

    data_kind = "binary"
    log_prob_needs_key = True
    train_eval_size = 10_000
    likelihood_note = {"discretization": likelihood.BINARY_PIXELS,
                       "nll_estimate": "test_nll_nats: the IWAE bound with iwae_k samples (Burda et al. 2016, "
                                       "Eq. 8), a stochastic lower bound on log p(x) tightening as iwae_k grows"}
    schema = {"dataset": Choice(*DATASETS), "latent_dim": Range(1, integer=True),
              "kl_warmup_steps": Range(0, integer=True), "iwae_k": Range(1, integer=True)}

    def neg_elbo_terms(self, params, x: jax.Array, eps: jax.Array) -> dict:
        raise NotImplementedError

    def iwae_log_prob(self, params, x: jax.Array, key: jax.Array, num_samples: int) -> jax.Array:
        raise NotImplementedError

    def reconstruct(self, params, x: jax.Array, key: jax.Array) -> jax.Array:
        raise NotImplementedError

    # -- the uses of a factorised decoder (`factorised_decoder = True`; the PixelVAE's decoder is autoregressive)
    factorised_decoder = False
    completion_steps = 100  # pseudo-Gibbs steps of completions.png
    manifold_size = 20  # manifold.png: a manifold_size x manifold_size grid of z

    def encode_mean(self, params, x: jax.Array) -> jax.Array:
        """The mean of q(z | x): float32 [N, latent_dim] for images x [N, 28, 28, 1] in {0, 1}."""
        raise NotImplementedError

    def decode_means(self, params, z: jax.Array) -> jax.Array:
        """The Bernoulli means p(x = 1 | z): float32 [N, 28, 28, 1] for z float [N, latent_dim]."""
        raise NotImplementedError

    def impute(self, params, x: jax.Array, mask: jax.Array) -> jax.Array:
        """Bernoulli means of every pixel given the observed ones (mask 1 = observed): float32 [N, 28, 28, 1]."""
        raise NotImplementedError

    def complete(self, params, key: jax.Array, x: jax.Array, mask: jax.Array, num_steps: int) -> jax.Array:
        """x with its missing pixels (mask 0) sampled given the observed ones: uint8 [N, 28, 28, 1] in {0, 1}."""
        raise NotImplementedError

    @property
    def missing_fraction(self) -> float:
        """`config.missing_fraction` (0 where the config has none): the share of training pixels missing."""
        return float(self.config.get("missing_fraction", 0.0))

    def missing_mask(self, shape, fraction: float, stream: int) -> np.ndarray:
        """uint8 `shape` observed mask (1 = observed), each pixel missing completely at random with probability
        `fraction`, independently: a NumPy draw seeded by (config.seed, stream), so fixed for a run."""
        return (np.random.default_rng([int(self.config.seed), stream]).random(shape) >= fraction).astype(np.uint8)

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        """The recipe's batches; with `missing_fraction` > 0 each also carries `observed` (uint8, 1 = observed):
        one mask per training image drawn once (`missing_mask`, stream 1), so the missing pixels of an image
        are never seen, epoch after epoch: missing data, not dropout."""
        if not self.missing_fraction:
            return super().train_batches(start_step, rows)
        data = self.load("train")
        data["observed"] = self.missing_mask(data["image"].shape, self.missing_fraction, 1)
        return train_batches(data, self.config.batch_size, self.config.seed, start_step, rows)

    def imputation_report(self, params, images: np.ndarray, fraction: float) -> dict:
        """The imputation error of pixels missing at random from `images` (uint8 [N, 28, 28, 1] in {0, 1}),
        each missing with probability `fraction` (`missing_mask`, stream 2), by `impute` (decoder means at the
        posterior mean of the observed pixels): `test_imputation_nats_per_pixel` (Bernoulli NLL of the missing
        pixels, nats per missing pixel), `test_imputation_error_rate` (mean thresholded at 1/2 vs the pixel),
        and the same of a baseline that predicts each pixel by its frequency in the first 10,000 training images
        (`baseline_imputation_*`)."""
        from sklearn.metrics import log_loss

        observed = self.missing_mask(images.shape, fraction, 2)
        missing = observed == 0
        fn = jax.jit(self.impute)
        bs = self.config.eval_batch_size
        probs = np.concatenate([np.asarray(fn(params, jnp.asarray(images[i:i + bs], jnp.float32),
                                              jnp.asarray(observed[i:i + bs]))) for i in range(0, len(images), bs)])
        marginal = self.load("train", 10_000)["image"].astype(np.float64).mean(0)
        if self.dataset_name != "binarized_mnist":  # 8-bit images: p(pixel = 1) of dynamic binarization is x / 255
            marginal /= 255.0
        truth = images[missing]

        def nll_and_error(p):
            p = np.clip(p[missing], 1e-6, 1 - 1e-6)
            return float(log_loss(truth, p, labels=[0, 1])), float(np.mean((p > 0.5) != (truth > 0)))

        nll, err = nll_and_error(probs.astype(np.float64))
        base_nll, base_err = nll_and_error(np.broadcast_to(marginal, images.shape))
        return {"test_imputation_missing_fraction": float(fraction), "test_imputation_nats_per_pixel": nll,
                "test_imputation_error_rate": err, "baseline_imputation_nats_per_pixel": base_nll,
                "baseline_imputation_error_rate": base_err}

    def _eps(self, key, n):
        return jax.random.normal(key, (n, self.config.latent_dim))

    def _loss(self, params, batch: dict, keys: jax.Array, kl_weight=1.0):
        eps_keys, bin_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
        x = self.binarize_batch(batch["image"], bin_keys, jnp.float32)
        eps = jax.vmap(lambda k: jax.random.normal(k, (self.config.latent_dim,)))(eps_keys)
        if "observed" in batch:  # learning with missing data: the ELBO of the observed pixels
            terms = self.neg_elbo_terms(params, x, eps, observed=batch["observed"])
        else:
            terms = self.neg_elbo_terms(params, x, eps)
        metrics = {"recon": terms["recon"].mean(), "kl": terms["kl"].mean()}
        if self.config.get("kl_warmup_steps", 0):
            metrics["neg_elbo"] = terms["neg_elbo"].mean()
            return (terms["recon"] + kl_weight * terms["kl"]).mean(), metrics
        return terms["neg_elbo"].mean(), metrics

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        """Negative ELBO, nats per image, averaged over the batch (keys: one per example)."""
        return self._loss(params, batch, keys)

    def update(self, state, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """One optimizer step on -ELBO; with `kl_warmup_steps` on recon + beta_t KL, beta_t = min(step /
        kl_warmup_steps, 1) (the PixelVAE's warm-up; metrics then add `neg_elbo` and `kl_weight`)."""
        if not self.config.get("kl_warmup_steps", 0):
            return loss_update(self.loss_fn)(state, batch, keys, axis_name)
        beta = vae.kl_weight(state.step, "linear", self.config.kl_warmup_steps)
        state, metrics = loss_update(lambda p, b, k: self._loss(p, b, k, beta))(state, batch, keys, axis_name)
        return state, {**metrics, "kl_weight": beta}

    def log_prob(self, params, x: jax.Array, key: jax.Array) -> jax.Array:
        """IWAE estimate of log p(x) with `config.iwae_k` samples: float32 [N], nats."""
        return self.iwae_log_prob(params, x, key, self.config.iwae_k)

    # -- evaluation: the ELBO terms and the IWAE NLL on the test set, the ELBO on 10,000 training images
    def eval_keys(self, key):
        bin_key, elbo_key, iwae_key = jax.random.split(key, 3)
        return {"binarize": bin_key, "test": (elbo_key, iwae_key), "train": elbo_key}

    def eval_terms(self, params, batch, key):
        elbo_key, iwae_key = key
        x = batch["image"]
        return {"nll": -self.log_prob(params, x, iwae_key),
                **self.neg_elbo_terms(params, x, self._eps(elbo_key, x.shape[0]))}

    def train_eval_terms(self, params, batch, key):
        x = batch["image"]
        return {"neg_elbo": self.neg_elbo_terms(params, x, self._eps(key, x.shape[0]))["neg_elbo"]}

    def extra_metrics(self, params, keys):
        """`iwae_k`; with a factorised decoder also `imputation_report` at `missing_fraction` (0.5 when the
        model trained on complete images) on the evaluation's test images, and `missing_fraction`."""
        out = {"iwae_k": self.config.iwae_k}
        if self.factorised_decoder:
            test = self.load("test", binarize_key=keys["binarize"])["image"]
            out.update(self.imputation_report(params, test, self.missing_fraction or 0.5),
                       missing_fraction=self.missing_fraction,
                       figures=["samples.png", "reconstructions.png", "interpolations.png", "completions.png"]
                       + (["manifold.png"] if self.config.latent_dim == 2 else []))
        return out

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        super().write_artifacts(params, key, workdir)
        x = self.load("test", 32, key)["image"]
        recon = jax.jit(self.reconstruct)(params, jnp.asarray(x, jnp.float32), key)
        viz_images.save_reconstructions(Path(workdir) / "reconstructions.png", x, np.asarray(recon))
        if self.factorised_decoder:
            self.write_latent_figures(params, key, Path(workdir), x)

    def write_latent_figures(self, params, key: jax.Array, workdir: Path, x: np.ndarray) -> None:
        """`interpolations.png`: decoder means along linear and spherical paths (`vae.interpolate`) between the
        posterior means of pairs of test images (each row: image, 8 steps of the path, image);
        `completions.png`: test images (column 1), their top half (column 2) and 5 pseudo-Gibbs completions of
        the bottom half (`complete`, `completion_steps` steps); `manifold.png` (latent_dim = 2): the decoder
        means on a `manifold_size`^2 grid of z at the Gaussian quantiles Phi^-1(linspace(0.05, 0.95))
        (Kingma & Welling 2014, Fig. 4)."""
        from scipy.stats import norm

        pairs = jnp.asarray(x[:12], jnp.float32)
        codes = jax.jit(self.encode_mean)(params, pairs)
        decode = jax.jit(self.decode_means)
        panels = []
        for method in vae.INTERPOLATIONS:
            path = vae.interpolate(codes[0::2], codes[1::2], 8, method)  # [6, 8, L]
            means = np.asarray(decode(params, path.reshape(-1, path.shape[-1]))).reshape(6, 8, *x.shape[1:])
            panels.append((method, np.concatenate([x[0:12:2, None], means, x[1:12:2, None]], axis=1)))
        viz_latent.save_interpolations(workdir / "interpolations.png", panels,
                                       f"{self.name}: paths between the posterior means of test images")
        images = jnp.asarray(x[:8], jnp.float32)
        mask = np.ones(x.shape[1:], np.uint8)
        mask[x.shape[1] // 2:] = 0  # the bottom half is missing
        complete = jax.jit(lambda p, k: self.complete(p, k, images, mask, self.completion_steps))
        samples = [np.asarray(complete(params, jax.random.fold_in(key, i))) for i in range(5)]
        shown = np.where(mask, x[:8], 0.5)
        viz_images.save_samples(workdir / "completions.png",
                                np.stack([x[:8], shown, *samples], axis=1).reshape(-1, *x.shape[1:]), cols=7)
        if self.config.latent_dim == 2:
            n = self.manifold_size
            q = norm.ppf(np.linspace(0.05, 0.95, n))
            z = np.stack(np.meshgrid(q, q[::-1]), -1).reshape(-1, 2)  # row r: z[1] = q[n - 1 - r]
            viz_latent.save_manifold(workdir / "manifold.png", np.asarray(decode(params, jnp.asarray(z, jnp.float32))),
                                     q, f"{self.name}: decoder means on Gaussian quantiles of z")


# -- the VQ-VAE and its prior ------------------------------------------------------------------------


@flax.struct.dataclass
class VQVAEState:
    """The train state of both stages (a pytree: jit, pmap and orbax see plain arrays).

    Attributes:
      step: int32 scalar, updates done (stage 1 while step < vqvae_steps).
      params: {"vqvae": the VQVAE's parameters, "prior": the Gated PixelCNN's}.
      vqvae_opt_state, prior_opt_state: the optax state of each stage.
      codebook_stats: {"usage": float32 [K] moving average of each code's share of the positions (dead
        codes are restarted), "cluster_size": [K], "embed_sum": [K, D] (the EMA codebook's, Appendix A.1)}.
    """

    step: jax.Array
    params: Any
    vqvae_opt_state: Any
    prior_opt_state: Any
    codebook_stats: Any


def vqvae_config(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Add the VQ-VAE and prior fields to a base config `c` (in place; returned)."""
    c.dataset = "binarized_mnist"  # binarized_mnist (fixed) | mnist (dynamic binarization; needed for labels)
    c.hidden = 64  # encoder/decoder channels (the first stride-2 stage has half)
    c.num_residual = 1  # residual blocks in the encoder and in the decoder
    c.num_codes = 64  # K, the codebook size
    c.code_dim = 16  # D
    c.beta = 0.25  # the commitment weight
    c.codebook_update = "ema"  # ema (Appendix A.1) | gradient (the codebook loss)
    c.ema_decay = 0.99  # of the EMA codebook and of the usage that finds dead codes
    c.restart_threshold = 0.03  # restart a code used below this fraction of the uniform share 1/K (0: never)
    c.vqvae_steps = 3000  # stage 1; the prior trains for num_steps - vqvae_steps
    c.prior_features = 64
    c.prior_layers = 6
    c.prior_kernel_size = 5
    c.prior_output_features = 128
    c.prior_learning_rate = 1e-3
    c.conditional = False  # a class-conditional prior p(z | y) (8-bit mnist, dynamically binarized, with labels)
    c.sampler = "cached"  # the prior's sampler: cached | naive
    return c


class VQVAEExperiment(ClassConditional, ImageLikelihoodExperiment):
    """VQ-VAE + Gated PixelCNN prior on binary MNIST; see the module docstring.

    `log_prob(params, x)` is the bound log p(x | z_q(x)) + log p(z_q(x)) (nats; with a class-conditional
    prior the bound of the marginal log (1/10) sum_y p(x, z_q(x) | y)); `sample(params, key, n, labels=None,
    method=None)` draws codes from the prior and pixels from the decoder.
    """

    data_kind = "binary"
    sample_methods = ("cached", "naive")
    likelihood_note = {
        "discretization": likelihood.BINARY_PIXELS,
        "nll_estimate": "test_nll_nats = -(log p(x | z_q(x)) + log p(z_q(x))): the ELBO of the deterministic "
                        "posterior q(z | x) = 1[z = z_q(x)] (entropy 0), an upper bound on -log p(x)"}
    schema = {"dataset": Choice(*DATASETS), "hidden": Range(2, integer=True), "num_residual": Range(0, integer=True),
              "num_codes": Range(2, integer=True), "code_dim": Range(1, integer=True), "beta": Range(0.0),
              "codebook_update": Choice(*vqvae.CODEBOOK_UPDATES), "ema_decay": Range(0.0, 1.0, hi_open=True),
              "restart_threshold": Range(0.0, 1.0), "vqvae_steps": Range(1, integer=True),
              "prior_features": Range(1, integer=True), "prior_layers": Range(1, integer=True),
              "prior_kernel_size": Range(1, integer=True), "prior_output_features": Range(1, integer=True),
              "prior_learning_rate": Range(0.0, lo_open=True), "sampler": Choice("cached", "naive")}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        config = self.config  # (a conditional one reads mnist: `ClassConditional`)
        if config.vqvae_steps >= config.num_steps:
            raise ValueError(f"config.vqvae_steps ({config.vqvae_steps}) must be < config.num_steps "
                             f"({config.num_steps}): the prior trains for the steps after the VQ-VAE's")
        if config.prior_kernel_size % 2 == 0:
            raise ValueError(f"config.prior_kernel_size must be odd, got {config.prior_kernel_size}")
        self.model = vqvae.VQVAE(image_shape=self.data_shape, hidden=config.hidden, num_residual=config.num_residual,
                                 num_codes=config.num_codes, code_dim=config.code_dim)
        h, w = self.model.grid_shape
        self.prior = pixelcnn.GatedPixelCNN(image_shape=(h, w, 1), num_values=config.num_codes,
                                            features=config.prior_features, num_layers=config.prior_layers,
                                            kernel_size=config.prior_kernel_size,
                                            num_classes=10 if config.conditional else 0,
                                            output_features=config.prior_output_features, input_encoding="one_hot")
        self.vqvae_tx = optax.adam(config.learning_rate)
        self.prior_tx = optax.adam(config.prior_learning_rate)

    # -- state ---------------------------------------------------------------------------------
    def init_state(self, key: jax.Array) -> VQVAEState:
        vq_key, prior_key = jax.random.split(key)
        h, w = self.model.grid_shape
        labels = jnp.zeros((1,), jnp.int32) if self.conditional else None
        params = {"vqvae": self.model.init(vq_key, jnp.zeros((1, *self.data_shape)))["params"],
                  "prior": self.prior.init(prior_key, jnp.zeros((1, h, w, 1), jnp.int32), labels)["params"]}
        k = self.config.num_codes
        stats = {"usage": jnp.full((k,), 1.0 / k), "cluster_size": jnp.zeros((k,)),
                 "embed_sum": params["vqvae"]["codebook"]}
        return VQVAEState(step=jnp.zeros((), jnp.int32), params=params,
                          vqvae_opt_state=self.vqvae_tx.init(params["vqvae"]),
                          prior_opt_state=self.prior_tx.init(params["prior"]), codebook_stats=stats)

    def init_params(self, key: jax.Array):
        return self.init_state(key).params

    # -- the two stages --------------------------------------------------------------------------
    def _prior_nll(self, prior_params, indices, labels):
        return -vqvae.prior_log_prob(self.prior, prior_params, indices, labels if self.conditional else None)

    def update_stages(self):
        """Stage 1 from step 0: `update_vqvae`; stage 2 from step `vqvae_steps`: `update_prior` (the loop compiles
        each stage's own train step)."""
        return ((0, self.update_vqvae), (self.config.vqvae_steps, self.update_prior))

    def update_vqvae(self, state: VQVAEState, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """Stage 1: one Adam step of the VQ-VAE on Eq. 3, the EMA codebook update and dead-code restarts.

        Metrics (both stages): `loss` (the stage's objective, nats per image), `recon`, `commitment`,
        `prior_nll` (nats per image; in stage 1 the untrained prior's, forward only), `perplexity` (of the
        batch's codes) and `stage` (1 or 2)."""
        x = self.binarize_batch(batch["image"], keys, jnp.float32)
        return self._vqvae_step(state, x, batch.get("label"), axis_name)

    def update_prior(self, state: VQVAEState, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """Stage 2: one Adam step of the prior on -log p(z_q(x)) of the frozen encoder's codes (metrics as
        `update_vqvae`)."""
        x = self.binarize_batch(batch["image"], keys, jnp.float32)
        return self._prior_step(state, x, batch.get("label"), axis_name)

    def update(self, state: VQVAEState, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """The update of the stage that `state.step` is in, as one function (`lax.cond`): the same result as
        the stage's own update, for callers that need a single update function; the training loop runs the
        stages' own programs instead (`update_stages`: on XLA:CPU a conditional runs 7-20x slower)."""
        return jax.lax.cond(state.step < self.config.vqvae_steps,
                            lambda s: self.update_vqvae(s, batch, keys, axis_name),
                            lambda s: self.update_prior(s, batch, keys, axis_name), state)

    def _vqvae_step(self, state: VQVAEState, x, labels, axis_name):
        c = self.config
        ema = c.codebook_update == "ema"

        def loss_fn(p):
            out = vqvae.forward(self.model, p, x)
            loss = out["recon"] + c.beta * out["commitment"] + (0.0 if ema else out["codebook"])
            return loss.mean(), out

        (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params["vqvae"])
        share = vqvae.usage_share(out["indices"], c.num_codes)
        metrics = {"loss": loss, "recon": out["recon"].mean(), "commitment": out["commitment"].mean(),
                   "prior_nll": self._prior_nll(state.params["prior"], out["indices"], labels).mean()}
        grads, metrics, share = pmean((grads, metrics, share), axis_name)
        updates, opt_state = self.vqvae_tx.update(grads, state.vqvae_opt_state, state.params["vqvae"])
        params = optax.apply_updates(state.params["vqvae"], updates)
        stats = dict(state.codebook_stats)
        if ema:
            ema_stats, params["codebook"] = vqvae.ema_update(stats, out["z_e"], out["indices"], c.num_codes,
                                                             c.ema_decay, axis_name=axis_name)
            stats.update(ema_stats)
        stats["usage"] = c.ema_decay * stats["usage"] + (1 - c.ema_decay) * share
        if c.restart_threshold > 0:
            candidates = out["z_e"].reshape(-1, c.code_dim)
            if axis_name is not None:  # every device restarts at the same encoder outputs
                candidates = jax.lax.all_gather(candidates, axis_name, tiled=True)
            key = jax.random.fold_in(jax.random.key(c.seed), state.step)  # the same on every device
            codebook, stats["usage"], restarted = vqvae.restart_dead_codes(
                params["codebook"], stats["usage"], candidates, key, c.restart_threshold)
            params["codebook"] = codebook
            if ema:  # the moving averages restart at the new code with an average cluster size
                size = jnp.where(restarted, stats["cluster_size"].mean(), stats["cluster_size"])
                stats["cluster_size"] = size
                stats["embed_sum"] = jnp.where(restarted[:, None], codebook * size[:, None], stats["embed_sum"])
        metrics.update(perplexity=vqvae.perplexity(share), stage=jnp.float32(1))
        return state.replace(step=state.step + 1, params={**state.params, "vqvae": params},
                             vqvae_opt_state=opt_state, codebook_stats=stats), metrics

    def _prior_step(self, state: VQVAEState, x, labels, axis_name):
        out = vqvae.forward(self.model, state.params["vqvae"], x)  # the frozen first stage
        indices = jax.lax.stop_gradient(out["indices"])

        def loss_fn(p):
            return self._prior_nll(p, indices, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params["prior"])
        share = vqvae.usage_share(indices, self.config.num_codes)
        metrics = {"loss": loss, "recon": out["recon"].mean(), "commitment": out["commitment"].mean(),
                   "prior_nll": loss}
        grads, metrics, share = pmean((grads, metrics, share), axis_name)
        updates, opt_state = self.prior_tx.update(grads, state.prior_opt_state, state.params["prior"])
        params = optax.apply_updates(state.params["prior"], updates)
        metrics.update(perplexity=vqvae.perplexity(share), stage=jnp.float32(2))
        return state.replace(step=state.step + 1, params={**state.params, "prior": params},
                             prior_opt_state=opt_state), metrics

    # -- the model interface ----------------------------------------------------------------------
    def _labels(self, labels):
        return labels if self.conditional else None

    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """A class-conditional prior takes `labels` (int [num_samples] in 0..9; default 0, 1, ..., 9, 0, ...).

        Raises:
          ValueError: unknown names, or labels of the wrong shape or out of 0..9.
        """
        conditioning = super().check_conditioning(num_samples, **conditioning)
        if not self.conditional:
            return conditioning
        labels = np.asarray(conditioning.get("labels", np.arange(num_samples) % 10))
        if labels.shape != (num_samples,) or not np.issubdtype(labels.dtype, np.integer) or \
                (labels.size and (labels.min() < 0 or labels.max() > 9)):
            raise ValueError(f"labels must be int [{num_samples}] in 0..9, got {conditioning.get('labels')!r}")
        return {"labels": jnp.asarray(labels, jnp.int32)}

    def sample(self, params, key: jax.Array, num_samples: int, labels=None, method=None) -> jax.Array:
        """uint8 [num_samples, 28, 28, 1] in {0, 1}: codes from the prior (`method` "cached" | "naive", default
        `config.sampler`: the same codes for the same key), pixels from p(x | z_q)."""
        if self.conditional and labels is None:
            labels = jnp.arange(num_samples) % 10
        return vqvae.sample(self.model, params["vqvae"], self.prior, params["prior"], key, num_samples,
                            self._labels(labels), self.sample_method(method))

    def _bound(self, params, x, labels=None) -> dict:
        return vqvae.log_prob_bound(self.model, params["vqvae"], self.prior, params["prior"],
                                    jnp.asarray(x, jnp.float32), self._labels(labels))

    def log_prob(self, params, x: jax.Array, key: jax.Array = None) -> jax.Array:
        """The bound log p(x | z_q(x)) + log p(z_q(x)) <= log p(x), nats, float32 [N] (a class-conditional
        prior: log p(x | z_q(x)) + log (1/10) sum_y p(z_q(x) | y))."""
        if not self.conditional:
            return self._bound(params, x)["bound"]
        x = jnp.asarray(x, jnp.float32)
        out = vqvae.forward(self.model, params["vqvae"], x)
        per_class = jnp.stack([-self._prior_nll(params["prior"], out["indices"],
                                                jnp.full((x.shape[0],), y, jnp.int32)) for y in range(10)])
        return -out["recon"] + jax.nn.logsumexp(per_class, axis=0) - jnp.log(10.0)

    # -- evaluation ---------------------------------------------------------------------------------
    def eval_terms(self, params, batch: dict, key) -> dict:
        """-bound (`nll`), -log p(x | z_q(x)) (`recon`), -log p(z_q(x)) (`prior`) per image, nats."""
        if self.conditional:
            b = self._bound(params, batch["image"], batch["label"])
            return {"nll": -self.log_prob(params, batch["image"]), "nll_given_label": -b["bound"],
                    "recon": b["recon"], "prior": b["prior"]}
        b = self._bound(params, batch["image"])
        return {"nll": -b["bound"], "recon": b["recon"], "prior": b["prior"]}

    def codebook_report(self, params, images: np.ndarray) -> dict:
        """Codebook usage on `images` (uint8 [N, 28, 28, 1] in {0, 1}): the share of the K codes used at least
        once (`codebook_usage`), the perplexity exp(H) of the code histogram (K at best), and the
        reconstruction's pixel error rate (Bernoulli mean thresholded at 1/2 vs the image)."""
        @jax.jit
        def codes_and_errors(p, x):
            out = vqvae.forward(self.model, p, x)
            errors = ((out["logits"] > 0) != (x > 0.5)).reshape(x.shape[0], -1).mean(-1)
            return out["indices"], errors

        bs = self.config.eval_batch_size
        outs = [codes_and_errors(params["vqvae"], jnp.asarray(images[i:i + bs], jnp.float32))
                for i in range(0, len(images), bs)]
        codes = np.concatenate([np.asarray(o[0]) for o in outs]).reshape(-1)
        share = np.bincount(codes, minlength=self.config.num_codes) / codes.size
        return {"codebook_usage": float(np.mean(share > 0)),
                "code_perplexity": float(vqvae.perplexity(jnp.asarray(share))),
                "test_pixel_error_rate": float(np.mean(np.concatenate([np.asarray(o[1]) for o in outs]))),
                "num_codes": int(self.config.num_codes)}

    def extra_metrics(self, params, keys) -> dict:
        test = self.load("test", binarize_key=keys["binarize"])["image"]
        return {**self.codebook_report(params, test), "figures": ["samples.png", "reconstructions.png"]}

    def grid_images(self, params, key):
        labels = jnp.arange(self.num_grid_samples) % 10 if self.conditional else None
        return np.asarray(jax.jit(lambda p, k: vqvae.sample(
            self.model, p["vqvae"], self.prior, p["prior"], k, self.num_grid_samples, labels,
            self.sample_method(), probs=True))(params, key))

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        super().write_artifacts(params, key, workdir)
        x = self.load("test", 32, key)["image"]
        logits = jax.jit(lambda p, x: vqvae.forward(self.model, p, x)["logits"])(params["vqvae"],
                                                                                jnp.asarray(x, jnp.float32))
        viz_images.save_reconstructions(Path(workdir) / "reconstructions.png", x, np.asarray(jax.nn.sigmoid(logits)))
