"""Energy-based models trained by contrastive divergence with Langevin sampling (Du & Mordatch 2019,
"Implicit Generation and Generalization with Energy-Based Models").

The model is an unnormalised density p(x) ∝ exp(-E(x)) given by an energy
network E: R^D -> R (`EnergyMLP` for points, `EnergyCNN` for images). Its
normaliser is intractable, so `log_prob` is not available; `energy` is.

Sampling: stochastic gradient Langevin dynamics (Welling & Teh 2011; Du &
Mordatch Eq. 2), K steps of

    x <- x - (eps / 2) grad_x E(x) + noise_scale * sqrt(eps) * n,    n ~ N(0, I),

as one jitted `lax.scan` (`langevin`). `noise_scale = 1` is exact SGLD (the
chain targets exp(-E)); Du & Mordatch use a smaller noise than that for
images (their "temperature"), which `noise_scale < 1` gives. Optionally each
step's x is clipped to a box (`clip`: the data range).

Training (Du & Mordatch Algorithm 1, Sec. 3.3-3.4), one update:

1. draw the starting points of the negative chains from a replay buffer of
   past samples, each re-initialised from uniform noise with probability
   `reinit_prob` (0.05 in the paper);
2. run K Langevin steps from them (no gradient through the chain) -> x-;
3. descend the contrastive-divergence loss with the energy-magnitude
   regulariser (Du & Mordatch Eq. 4 and Sec. 3.4 "regularization"):

       L = mean E(x+) - mean E(x-) + alpha * (mean E(x+)^2 + mean E(x-)^2),

   with x+ a data batch;
4. write x- back into the buffer at the slots it came from.

Under pmap each device runs its share of the chains, gradients and metrics
are averaged and the buffer writes are gathered, so every replica keeps the
same buffer and the update equals the single-device one.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from gm_jax import viz
from gm_jax.experiment import Experiment as _BaseExperiment
from gm_jax.training.steps import pmean


def check_langevin(step_size: float, noise_scale: float, num_steps: int) -> None:
    """Raises ValueError unless step_size > 0, noise_scale >= 0 and num_steps >= 1 (concrete Python numbers)."""
    if not step_size > 0:
        raise ValueError(f"the Langevin step size must be positive, got {step_size}")
    if not noise_scale >= 0:
        raise ValueError(f"the Langevin noise scale must be >= 0, got {noise_scale}")
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"the number of Langevin steps must be a positive int, got {num_steps}")


def langevin(energy_fn: Callable[[jax.Array], jax.Array], x0: jax.Array, key: jax.Array, step_size: float,
             num_steps: int, noise_scale: float = 1.0, clip: tuple[float, float] | None = None,
             return_trajectory: bool = False):
    """Stochastic gradient Langevin dynamics from x0 (Du & Mordatch 2019, Eq. 2), one `lax.scan`.

    Args:
      energy_fn: x [B, ...] -> energies [B] (the gradient is taken of their sum,
        so each chain moves along its own dE/dx).
      x0: float [B, ...] starting points.
      key: a PRNG key (step k draws all the noise from `fold_in(key, k)`), or one key per chain
        (shape [B]; chain i's noise at step k from `fold_in(key[i], k)`, so a chain does not depend on
        how the batch is split over devices).
      step_size: eps > 0 (checked when a Python number).
      num_steps: K >= 1 (static).
      noise_scale: multiplies the sqrt(eps) noise (1 = exact SGLD).
      clip: optional (low, high) box every iterate is clipped to.
      return_trajectory: also return every iterate.

    Returns:
      x_K float32 [B, ...] (and the iterates [K, B, ...] when `return_trajectory`).

    Raises:
      ValueError: a non-positive step size, negative noise scale or bad K.
    """
    if isinstance(step_size, (int, float)) and isinstance(noise_scale, (int, float)):
        check_langevin(step_size, noise_scale, num_steps)
    grad = jax.grad(lambda x: jnp.sum(energy_fn(x)))
    sqrt_eps = jnp.sqrt(jnp.asarray(step_size, jnp.float32))

    per_chain = jnp.ndim(key) > 0

    def step(x, k):
        if per_chain:
            n = jax.vmap(lambda kk: jax.random.normal(jax.random.fold_in(kk, k), x.shape[1:], x.dtype))(key)
        else:
            n = jax.random.normal(jax.random.fold_in(key, k), x.shape, x.dtype)
        x = x - 0.5 * step_size * grad(x) + noise_scale * sqrt_eps * n
        if clip is not None:
            x = jnp.clip(x, clip[0], clip[1])
        return x, (x if return_trajectory else None)

    x, traj = jax.lax.scan(step, jnp.asarray(x0, jnp.float32), jnp.arange(num_steps))
    return (x, traj) if return_trajectory else x


def cd_loss(energy_fn: Callable[[jax.Array], jax.Array], x_pos: jax.Array, x_neg: jax.Array, alpha: float):
    """Contrastive divergence with the energy-magnitude regulariser (Du & Mordatch Sec. 3.3-3.4).

    Returns:
      (loss, metrics): loss = mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2);
      metrics `cd` (the first two terms), `energy_pos`, `energy_neg`, `reg`.
    """
    e_pos, e_neg = energy_fn(x_pos), energy_fn(jax.lax.stop_gradient(x_neg))
    cd = jnp.mean(e_pos) - jnp.mean(e_neg)
    reg = jnp.mean(e_pos**2) + jnp.mean(e_neg**2)
    return cd + alpha * reg, {"cd": cd, "energy_pos": jnp.mean(e_pos), "energy_neg": jnp.mean(e_neg), "reg": reg}


class EnergyMLP(nn.Module):
    """E(x) for points x float [B, D]: an MLP with swish activations -> energies float32 [B]."""

    hidden: Sequence[int] = (128, 128, 128)

    @nn.compact
    def __call__(self, x):
        h = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            h = nn.swish(nn.Dense(width)(h))
        return nn.Dense(1)(h)[:, 0]


class EnergyCNN(nn.Module):
    """E(x) for images x float [B, H, W, C] in [0, 1]: stride-2 convolutions with swish, then a linear energy.

    (A small version of Du & Mordatch's ResNet energy; no normalisation layers, which they found to hurt.)
    """

    channels: Sequence[int] = (32, 64, 128)

    @nn.compact
    def __call__(self, x):
        h = nn.swish(nn.Conv(self.channels[0], (3, 3))(x))
        for c in self.channels:
            h = nn.swish(nn.Conv(c, (4, 4), strides=(2, 2))(h))
        h = h.reshape(h.shape[0], -1)
        return nn.Dense(1)(h)[:, 0]


class EBMState(TrainState):
    """TrainState plus the replay buffer float32 [buffer_size, *data_shape] of past negative samples."""

    buffer: jax.Array = None


class EBMExperiment(_BaseExperiment):
    """Base of the EBM experiments: state `EBMState`, update = one step of Du & Mordatch Algorithm 1.

    Config fields used: `step_size`, `noise_scale`, `langevin_steps` (training
    chains), `sample_steps` (chains of `sample`, from uniform noise),
    `buffer_size`, `reinit_prob`, `alpha` (energy regulariser),
    `learning_rate`, `beta1`, `beta2`, `grad_clip`.
    Subclasses set `self.net` (a Linen module x [B, ...] -> [B]), `self.box`
    ((low, high): uniform-noise range and Langevin clip) and define
    `positive(batch)` -> x+ float32 [B, *data_shape].
    `params_of(state)` is the energy network's parameters.
    """

    net: nn.Module
    box: tuple[float, float]

    def __init__(self, config):
        super().__init__(config)
        check_langevin(config.step_size, config.noise_scale, config.langevin_steps)
        check_langevin(config.step_size, config.noise_scale, config.sample_steps)
        if config.buffer_size < config.batch_size or not 0 <= config.reinit_prob <= 1 or config.alpha < 0:
            raise ValueError(f"need buffer_size >= batch_size, reinit_prob in [0, 1] and alpha >= 0; got "
                             f"{config.buffer_size}, {config.reinit_prob}, {config.alpha}")

    # -- pure functions ---------------------------------------------------------------------------
    def energy(self, params, x: jax.Array) -> jax.Array:
        """E(x): float32 [B] for x float [B, *data_shape] (the model's own form)."""
        return self.net.apply({"params": params}, jnp.asarray(x, jnp.float32))

    def noise(self, key: jax.Array, n: int) -> jax.Array:
        """Uniform noise over the data box: float32 [n, *data_shape]."""
        return jax.random.uniform(key, (n, *self.data_shape), jnp.float32, *self.box)

    def optimizer(self) -> optax.GradientTransformation:
        c = self.config
        tx = optax.adam(c.learning_rate, b1=c.beta1, b2=c.beta2)
        return optax.chain(optax.clip_by_global_norm(c.grad_clip), tx) if c.grad_clip > 0 else tx

    def init_params(self, key: jax.Array):
        return self.net.init(key, jnp.zeros((1, *self.data_shape), jnp.float32))["params"]

    def init_state(self, key: jax.Array) -> EBMState:
        k_param, k_buf = jax.random.split(key)
        return EBMState.create(apply_fn=None, params=self.init_params(k_param), tx=self.optimizer(),
                               buffer=self.noise(k_buf, self.config.buffer_size))

    def chains(self, params, x0: jax.Array, key: jax.Array, num_steps: int, **kw):
        """Langevin chains from x0 with the config's step size, noise scale and box."""
        c = self.config
        return langevin(lambda x: self.energy(params, x), x0, key, c.step_size, num_steps, c.noise_scale,
                        self.box, **kw)

    def update(self, state: EBMState, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """One step of Du & Mordatch Algorithm 1 (see the module docstring)."""
        c = self.config
        b = keys.shape[0]
        k = jax.vmap(lambda kk: jax.random.split(kk, 4))(keys)  # per example: slot, reinit coin, noise, chain
        idx = jax.vmap(lambda kk: jax.random.randint(kk, (), 0, c.buffer_size))(k[:, 0])
        reinit = jax.vmap(lambda kk: jax.random.uniform(kk) < c.reinit_prob)(k[:, 1])
        fresh = jax.vmap(lambda kk: self.noise(kk, 1)[0])(k[:, 2])
        x0 = jnp.where(reinit.reshape((b,) + (1,) * len(self.data_shape)), fresh, state.buffer[idx])
        x_neg = jax.lax.stop_gradient(self.chains(state.params, x0, k[:, 3], c.langevin_steps))
        x_pos = self.positive(batch)
        (loss, metrics), grads = jax.value_and_grad(
            lambda p: cd_loss(lambda x: self.energy(p, x), x_pos, x_neg, c.alpha), has_aux=True)(state.params)
        grads, metrics = pmean((grads, {"loss": loss, **metrics}), axis_name)
        if axis_name:
            idx = jax.lax.all_gather(idx, axis_name, tiled=True)
            x_neg = jax.lax.all_gather(x_neg, axis_name, tiled=True)
        state = state.apply_gradients(grads=grads)
        return state.replace(buffer=state.buffer.at[idx].set(x_neg)), metrics

    def positive(self, batch: dict) -> jax.Array:
        raise NotImplementedError

    def sample(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """`sample_steps` Langevin steps from uniform noise over the data box: float32 [num_samples, *data_shape]."""
        k0, k1 = jax.random.split(key)
        return self.chains(params, self.noise(k0, num_samples), k1, self.config.sample_steps)

    def log_prob(self, params, x, key=None):
        raise NotImplementedError(
            f"{self.name} is an energy-based model: p(x) = exp(-E(x)) / Z with an intractable normaliser Z, "
            "so log_prob is not available; use Experiment.energy(params, x) (unnormalised, nats up to log Z)")


def save_training_curves(metrics_path, path, title: str = "") -> None:
    """Plot the CD loss and the mean energies of data and negatives (metrics.jsonl) against the update."""
    viz.save_metric_curves(metrics_path, path, (("loss", "loss"), ("energy_pos", "mean E(data)"),
                                                ("energy_neg", "mean E(negatives)")),
                           "update", "energy (nats, up to log Z)", title)
