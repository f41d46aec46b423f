"""Property checks shared by the model tests (one way to test each property).

* `assert_autoregressive(logits_fn, x, order)`: output position i depends only
  on inputs before i in the sampling order (causality, by the Jacobian).
* `assert_cached_equals_naive(naive, cached, *args)`: a cached sampler draws
  exactly the naive sampler's values for the same key.
* `assert_bijector(forward, inverse, x)`: inverse(forward(x)) == x and the
  log-det equals log |det J| of the forward map (by autodiff).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def assert_autoregressive(logits_fn, x, num_positions: int | None = None, atol: float = 0.0):
    """Check that output position i of `logits_fn` depends on input positions < i only.

    Args:
      logits_fn: float inputs [1, L, ...] (positions on axis 1, in sampling
        order; flatten images to raster order first) -> outputs [1, L, ...].
      x: one example [1, L, ...] (float) at which the Jacobian is taken.
      num_positions: check the first this many output positions (default all).
      atol: largest allowed |d out_i / d x_j| for j >= i.

    Raises:
      AssertionError: naming the first output position that sees its own or a later input.
    """
    x = jnp.asarray(x, jnp.float32)
    length = x.shape[1]
    num_positions = length if num_positions is None else num_positions

    def out_i(x, i):
        return jnp.sum(jnp.abs(jax.lax.dynamic_index_in_dim(logits_fn(x), i, 1, keepdims=False)))

    grad = jax.jit(jax.grad(out_i), static_argnums=())
    for i in range(num_positions):
        g = np.abs(np.asarray(grad(x, i)))  # [1, L, ...]
        per_position = g.reshape(length, -1).max(axis=1)
        leaks = np.nonzero(per_position[i:] > atol)[0]
        assert not leaks.size, f"output position {i} depends on input position {i + leaks[0]} (not before {i})"


def assert_cached_equals_naive(naive, cached, *args, **kwargs):
    """`naive(*args, **kwargs)` and `cached(*args, **kwargs)` give identical arrays (same key inside args).

    Returns:
      the (common) samples, as a NumPy array.
    """
    a, b = np.asarray(naive(*args, **kwargs)), np.asarray(cached(*args, **kwargs))
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    mismatch = np.argwhere(a != b)
    assert not mismatch.size, f"cached and naive samples differ at {len(mismatch)} entries, first {mismatch[0]}"
    return a


def assert_bijector(forward, inverse, x, rtol: float = 1e-4, atol: float = 1e-4, check_log_det: bool = True):
    """Check an invertible map with log-determinant.

    Args:
      forward: x [N, ...] -> (y [N, ...], log_det [N]) (log |det dy/dx| per example, nats).
      inverse: y -> (x, log_det of the inverse [N]).
      x: a float batch [N, ...]; keep N * dim small when `check_log_det` (the
        full Jacobian of one example is formed).

    Raises:
      AssertionError: the round trip, the inverse log-det or the forward log-det is off.
    """
    x = jnp.asarray(x, jnp.float32)
    y, ld = forward(x)
    x2, ild = inverse(y)
    np.testing.assert_allclose(np.asarray(x2), np.asarray(x), rtol=rtol, atol=atol, err_msg="inverse(forward(x)) != x")
    np.testing.assert_allclose(np.asarray(ild), -np.asarray(ld), rtol=rtol, atol=atol,
                               err_msg="inverse log-det != -forward log-det")
    if not check_log_det:
        return
    for n in range(x.shape[0]):
        def f(v, n=n):
            return forward(x.at[n].set(v.reshape(x.shape[1:])))[0][n].reshape(-1)

        jac = jax.jacfwd(f)(x[n].reshape(-1))
        _, logabsdet = np.linalg.slogdet(np.asarray(jac, np.float64))
        np.testing.assert_allclose(float(ld[n]), logabsdet, rtol=rtol, atol=max(atol, 1e-3),
                                   err_msg=f"log-det of example {n} != log |det J|")


def random_params(model, *inputs, scale: float = 0.3, shrink: tuple[str, ...] = (), seed: int = 0):
    """Random parameters of `model` with no zero taps: kernels ~ N(0, 1/fan_in + scale^2), biases and vectors
    ~ N(0, scale^2); the leaves under the top-level layers named in `shrink` are scaled by 0.05 (so that
    binary draws are mixed 0s and 1s).

    Drawn with numpy from the shapes of `model.init(key, *inputs)` (`jax.eval_shape`: no eager init, which
    compiles one random-initialiser program per parameter shape, ~10 s for PixelCNN++)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(seed), *inputs))["params"]
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        var = scale ** 2 + (1.0 / np.prod(leaf.shape[:-1]) if len(leaf.shape) > 1 else 0.0)
        v = rng.normal(0.0, np.sqrt(var), leaf.shape) * (0.05 if path[0].key in shrink else 1.0)
        return jnp.asarray(v, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


D_FIELDS = ("d_params", "d_opt_state", "d_batch_stats")
G_FIELDS = ("g_params", "g_opt_state", "g_batch_stats")


def trees_differ(a, b) -> bool:
    """Whether two pytrees of arrays (same structure) differ in any leaf."""
    return any(not np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def assert_updates_only(before, after, changed, unchanged) -> None:
    """A two-player (or more) step changed the state fields `changed` (each in some leaf; an empty tree, such
    as the batch statistics of a player without batch norm, must stay empty) and left the fields `unchanged`
    bit-equal: each adversarial phase updates only its own player."""
    for field in changed:
        old, new = getattr(before, field), getattr(after, field)
        assert trees_differ(new, old) or not jax.tree_util.tree_leaves(old), f"{field} did not change"
    for field in unchanged:
        assert not trees_differ(getattr(after, field), getattr(before, field)), f"{field} changed"
