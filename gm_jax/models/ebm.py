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

Short-run training (Nijkamp et al. 2019, "Learning Non-Convergent
Non-Persistent Short-Run MCMC Toward Energy-Based Model", Algorithm 1) is the
same update with step 1 replaced by fresh draws of a fixed initial
distribution p0 (no buffer): the K-step chain from p0 is then itself the
sampler the loss fits to the data, used as is for sampling.

The update itself, with its replay buffer and the averaging over devices
under pmap, is `gm_jax.recipes.energy.EBMExperiment.update`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax.nn import Conv, Dense


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
            h = nn.swish(Dense(width)(h))
        return Dense(1)(h)[:, 0]


class EnergyCNN(nn.Module):
    """E(x) for images x float [B, H, W, C] in [0, 1]: stride-2 convolutions with swish, then a linear energy.

    (A small version of Du & Mordatch's ResNet energy; no normalisation layers, which they found to hurt.)
    """

    channels: Sequence[int] = (32, 64, 128)

    @nn.compact
    def __call__(self, x):
        h = nn.swish(Conv(self.channels[0], (3, 3))(x))
        for c in self.channels:
            h = nn.swish(Conv(c, (4, 4), strides=(2, 2))(h))
        h = h.reshape(h.shape[0], -1)
        return Dense(1)(h)[:, 0]
