"""Generative adversarial networks (Goodfellow et al. 2014), DCGAN (Radford et al. 2016) and
conditional GANs (Mirza & Osindero 2014).

The game (Goodfellow et al. 2014, Eq. 1), with D(x) = sigmoid(l(x)) for the
discriminator's logit l:

    min_G max_D V(D, G) = E_x~p_data[log D(x)] + E_z~p(z)[log(1 - D(G(z)))]

Everything here is computed from logits with `jax.nn.log_sigmoid` /
`jax.nn.softplus` (log D = log_sigmoid(l), log(1 - D) = log_sigmoid(-l)), never
as `log(sigmoid(l))`, so the losses stay finite for saturated logits. Losses
are in nats per example.

* discriminator loss: `-V` (the binary cross-entropy of real vs fake);
* generator loss, saturating (Eq. 1 as written): `E log(1 - D(G(z)))`;
* generator loss, non-saturating (Sec. 3, the default): `-E log D(G(z))`.

`GAN.update` is Algorithm 1 of Goodfellow et al. as one pure function: `k`
discriminator updates (same real minibatch, fresh noise each time) and then
one generator update, each player with its own optax optimizer. It is an
update function in the sense of `gm_jax.training.steps` (runs under
`parallel = none | pmap | sharded`): gradients and metrics are averaged over
devices with `lax.pmean` (when `axis_name` is set: pmap and sharded), and batch norm layers are
built with the same `axis_name`, so batch statistics are cross-device means and the
three modes agree. Sampling (`GAN.generate`) uses batch norm in eval mode (the
running averages).

Modules are called as `generator(z, y, train=...)` and
`discriminator(x, y, train=...)`, where `y` (int32 labels [B]) is None for
unconditional models, and have an `axis_name` field (None on one device).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gm_jax.nn import Conv, Dense, FractionallyStridedConv2D, pmean

GENERATOR_LOSSES = ("non_saturating", "saturating")

# DCGAN weight init (Radford et al. 2016, Sec. 4): N(0, 0.02).
dcgan_init = nn.initializers.normal(0.02)


# -- the value function and the losses ---------------------------------------------------------
def value_function(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """Monte Carlo estimate of V(D, G) (Goodfellow et al. 2014, Eq. 1), nats.

    Args:
      real_logits: float [B] (or [B, 1]), discriminator logits l(x) on data.
      fake_logits: float [B'] (or [B', 1]), logits l(G(z)) on generated examples.

    Returns:
      float scalar `mean(log D(x)) + mean(log(1 - D(G(z))))` (<= 0; -2 log 2 at D = 1/2).
    """
    return jnp.mean(jax.nn.log_sigmoid(real_logits)) + jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """The discriminator's loss `-V(D, G)`: binary cross-entropy of data (label 1) vs fakes (label 0), nats.

    `softplus(-l_real) + softplus(l_fake)`, averaged over each set (shapes as in `value_function`).
    """
    return -value_function(real_logits, fake_logits)


def generator_loss_saturating(fake_logits: jax.Array) -> jax.Array:
    """`mean(log(1 - D(G(z)))) = -mean(softplus(l))` (Goodfellow et al. 2014, Eq. 1), nats.

    Its gradient with respect to a logit is `-sigmoid(l) / B`, which vanishes when D
    confidently rejects the fakes (l -> -inf): the saturation that motivates the
    non-saturating loss.
    """
    return jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def generator_loss_non_saturating(fake_logits: jax.Array) -> jax.Array:
    """`-mean(log D(G(z))) = mean(softplus(-l))` (Goodfellow et al. 2014, Sec. 3), nats.

    Gradient with respect to a logit: `(sigmoid(l) - 1) / B`, close to `-1 / B` when
    D rejects the fakes, so the generator still learns early in training.
    """
    return jnp.mean(jax.nn.softplus(-fake_logits))


def generator_loss(name: str) -> Callable[[jax.Array], jax.Array]:
    """The generator loss called `name` (`"non_saturating"` | `"saturating"`).

    Raises:
      ValueError: unknown name.
    """
    if name == "non_saturating":
        return generator_loss_non_saturating
    if name == "saturating":
        return generator_loss_saturating
    raise ValueError(f"unknown generator loss {name!r}; valid choices: {list(GENERATOR_LOSSES)}")


class MinimaxObjective:
    """The game of Goodfellow et al. 2014 (Eq. 1) as the two players' losses: the discriminator's `-V`
    (binary cross-entropy of data vs fakes) and the generator loss called `generator_loss`.

    The discriminator's output is logits, float [B] (or any shape: the losses average over it, so a
    PatchGAN's [B, h, w] logits are one real/fake decision per patch, Isola et al. 2017, Sec. 3.2.2).
    An objective is what `GAN` asks of a game: `discriminator_loss(real_out, fake_out)` and
    `generator_loss(fake_out)`, each returning (scalar loss, metrics dict); `EBGANObjective`
    (`gm_jax.models.ebgan`) is the other.

    Raises:
      ValueError: an unknown generator loss.
    """

    def __init__(self, loss: str = "non_saturating"):
        self.name = loss
        self._g_loss = generator_loss(loss)

    def discriminator_loss(self, real_out: jax.Array, fake_out: jax.Array):
        """(`-V(D, G)` in nats, {"d_real", "d_fake": the mean D on data and fakes, probabilities})."""
        return discriminator_loss(real_out, fake_out), {"d_real": jnp.mean(jax.nn.sigmoid(real_out)),
                                                        "d_fake": jnp.mean(jax.nn.sigmoid(fake_out))}

    def generator_loss(self, fake_out: jax.Array):
        """(the generator loss in nats, {})."""
        return self._g_loss(fake_out), {}


# -- the two-player state and update -----------------------------------------------------------
@flax.struct.dataclass
class GANState:
    """The train state of both players (a pytree: jit, pmap and orbax see plain arrays).

    Attributes:
      step: int32 scalar, generator updates done (one per `GAN.update`).
      g_params, d_params: the players' parameters.
      g_opt_state, d_opt_state: their optax states.
      g_batch_stats, d_batch_stats: batch norm running averages ({} without batch norm).
      g_ema_params, g_ema_batch_stats: exponential moving averages of the generator's parameters
        and batch statistics ({} when the GAN's `ema_decay` is 0).
      label_log_prior: float32 [K], log p(y) of the labels a conditional generator is called with
        when a sampler draws them itself (a self-conditioned GAN's cluster frequencies); fixed,
        not trained; {} when unused.
      baseline_params, baseline_opt_state, baseline_batch_stats: a second generator trained on the
        same batches by the content loss alone (`GAN(baseline=True)`: the MSE-only or L1-only
        translator beside the adversarial one); {} when unused.
    """

    step: jax.Array
    g_params: Any
    d_params: Any
    g_opt_state: Any
    d_opt_state: Any
    g_batch_stats: Any
    d_batch_stats: Any
    g_ema_params: Any = flax.struct.field(default_factory=dict)
    g_ema_batch_stats: Any = flax.struct.field(default_factory=dict)
    label_log_prior: Any = flax.struct.field(default_factory=dict)
    baseline_params: Any = flax.struct.field(default_factory=dict)
    baseline_opt_state: Any = flax.struct.field(default_factory=dict)
    baseline_batch_stats: Any = flax.struct.field(default_factory=dict)


def _copy(tree):
    """A copy with its own buffers (train steps donate the state: no two fields may share one)."""
    return jax.tree_util.tree_map(jnp.copy, tree)


def _apply(module: nn.Module, params, batch_stats, *args, train: bool):
    """Apply `module`; in train mode with batch norm return the updated statistics too."""
    variables = {"params": params}
    if batch_stats:
        variables["batch_stats"] = batch_stats
        if train:
            out, mutated = module.apply(variables, *args, train=True, mutable=["batch_stats"])
            return out, mutated["batch_stats"]
    return module.apply(variables, *args, train=train), batch_stats


def _fold_in(keys: jax.Array, data: int) -> jax.Array:
    return jax.vmap(lambda k: jax.random.fold_in(k, data))(keys)


class GAN:
    """Two players, their optimizers and the noise prior; pure `init`, `update` and `generate`.

    The conditioning `y` is whatever both players are called with: None (a GAN), int32 labels [B]
    (a conditional GAN) or an input image [B, h, w, c] (a translator: the low-resolution image of
    SRGAN, the edge map of pix2pix). A translator also has a `content_loss` comparing G(z, y) with
    the real x paired with y (Ledig et al. 2017, Eq. 3: content + 1e-3 adversarial; Isola et al. 2017,
    Eq. 4: cGAN + lambda L1).

    Args:
      generator: module `G(z [B, z_dim], y, train) -> x [B, ...]` with an `axis_name` field.
      discriminator: module `D(x, y, train) -> out` with an `axis_name` field; `out` is what the
        objective reads: logits [B] (one per example), [B / m] (a PacGAN D judging packs of m) or
        [B, h, w] (a PatchGAN) for the minimax game; (energy [B], code [B, F]) for an EBGAN.
      g_optimizer, d_optimizer: one optax transformation per player.
      noise: `noise(key) -> z [z_dim]` for ONE example (vmapped over per-example keys); z_dim may
        be 0 for a deterministic translator.
      k: discriminator updates per generator update (Algorithm 1's k >= 1).
      loss: generator loss of the minimax game, `"non_saturating"` (default) or `"saturating"`
        (ignored when `objective` is given).
      objective: the game, an object with `discriminator_loss(real_out, fake_out)` and
        `generator_loss(fake_out)`, each -> (scalar, metrics); default `MinimaxObjective(loss)`.
      content_loss: None, or `content_loss(fake, real) -> scalar` (mean over the batch) added to the
        generator's loss; needs the real x in the generator phase (`update` passes it).
      adversarial_weight: the weight of the adversarial term in the generator's loss when there is
        a content loss, which carries its own weight (SRGAN: MSE + 1e-3 adversarial; pix2pix:
        lambda L1 + 1 cGAN).
      baseline: True to train, beside the adversarial generator, a second one of the same
        architecture and initialisation by the content loss alone on the same batches (needs
        `content_loss`); its variables are the state's `baseline_*` fields.
      ema_decay: 0 (off) or the decay d in [0, 1) of an exponential moving average of the
        generator, theta_ema <- d theta_ema + (1 - d) theta after every generator update
        (Yazici et al. 2019, "The Unusual Effectiveness of Averaging in GAN Training"); the
        batch-norm running statistics are averaged the same way (exact for the means of the
        first layer, which are linear in the weights; an approximation after it).

    Raises:
      ValueError: k < 1, an unknown loss, ema_decay outside [0, 1), a negative adversarial weight, or
        a baseline without a content loss.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, g_optimizer: optax.GradientTransformation,
                 d_optimizer: optax.GradientTransformation, noise: Callable[[jax.Array], jax.Array],
                 k: int = 1, loss: str = "non_saturating", ema_decay: float = 0.0, objective=None,
                 content_loss: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
                 adversarial_weight: float = 1.0, baseline: bool = False):
        if k < 1:
            raise ValueError(f"k (discriminator updates per generator update) must be >= 1, got {k}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 = no moving average), got {ema_decay}")
        if adversarial_weight < 0:
            raise ValueError(f"adversarial_weight must be >= 0, got {adversarial_weight}")
        if baseline and content_loss is None:
            raise ValueError("baseline=True trains a generator by the content loss alone: give content_loss")
        self.ema_decay = float(ema_decay)
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.noise, self.k = noise, int(k)
        self.objective = MinimaxObjective(loss) if objective is None else objective
        self.content_loss, self.adversarial_weight, self.baseline = content_loss, float(adversarial_weight), baseline

    def draw_noise(self, keys: jax.Array) -> jax.Array:
        """z ~ p(z), one draw per key: keys [B] -> z [B, z_dim]."""
        return jax.vmap(self.noise)(keys)

    def init(self, key: jax.Array, example_x: jax.Array, example_y: jax.Array | None = None) -> GANState:
        """A fresh `GANState` (step 0); `example_x` [B, ...] and `example_y` give shapes only."""
        g_key, d_key, z_key = jax.random.split(key, 3)
        z = self.draw_noise(jax.random.split(z_key, example_x.shape[0]))
        g_vars = self.generator.init(g_key, z, example_y, train=False)
        d_vars = self.discriminator.init(d_key, example_x, example_y, train=False)
        return GANState(
            step=jnp.zeros((), jnp.int32),
            g_params=g_vars["params"], d_params=d_vars["params"],
            g_opt_state=self.g_optimizer.init(g_vars["params"]),
            d_opt_state=self.d_optimizer.init(d_vars["params"]),
            g_batch_stats=g_vars.get("batch_stats", {}), d_batch_stats=d_vars.get("batch_stats", {}),
            # copies: the averages and the baseline must not share buffers with the live generator
            g_ema_params=_copy(g_vars["params"]) if self.ema_decay else {},
            g_ema_batch_stats=_copy(g_vars.get("batch_stats", {})) if self.ema_decay else {},
            baseline_params=_copy(g_vars["params"]) if self.baseline else {},
            baseline_opt_state=self.g_optimizer.init(g_vars["params"]) if self.baseline else {},
            baseline_batch_stats=_copy(g_vars.get("batch_stats", {})) if self.baseline else {},
        )

    def discriminator_phase(self, state: GANState, x: jax.Array, y: jax.Array | None, keys: jax.Array,
                            axis_name: str | None = None):
        """One discriminator update (ascend V): returns (state with new d_params/d_opt_state/d_batch_stats, metrics).

        `x` float [B, ...] real data in the generator's output range, `keys` [B] draw the fakes' noise.
        The generator runs in train mode (batch statistics) but its state is left unchanged.
        """
        gen = self.generator.clone(axis_name=axis_name)
        disc = self.discriminator.clone(axis_name=axis_name)
        fake, _ = _apply(gen, state.g_params, state.g_batch_stats, self.draw_noise(keys), y, train=True)
        fake = jax.lax.stop_gradient(fake)

        def loss_fn(d_params):
            real_out, stats = _apply(disc, d_params, state.d_batch_stats, x, y, train=True)
            fake_out, stats = _apply(disc, d_params, stats, fake, y, train=True)
            loss, metrics = self.objective.discriminator_loss(real_out, fake_out)
            return loss, (stats, metrics)

        (loss, (stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
        grads = pmean(grads, axis_name)
        updates, opt_state = self.d_optimizer.update(grads, state.d_opt_state, state.d_params)
        state = state.replace(d_params=optax.apply_updates(state.d_params, updates), d_opt_state=opt_state,
                              d_batch_stats=stats)
        return state, {"d_loss": loss, **metrics}

    def generator_phase(self, state: GANState, y: jax.Array | None, keys: jax.Array, axis_name: str | None = None,
                        x: jax.Array | None = None):
        """One generator update (descend the generator loss, plus the content loss against the real `x`
        when the GAN has one): returns (state with new g_params/g_opt_state/g_batch_stats, metrics:
        `g_loss`, and `g_adversarial`, `content` with a content loss). The discriminator runs in train
        mode; its state is left unchanged.

        Raises:
          ValueError: a GAN with a content loss called without `x`.
        """
        if self.content_loss is not None and x is None:
            raise ValueError("this GAN has a content loss: generator_phase needs the real x paired with y")
        gen = self.generator.clone(axis_name=axis_name)
        disc = self.discriminator.clone(axis_name=axis_name)
        z = self.draw_noise(keys)

        def loss_fn(g_params):
            fake, stats = _apply(gen, g_params, state.g_batch_stats, z, y, train=True)
            out, _ = _apply(disc, state.d_params, state.d_batch_stats, fake, y, train=True)
            adversarial, metrics = self.objective.generator_loss(out)
            if self.content_loss is None:
                return adversarial, (stats, metrics)
            content = self.content_loss(fake, x)
            loss = content + self.adversarial_weight * adversarial
            return loss, (stats, {**metrics, "g_adversarial": adversarial, "content": content})

        (loss, (stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
        grads = pmean(grads, axis_name)
        updates, opt_state = self.g_optimizer.update(grads, state.g_opt_state, state.g_params)
        state = state.replace(g_params=optax.apply_updates(state.g_params, updates), g_opt_state=opt_state,
                              g_batch_stats=stats)
        return state, {"g_loss": loss, **metrics}

    def baseline_phase(self, state: GANState, x: jax.Array, y: jax.Array | None, keys: jax.Array,
                       axis_name: str | None = None):
        """One update of the baseline generator by the content loss alone (`GAN(baseline=True)`):
        returns (state with new baseline_* fields, {"baseline_content": the content loss before the update})."""
        gen = self.generator.clone(axis_name=axis_name)
        z = self.draw_noise(keys)

        def loss_fn(params):
            fake, stats = _apply(gen, params, state.baseline_batch_stats, z, y, train=True)
            return self.content_loss(fake, x), stats

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.baseline_params)
        grads = pmean(grads, axis_name)
        updates, opt_state = self.g_optimizer.update(grads, state.baseline_opt_state, state.baseline_params)
        state = state.replace(baseline_params=optax.apply_updates(state.baseline_params, updates),
                              baseline_opt_state=opt_state, baseline_batch_stats=stats)
        return state, {"baseline_content": loss}

    def update(self, state: GANState, x: jax.Array, y: jax.Array | None, keys: jax.Array,
               axis_name: str | None = None):
        """Algorithm 1 of Goodfellow et al. 2014, one iteration: `k` discriminator updates, then one
        generator update.

        Args:
          state: `GANState`.
          x: float [B, ...] real minibatch (reused by the k discriminator updates; the content loss's
            target for a translator).
          y: the conditioning of both players (None, int32 labels [B] or input images [B, ...]); the
            fakes get the same y.
          keys: PRNG keys [B], one per example; discriminator update j draws its noise from
            `fold_in(keys, j)`, the generator update from `fold_in(keys, k)`, so example i gets
            the same noise on one device, under pmap or sharded jit.
          axis_name: the device axis (gradients, metrics and batch statistics are averaged over it).

        Returns:
          (new state with step + 1, metrics): `loss` (= `d_loss`, the discriminator loss of the last
          discriminator update: -V in nats for the minimax game), `d_loss`, `g_loss`, `value`
          (= -d_loss), the objective's metrics (minimax: `d_real`, `d_fake`, mean D on data and fakes,
          probabilities), and with a content loss `content`, `g_adversarial` (and `baseline_content`
          with a baseline; the baseline draws the generator phase's noise).
        """
        metrics = {}
        for j in range(self.k):
            state, metrics = self.discriminator_phase(state, x, y, _fold_in(keys, j), axis_name)
        g_keys = _fold_in(keys, self.k)
        state, g_metrics = self.generator_phase(state, y, g_keys, axis_name, x=x)
        if self.baseline:
            state, b_metrics = self.baseline_phase(state, x, y, g_keys, axis_name)
            g_metrics = {**g_metrics, **b_metrics}
        if self.ema_decay:
            d = self.ema_decay
            ema = lambda avg, new: jax.tree_util.tree_map(lambda a, b: d * a + (1.0 - d) * b, avg, new)
            state = state.replace(g_ema_params=ema(state.g_ema_params, state.g_params),
                                  g_ema_batch_stats=ema(state.g_ema_batch_stats, state.g_batch_stats))
        metrics = {"loss": metrics["d_loss"], **metrics, **g_metrics, "value": -metrics["d_loss"]}
        return state.replace(step=state.step + 1), pmean(metrics, axis_name)

    def generate(self, g_params, g_batch_stats, key: jax.Array, num_samples: int,
                 y: jax.Array | None = None) -> jax.Array:
        """The adversarial sampler: z ~ p(z), x = G(z) (batch norm in eval mode).

        Args:
          g_params, g_batch_stats: the generator's variables.
          key: PRNG key (the same key gives the same samples).
          num_samples: static int.
          y: int32 [num_samples] labels for a conditional generator, or None.

        Returns:
          G's output [num_samples, ...] (float, e.g. in [-1, 1] for a tanh output).
        """
        z = self.draw_noise(jax.random.split(key, num_samples))
        out, _ = _apply(self.generator, g_params, g_batch_stats, z, y, train=False)
        return out

    def discriminate(self, d_params, d_batch_stats, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """D's logits [B] (or [B / pack] for a PacGAN D) on `x` (batch norm in eval mode); D(x) = sigmoid of this."""
        out, _ = _apply(self.discriminator, d_params, d_batch_stats, x, y, train=False)
        return out


# -- players for toy problems ---------------------------------------------------------------------
class MLPGenerator(nn.Module):
    """z [B, z_dim] -> x float32 [B, out_dim]: ReLU hidden layers, linear output."""

    hidden: Sequence[int]
    out_dim: int
    axis_name: str | None = None

    @nn.compact
    def __call__(self, z, y=None, train: bool = True):
        h = z
        for width in self.hidden:
            h = nn.relu(Dense(width)(h))
        return Dense(self.out_dim)(h)


class MLPDiscriminator(nn.Module):
    """x [B, d] -> logits float32 [B]: LeakyReLU(0.2) hidden layers, one output logit."""

    hidden: Sequence[int]
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x, y=None, train: bool = True):
        h = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            h = nn.leaky_relu(Dense(width)(h), 0.2)
        return Dense(1)(h)[:, 0]


# -- DCGAN players (Radford et al. 2016, "Architecture guidelines", Sec. 3) -----------------------
def batch_norm(train: bool, axis_name: str | None) -> nn.BatchNorm:
    """The players' batch norm: momentum 0.9, epsilon 1e-5, batch statistics in training (averaged over the
    pmap axis `axis_name`), the running averages otherwise."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, axis_name=axis_name)


def _one_hot(y, num_classes: int):
    return jax.nn.one_hot(y, num_classes, dtype=jnp.float32)


class DCGANGenerator(nn.Module):
    """DCGAN generator: z [B, z_dim] (+ labels) -> images float32 [B, H, W, C] in [-1, 1].

    A dense projection to a (H/2^n, W/2^n, channels[0]) map, then fractionally-strided
    (transposed) 4x4 stride-2 convolutions (`gm_jax.nn.FractionallyStridedConv2D`, the
    function of `flax.linen.ConvTranspose(padding="SAME")` evaluated phase by phase without
    the dilation's zeros, which makes the train step 2.2x faster on CPU), batch norm and ReLU after every layer
    but the output, which is a tanh (Radford et al. 2016). With `num_classes > 0` the one-hot label
    is concatenated to z (Mirza & Osindero 2014, Sec. 3.2).

    Attributes:
      channels: channels of the maps before each upsampling, e.g. (64, 32) for 7x7x64 -> 14x14x32 -> 28x28.
      image_shape: (H, W, C) with H, W divisible by 2^len(channels).
      num_classes: 0 for an unconditional generator.
    """

    channels: Sequence[int]
    image_shape: Sequence[int] = (28, 28, 1)
    num_classes: int = 0
    axis_name: str | None = None

    @nn.compact
    def __call__(self, z, y=None, train: bool = True):
        h_img, w_img, c_img = self.image_shape
        scale = 2 ** len(self.channels)
        if self.num_classes:
            z = jnp.concatenate([z, _one_hot(y, self.num_classes)], axis=-1)
        h = Dense(h_img // scale * w_img // scale * self.channels[0], use_bias=False, kernel_init=dcgan_init)(z)
        h = h.reshape(z.shape[0], h_img // scale, w_img // scale, self.channels[0])
        h = nn.relu(batch_norm(train, self.axis_name)(h))
        for c in self.channels[1:]:
            h = FractionallyStridedConv2D(c, (4, 4), (2, 2), use_bias=False, kernel_init=dcgan_init)(h)
            h = nn.relu(batch_norm(train, self.axis_name)(h))
        h = FractionallyStridedConv2D(c_img, (4, 4), (2, 2), kernel_init=dcgan_init)(h)
        return jnp.tanh(h)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: images [B, H, W, C] in [-1, 1] (+ labels) -> logits float32 [B / pack].

    Strided 4x4 stride-2 convolutions (no pooling), LeakyReLU(0.2), batch norm on every
    layer except the input layer, and a dense logit (Radford et al. 2016). With
    `num_classes > 0` the one-hot label is concatenated to the input as constant feature
    maps and to the features before the logit (Mirza & Osindero 2014).

    With `pack = m > 1` it is a PacGAN discriminator (Lin et al. 2018, "PacGAN: The power
    of two samples in generative adversarial networks", Sec. 3): consecutive groups of m
    examples (independent draws, all real or all fake) are stacked along the channels and
    judged jointly, one logit per pack. A generator that over- or under-produces a mode
    makes packs whose joint distribution differs from the data's by more than single
    examples do (their Sec. 4), which penalises mode imbalance. Only the input layer's
    channels change.

    Attributes:
      channels: channels of each strided convolution, e.g. (32, 64) for 28 -> 14 -> 7.
      num_classes: 0 for an unconditional discriminator.
      pack: examples per logit, m >= 1 (1: the DCGAN discriminator; > 1 unconditional only).

    Raises:
      ValueError: `pack` < 1, `pack` > 1 with `num_classes` > 0, or a batch not divisible by `pack`.
    """

    channels: Sequence[int]
    num_classes: int = 0
    pack: int = 1
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x, y=None, train: bool = True):
        if self.pack < 1 or (self.pack > 1 and self.num_classes):
            raise ValueError(f"pack must be >= 1 and 1 for a conditional discriminator; got pack={self.pack}, "
                             f"num_classes={self.num_classes}")
        h = x
        if self.pack > 1:
            b, *rest = x.shape
            if b % self.pack:
                raise ValueError(f"a PacGAN discriminator with pack={self.pack} needs a batch divisible by {self.pack}, "
                                 f"got {b} examples")
            h = x.reshape(b // self.pack, self.pack, *rest)
            h = jnp.moveaxis(h, 1, -2)  # [B/m, H, W, m, C]
            h = h.reshape(b // self.pack, *rest[:-1], self.pack * rest[-1])
        if self.num_classes:
            onehot = _one_hot(y, self.num_classes)
            h = jnp.concatenate([h, jnp.broadcast_to(onehot[:, None, None, :], (*h.shape[:3], self.num_classes))], -1)
        for i, c in enumerate(self.channels):
            h = Conv(c, (4, 4), strides=(2, 2), padding="SAME", use_bias=i == 0, kernel_init=dcgan_init)(h)
            if i > 0:
                h = batch_norm(train, self.axis_name)(h)
            h = nn.leaky_relu(h, 0.2)
        h = h.reshape(h.shape[0], -1)
        if self.num_classes:
            h = jnp.concatenate([h, onehot], axis=-1)
        return Dense(1, kernel_init=dcgan_init)(h)[:, 0]


def dcgan_optimizer(learning_rate: float = 2e-4, b1: float = 0.5,
                    decay_steps: int | None = None) -> optax.GradientTransformation:
    """Adam(2e-4, beta1 = 0.5), the DCGAN setting (Radford et al. 2016, Sec. 4).

    With `decay_steps`, the learning rate decays linearly from `learning_rate` to 0 over
    that many updates of this optimizer (an addition to the paper's constant rate).
    """
    if decay_steps:
        return optax.adam(optax.linear_schedule(learning_rate, 0.0, int(decay_steps)), b1=b1)
    return optax.adam(learning_rate, b1=b1)


def to_uint8(images: jax.Array) -> jax.Array:
    """Images in [-1, 1] (float) -> uint8 in 0..255 (rounded, clipped)."""
    return jnp.clip(jnp.round((images + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def from_uint8(images: jax.Array) -> jax.Array:
    """uint8 0..255 images -> float32 in [-1, 1] (the tanh generator's range)."""
    return jnp.asarray(images, jnp.float32) / 127.5 - 1.0
