"""Adversarial autoencoders (Makhzani et al. 2016, "Adversarial Autoencoders", ICLR workshop / arXiv:1511.05644).

An autoencoder whose code distribution is matched to a prior by a GAN played in code space:

* encoder q(z | x) (Sec. 2 lists three choices; two are built, `POSTERIORS`): "deterministic", an MLP
  z = E(x), so the aggregated posterior q(z) = E_{p_data(x)}[delta(z - E(x))]; or "gaussian",
  q(z | x) = N(mu(x), diag sigma^2(x)) (the MLP of `vae.MLPEncoder`), sampled by the
  reparameterization z = mu(x) + sigma(x) * eps, eps ~ N(0, I), so gradients reach mu and sigma and
  q(z) is a continuous mixture of Gaussians: the regularisation phase matches these samples to p(z);
* decoder p(x | z): an MLP giving Bernoulli logits per pixel (binary images), reconstruction cost
  -log p(x | z = E(x)) in nats per image (the paper uses a Euclidean cost on gray MNIST);
* discriminator D(z) (Sec. 2, Fig. 1, bottom): an MLP telling samples of the prior p(z) (positive,
  label 1) from codes E(x) (negative, label 0). With label information (Sec. 2.3, Fig. 3) it also
  receives a one-hot vector of the example's label (plus one "unlabelled" class) and its positive
  samples come from that label's mixture component.

Training alternates, on every minibatch, the paper's two phases (Sec. 2, "Both the adversarial network
and the autoencoder are trained jointly with SGD in two phases"):

1. reconstruction phase: encoder and decoder descend the reconstruction cost;
2. regularisation phase: the discriminator descends the GAN discriminator loss (real: z ~ p(z),
   fake: z = E(x)), then the encoder ("generator") descends the GAN generator loss on D(E(x)).

The GAN losses are those of `gm_jax.models.gan` (Goodfellow et al. 2014, Eq. 1 and Sec. 3), in nats.
Each phase has its own optax optimizer and state (`AAEState`), so a phase moves only its own player.

Priors p(z) (`Prior`): "gaussian" N(0, I) (Fig. 2a); "mixture", an equal mixture of 10 Gaussians on a
circle (Fig. 2b): component k has mean `radius * (cos a_k, sin a_k)` (a_k = 2 pi k / 10) in the first two
code dimensions, standard deviations `std_radial` along the ray and `std_tangential` across it (the
elongated spokes of the paper's figures), and N(0, 1) in any further dimension; "mixture_labels", the
same mixture with the component of a labelled example fixed to its label (Sec. 2.3, Fig. 3/4).

An AAE has no tractable likelihood: q(z | x) is matched to p(z) only through q(z), no bound on
log p(x) is optimised, and p(x) = int p(x | z) p(z) dz is not computed here (the paper's likelihood numbers
are Parzen-window estimates on samples).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import gm_jax.distributions as dist
from gm_jax.models import gan
from gm_jax.models.vae import MLPDecoder, MLPEncoder
from gm_jax.nn import Dense, pmean

PRIORS = ("gaussian", "mixture", "mixture_labels")
POSTERIORS = ("deterministic", "gaussian")  # q(z | x): a point mass at E(x), or N(mu(x), diag sigma^2(x))
NUM_COMPONENTS = 10  # the mixture's components, one per digit for "mixture_labels"

# Makhzani et al. 2016, Appendix A (MNIST): encoder, decoder and discriminator each two hidden layers of
# 1000 ReLU units, a linear last encoder layer, minibatches of 100. Their SGD-with-momentum schedules,
# weight initialisation and Euclidean reconstruction cost are not reproduced (Adam with a cosine decay,
# flax's default initialisation, Bernoulli cost on binarized pixels).
PAPER = {"hidden": (1000, 1000), "disc_hidden": (1000, 1000), "batch_size": 100}


# -- modules ------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """The deterministic encoder z = E(x): x float [B, H, W, C] in [0, 1] -> z float32 [B, latent_dim].

    ReLU hidden layers of widths `hidden`, a linear output layer (Makhzani et al. 2016, Appendix A).
    """

    hidden: Sequence[int]
    latent_dim: int

    @nn.compact
    def __call__(self, x):
        h = jnp.asarray(x, jnp.float32).reshape(x.shape[0], -1)
        for width in self.hidden:
            h = nn.relu(Dense(width)(h))
        return Dense(self.latent_dim)(h)


class CodeDiscriminator(nn.Module):
    """D on codes: z float [B, latent_dim] (and labels int [B] when `num_classes` > 0) -> logits float32 [B].

    ReLU hidden layers of widths `hidden`, one output logit (D(z) = sigmoid(logit)). With `num_classes`
    > 0 the one-hot label is concatenated to z (Makhzani et al. 2016, Sec. 2.3: the label is an extra
    input of the discriminator).
    """

    hidden: Sequence[int]
    num_classes: int = 0

    @nn.compact
    def __call__(self, z, y=None):
        h = jnp.asarray(z, jnp.float32)
        if self.num_classes:
            h = jnp.concatenate([h, jax.nn.one_hot(y, self.num_classes, dtype=jnp.float32)], axis=-1)
        for width in self.hidden:
            h = nn.relu(Dense(width)(h))
        return Dense(1)(h)[:, 0]


# -- priors -------------------------------------------------------------------------------------
def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


@dataclasses.dataclass(frozen=True)
class Prior:
    """The prior p(z) the codes are matched to (see the module docstring for the kinds).

    Attributes:
      kind: "gaussian" | "mixture" | "mixture_labels".
      latent_dim: the code's dimension (>= 2 for the mixtures).
      radius, std_radial, std_tangential: the mixture's geometry (code units; all > 0).
      num_components: the mixture's components (10: one per digit).

    Raises:
      ValueError: an unknown kind, a mixture with latent_dim < 2, or a non-positive size.
    """

    kind: str
    latent_dim: int
    radius: float = 4.0
    std_radial: float = 1.0
    std_tangential: float = 0.25
    num_components: int = NUM_COMPONENTS

    def __post_init__(self):
        if self.kind not in PRIORS:
            raise ValueError(f"unknown prior {self.kind!r}; valid choices: {list(PRIORS)}")
        if self.latent_dim < 1 or (self.is_mixture and self.latent_dim < 2):
            raise ValueError(f"prior {self.kind!r} needs latent_dim >= {2 if self.is_mixture else 1} (the mixture "
                             f"lies on a circle in the first two code dimensions), got {self.latent_dim}")
        if min(self.radius, self.std_radial, self.std_tangential) <= 0 or self.num_components < 1:
            raise ValueError(f"the mixture prior needs radius, std_radial, std_tangential > 0 and num_components >= 1; "
                             f"got {self.radius}, {self.std_radial}, {self.std_tangential}, {self.num_components}")

    @property
    def is_mixture(self) -> bool:
        return self.kind != "gaussian"

    def angles(self) -> jax.Array:
        """The components' angles a_k = 2 pi k / K, float32 [K]."""
        return 2.0 * math.pi * jnp.arange(self.num_components, dtype=jnp.float32) / self.num_components

    def means(self) -> jax.Array:
        """The components' means float32 [K, latent_dim]: `radius * (cos a_k, sin a_k, 0, ..., 0)`."""
        a = self.angles()
        ring = self.radius * jnp.stack([jnp.cos(a), jnp.sin(a)], axis=-1)
        return jnp.pad(ring, ((0, 0), (0, self.latent_dim - 2)))

    def sample_one(self, key: jax.Array, component: jax.Array | int = -1) -> jax.Array:
        """One draw z float32 [latent_dim] from one key.

        Args:
          key: a PRNG key.
          component: int32 scalar (mixtures only): the component 0..K-1 to draw from, or -1 for a
            component drawn uniformly (the marginal). Ignored by the Gaussian prior.
        """
        eps_key, k_key = jax.random.split(key)
        eps = jax.random.normal(eps_key, (self.latent_dim,))
        if not self.is_mixture:
            return eps
        drawn = jax.random.randint(k_key, (), 0, self.num_components)
        k = jnp.where(jnp.asarray(component) < 0, drawn, component)
        a = self.angles()[k]
        radial = self.radius + self.std_radial * eps[0]  # along the ray, then across it
        across = self.std_tangential * eps[1]
        ring = jnp.stack([radial * jnp.cos(a) - across * jnp.sin(a), radial * jnp.sin(a) + across * jnp.cos(a)])
        return jnp.concatenate([ring, eps[2:]])

    def sample(self, keys: jax.Array, components: jax.Array | None = None) -> jax.Array:
        """One draw per key: keys [B] -> z float32 [B, latent_dim] (per-example keys, as in training).

        Args:
          keys: PRNG keys [B].
          components: int [B] components 0..K-1 (or -1: drawn uniformly) of a mixture prior, or None
            (the marginal: every component drawn uniformly).

        Raises:
          ValueError: `components` with the Gaussian prior, or not an integer array of shape [B].
        """
        if components is None:
            return jax.vmap(self.sample_one)(keys)
        check_components(components, keys.shape[0], self, allow_unlabelled=True)
        return jax.vmap(self.sample_one)(keys, jnp.asarray(components, jnp.int32))

    def sample_n(self, key: jax.Array, num_samples: int, components: jax.Array | None = None) -> jax.Array:
        """`num_samples` draws float32 [num_samples, latent_dim] from one key (`sample` on its split)."""
        return self.sample(jax.random.split(key, num_samples), components)


def check_components(components, num: int, prior: Prior, allow_unlabelled: bool = False) -> None:
    """Check mixture components / labels: an integer array of shape [num] in 0..K-1 (or -1 when
    `allow_unlabelled`). The values are checked only when concrete (not under jit).

    Raises:
      ValueError: the prior is Gaussian (no components), or a wrong shape, dtype or value; the
        message names what was expected.
    """
    if not prior.is_mixture:
        raise ValueError(f"labels / components select a mixture component: prior {prior.kind!r} has none "
                         f"(use prior='mixture_labels')")
    lo, top = (-1 if allow_unlabelled else 0), prior.num_components - 1
    concrete = _is_concrete(components)
    c = np.asarray(components) if concrete else components
    if tuple(c.shape) != (num,) or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape [{num}] in {lo}..{top}, got {c.dtype} {list(c.shape)}")
    if concrete and num:
        if int(c.min()) < lo or int(c.max()) > top:
            raise ValueError(f"labels must be integers in {lo}..{top} (the mixture's components"
                             f"{', -1 = unlabelled' if allow_unlabelled else ''}), got values in "
                             f"[{int(c.min())}, {int(c.max())}]")


# -- the train state and the two-phase update ---------------------------------------------------
@flax.struct.dataclass
class AAEState:
    """The train state of the three networks (a pytree: jit, pmap and orbax see plain arrays).

    Attributes:
      step: int32 scalar, updates done (one reconstruction + one regularisation phase each).
      params: {"encoder": ..., "decoder": ..., "discriminator": ...}.
      ae_opt_state: the reconstruction phase's optax state, over {"encoder", "decoder"}.
      d_opt_state: the discriminator's, over params["discriminator"].
      g_opt_state: the encoder-as-generator's, over params["encoder"].
    """

    step: jax.Array
    params: Any
    ae_opt_state: Any
    d_opt_state: Any
    g_opt_state: Any


class AAE:
    """The networks, the prior, one optimizer per phase; pure `init`, phases, `update` and samplers.

    Args:
      encoder: `Encoder` (x -> z).
      decoder: a module z [B, latent_dim] -> Bernoulli logits [B, *image_shape] (`vae.MLPDecoder`).
      discriminator: `CodeDiscriminator` (num_classes = K + 1 for "mixture_labels", else 0).
      prior: the `Prior`.
      image_shape: (H, W, C) of one image.
      ae_optimizer, d_optimizer, g_optimizer: the reconstruction phase's, the discriminator's and the
        encoder-as-generator's optax transformations.
      generator_loss: "non_saturating" (default) | "saturating" (`gan.GENERATOR_LOSSES`).
      posterior: "deterministic" (`encoder` maps x -> z) or "gaussian" (`encoder` maps x -> (mean, log_var),
        `vae.MLPEncoder`); see `POSTERIORS` and the module docstring.

    Raises:
      ValueError: an unknown generator loss or posterior, or a discriminator whose label input does not
        match the prior.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, discriminator: CodeDiscriminator, prior: Prior,
                 image_shape: Sequence[int], ae_optimizer: optax.GradientTransformation,
                 d_optimizer: optax.GradientTransformation, g_optimizer: optax.GradientTransformation,
                 generator_loss: str = "non_saturating", posterior: str = "deterministic"):
        if posterior not in POSTERIORS:
            raise ValueError(f"unknown posterior {posterior!r}; valid choices: {list(POSTERIORS)}")
        self.posterior = posterior
        self.encoder, self.decoder, self.discriminator, self.prior = encoder, decoder, discriminator, prior
        self.image_shape = tuple(image_shape)
        self.ae_optimizer, self.d_optimizer, self.g_optimizer = ae_optimizer, d_optimizer, g_optimizer
        self.g_loss = gan.generator_loss(generator_loss)
        want = prior.num_components + 1 if self.uses_labels else 0
        if discriminator.num_classes != want:
            raise ValueError(f"prior {prior.kind!r} needs a discriminator with num_classes={want}, "
                             f"got {discriminator.num_classes}")

    @property
    def uses_labels(self) -> bool:
        """True for "mixture_labels": the discriminator sees labels, the prior draws from their components."""
        return self.prior.kind == "mixture_labels"

    def init(self, key: jax.Array) -> AAEState:
        """A fresh `AAEState` (step 0)."""
        e_key, d_key, c_key = jax.random.split(key, 3)
        x = jnp.zeros((1, *self.image_shape), jnp.float32)
        z = jnp.zeros((1, self.prior.latent_dim), jnp.float32)
        y = jnp.zeros((1,), jnp.int32) if self.uses_labels else None
        params = {"encoder": self.encoder.init(e_key, x)["params"], "decoder": self.decoder.init(d_key, z)["params"],
                  "discriminator": self.discriminator.init(c_key, z, y)["params"]}
        return AAEState(step=jnp.zeros((), jnp.int32), params=params,
                        ae_opt_state=self.ae_optimizer.init({k: params[k] for k in ("encoder", "decoder")}),
                        d_opt_state=self.d_optimizer.init(params["discriminator"]),
                        g_opt_state=self.g_optimizer.init(params["encoder"]))

    # -- the networks as functions ---------------------------------------------------------------
    def posterior_noise(self, keys: jax.Array) -> jax.Array | None:
        """eps ~ N(0, I) float32 [B, latent_dim] of the Gaussian posterior, row i from keys[i] (PRNG keys
        [B]); None for the deterministic one (which draws nothing)."""
        if self.posterior == "deterministic":
            return None
        return jax.vmap(lambda k: jax.random.normal(k, (self.prior.latent_dim,)))(keys)

    def encode(self, encoder_params, x: jax.Array, eps: jax.Array | None = None) -> jax.Array:
        """Codes float32 [B, latent_dim] of images x [B, H, W, C] in {0, 1} (any real or int dtype).

        Deterministic posterior: z = E(x) (`eps` ignored). Gaussian posterior: the reparameterized draw
        z = mu(x) + exp(log_var(x) / 2) * eps for `eps` float [B, latent_dim] (`posterior_noise`), or the
        posterior mean mu(x) when `eps` is None.
        """
        out = self.encoder.apply({"params": encoder_params}, jnp.asarray(x, jnp.float32))
        if self.posterior == "deterministic":
            return out
        mean, log_var = out
        return mean if eps is None else mean + jnp.exp(0.5 * log_var) * eps

    def decode(self, decoder_params, z: jax.Array) -> jax.Array:
        """Bernoulli logits float32 [B, H, W, C] of p(x = 1 | z) for codes z [B, latent_dim]."""
        return self.decoder.apply({"params": decoder_params}, jnp.asarray(z, jnp.float32))

    def discriminate(self, disc_params, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """D's logits float32 [B] on codes z [B, latent_dim] (`labels` int [B], -1 = unlabelled, with
        "mixture_labels"; ignored otherwise)."""
        return self.discriminator.apply({"params": disc_params}, z, self._disc_labels(labels))

    def _disc_labels(self, labels):
        """The discriminator's class input: the label, or K for an unlabelled example (-1); None without labels."""
        if not self.uses_labels:
            return None
        return jnp.where(labels < 0, self.prior.num_components, labels)

    def reconstruction_nll(self, params, x: jax.Array, eps: jax.Array | None = None) -> jax.Array:
        """-log p(x | z), z = `encode(x, eps)`, nats per image, float32 [B] (`params` holds "encoder" and
        "decoder"; x [B, H, W, C] in {0, 1}). With the Gaussian posterior and `eps` it is the one-sample
        estimate of the reconstruction term E_q(z|x)[-log p(x | z)] (Makhzani et al. 2016, Sec. 2)."""
        x = jnp.asarray(x, jnp.float32)
        logits = self.decode(params["decoder"], self.encode(params["encoder"], x, eps))
        return -dist.bernoulli_log_prob(logits, x, event_ndims=len(self.image_shape))

    # -- the phases ---------------------------------------------------------------------------------
    def reconstruction_phase(self, state: AAEState, x: jax.Array, axis_name: str | None = None,
                             eps: jax.Array | None = None):
        """Phase 1: one step of the encoder and decoder on the mean reconstruction NLL (nats per image).

        Args:
          state: `AAEState`; x: float [B, H, W, C] in {0, 1}; axis_name: the pmap axis (gradients averaged);
          eps: the Gaussian posterior's noise [B, latent_dim] (`posterior_noise`), None for the deterministic one.

        Returns:
          (state with new encoder/decoder params and `ae_opt_state`, {"recon": nats per image}).
        """
        ae = {k: state.params[k] for k in ("encoder", "decoder")}
        loss, grads = jax.value_and_grad(lambda p: jnp.mean(self.reconstruction_nll(p, x, eps)))(ae)
        updates, opt_state = self.ae_optimizer.update(pmean(grads, axis_name), state.ae_opt_state, ae)
        ae = optax.apply_updates(ae, updates)
        return state.replace(params={**state.params, **ae}, ae_opt_state=opt_state), {"recon": loss}

    def discriminator_phase(self, state: AAEState, x: jax.Array, labels: jax.Array | None, keys: jax.Array,
                            axis_name: str | None = None, eps: jax.Array | None = None):
        """Phase 2a: one step of D on `gan.discriminator_loss` (real: z ~ p(z | label), fake: the codes
        `encode(x, eps)`).

        Args:
          x: float [B, H, W, C]; labels: int32 [B] (-1 = unlabelled) with "mixture_labels", else None;
          keys: PRNG keys [B], example i's prior draw from keys[i]; eps: as in `reconstruction_phase`.

        Returns:
          (state with new discriminator params and `d_opt_state`, {"d_loss" (nats), "d_real", "d_fake"
          (mean D on prior samples and on codes, probabilities)}).
        """
        real = self.prior.sample(keys, labels if self.uses_labels else None)
        fake = jax.lax.stop_gradient(self.encode(state.params["encoder"], x, eps))

        def loss_fn(d_params):
            real_logits = self.discriminate(d_params, real, labels)
            fake_logits = self.discriminate(d_params, fake, labels)
            return gan.discriminator_loss(real_logits, fake_logits), (real_logits, fake_logits)

        (loss, (real_logits, fake_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params["discriminator"])
        updates, opt_state = self.d_optimizer.update(pmean(grads, axis_name), state.d_opt_state,
                                                     state.params["discriminator"])
        params = {**state.params, "discriminator": optax.apply_updates(state.params["discriminator"], updates)}
        metrics = {"d_loss": loss, "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
                   "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
        return state.replace(params=params, d_opt_state=opt_state), metrics

    def generator_phase(self, state: AAEState, x: jax.Array, labels: jax.Array | None,
                        axis_name: str | None = None, eps: jax.Array | None = None):
        """Phase 2b: one step of the encoder on the GAN generator loss of D(encode(x, eps)) (nats); D is
        fixed. With the Gaussian posterior the gradient reaches mu and sigma through the reparameterization.

        Returns:
          (state with new encoder params and `g_opt_state`, {"g_loss": nats}).
        """
        disc = state.params["discriminator"]
        loss, grads = jax.value_and_grad(
            lambda e: self.g_loss(self.discriminate(disc, self.encode(e, x, eps), labels)))(state.params["encoder"])
        updates, opt_state = self.g_optimizer.update(pmean(grads, axis_name), state.g_opt_state,
                                                     state.params["encoder"])
        params = {**state.params, "encoder": optax.apply_updates(state.params["encoder"], updates)}
        return state.replace(params=params, g_opt_state=opt_state), {"g_loss": loss}

    def update(self, state: AAEState, x: jax.Array, labels: jax.Array | None, keys: jax.Array,
               axis_name: str | None = None):
        """One AAE training step (Makhzani et al. 2016, Sec. 2): the reconstruction phase, then the
        regularisation phase (discriminator, then encoder), all on the same minibatch.

        Args:
          state: `AAEState`.
          x: float [B, H, W, C] binary images (already binarized).
          labels: int32 [B] digit labels (-1 = unlabelled) for "mixture_labels", else None.
          keys: PRNG keys [B], one per example, so example i draws the same on one device, under pmap
            or sharded jit: its prior draw from keys[i] and, with the Gaussian posterior, its noise eps
            (one draw of z ~ q(z | x), shared by the three phases) from fold_in(keys[i], 1).
          axis_name: the pmap axis: gradients and metrics are averaged over it (`gm_jax.nn.pmean`).

        Returns:
          (state with step + 1, metrics): `loss` (= `recon`, the reconstruction NLL before the update,
          nats per image), `recon`, `d_loss`, `g_loss` (nats), `d_real`, `d_fake` (probabilities).

        Raises:
          ValueError: labels missing with "mixture_labels", or of the wrong shape or dtype.
        """
        if self.uses_labels:
            if labels is None:
                raise ValueError("prior 'mixture_labels' trains on labels: pass labels int32 [B] (-1 = unlabelled)")
            check_components(labels, x.shape[0], self.prior, allow_unlabelled=True)
        x = jnp.asarray(x, jnp.float32)
        eps = self.posterior_noise(jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys))
        state, metrics = self.reconstruction_phase(state, x, axis_name, eps)
        state, d_metrics = self.discriminator_phase(state, x, labels, keys, axis_name, eps)
        state, g_metrics = self.generator_phase(state, x, labels, axis_name, eps)
        metrics = {"loss": metrics["recon"], **metrics, **d_metrics, **g_metrics}
        return state.replace(step=state.step + 1), pmean(metrics, axis_name)

    # -- sampling -------------------------------------------------------------------------------
    def sample_probs(self, decoder_params, key: jax.Array, num_samples: int,
                     labels: jax.Array | None = None) -> jax.Array:
        """Bernoulli means p(x = 1 | z) float32 [num_samples, H, W, C] of z ~ p(z) (or p(z | labels)).

        Args:
          labels: int [num_samples] components 0..K-1 of a mixture prior, or None (the marginal).

        Raises:
          ValueError: labels with the Gaussian prior, or of the wrong shape, dtype or range.
        """
        if labels is not None:
            check_components(labels, num_samples, self.prior)
        z = self.prior.sample_n(key, num_samples, labels)
        return jax.nn.sigmoid(self.decode(decoder_params, z))

    def sample(self, decoder_params, key: jax.Array, num_samples: int, labels: jax.Array | None = None) -> jax.Array:
        """Ancestral samples x ~ p(x | z), z ~ p(z) (or p(z | labels)): uint8 [num_samples, H, W, C] in {0, 1}.

        `key` is split into the codes' key and the pixels' key; `labels` as in `sample_probs`.
        """
        z_key, x_key = jax.random.split(key)
        probs = self.sample_probs(decoder_params, z_key, num_samples, labels)
        return jax.random.bernoulli(x_key, probs).astype(jnp.uint8)


def build(hidden: Sequence[int], disc_hidden: Sequence[int], prior: Prior, image_shape: Sequence[int],
          learning_rate: float | optax.Schedule, adv_learning_rate: float | optax.Schedule, beta1: float,
          generator_loss: str = "non_saturating", posterior: str = "deterministic") -> AAE:
    """An `AAE` with MLP networks: encoder x -> hidden -> z (`Encoder`; with posterior="gaussian" x -> hidden ->
    (mean, log_var), `vae.MLPEncoder`), decoder z -> reversed(hidden) -> logits,
    discriminator z -> disc_hidden -> logit; Adam(learning_rate) for the reconstruction phase and
    Adam(adv_learning_rate, b1=beta1) for each player of the regularisation phase (a learning rate may be an
    optax schedule of the step)."""
    num_classes = prior.num_components + 1 if prior.kind == "mixture_labels" else 0
    if posterior not in POSTERIORS:
        raise ValueError(f"unknown posterior {posterior!r}; valid choices: {list(POSTERIORS)}")
    encoder = (Encoder if posterior == "deterministic" else MLPEncoder)(tuple(hidden), prior.latent_dim)
    return AAE(encoder, MLPDecoder(tuple(hidden), tuple(image_shape)),
               CodeDiscriminator(tuple(disc_hidden), num_classes), prior, image_shape,
               optax.adam(learning_rate), optax.adam(adv_learning_rate, b1=beta1),
               optax.adam(adv_learning_rate, b1=beta1), generator_loss, posterior)
