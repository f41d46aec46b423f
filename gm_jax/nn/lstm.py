"""The LSTM: one update (`lstm_step`), a flax cell with `flax.linen.OptimizedLSTMCell`'s parameters
(`LSTMCell`), and the recurrence over time with its own backward pass (`lstm_scan`).

LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000), flax's gate order:

    z = x W + h_{t-1} U + b,  [i, f, g, o] = z split in four,
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g),  h_t = sigmoid(o) tanh(c_t).

`lstm_scan` computes the same values as a `lax.scan` of `lstm_step` (tested, values and gradients), with
a backward pass written out (Graves 2012, "Supervised Sequence Labelling with Recurrent Neural Networks",
Sec. 4.6) so that the loop holds only what must be sequential: each backward step computes the gate
gradients dz_t and dh_{t-1} = dz_t U^T; the kernel gradients dW = X^T dZ and dU = H_{t-1}^T dZ, the bias
gradient and the input gradient dX = dZ W^T are one product each over all T N rows after the loop
(as cuDNN's RNN backward-weights pass does). Every product takes row-major operands ([M, K] x [K, N]):
the transposed operands (U^T, W^T, X^T, H^T) are materialized first, which puts each product on XLA:CPU's
fast (YNNPACK) dot instead of its own dot with a transposed operand. The input product x_t W stays in
the loop: a slice of an input projection hoisted before the loop, fused into the gate computation, made
that fusion several times slower on XLA:CPU. Measurements in the README ("Against PyTorch").
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.recurrent import DenseParams

GATES = ("i", "f", "g", "o")


def lstm_weights(cell_params, dtype=None):
    """The kernels of `LSTMCell` (or `flax.linen.OptimizedLSTMCell`) parameters, concatenated in gate order
    i, f, g, o: (W float [D, 4H], U float [H, 4H], b float [4H]), cast to `dtype` (default: their own).

    Raises:
      ValueError: `cell_params` lacks one of the eight kernels or four biases (names "ii" .. "ho").
    """
    names = [f"{s}{g}" for s in "ih" for g in GATES]
    missing = [n for n in names if n not in cell_params or "kernel" not in cell_params[n]]
    missing += [f"h{g}/bias" for g in GATES if f"h{g}" in cell_params and "bias" not in cell_params[f"h{g}"]]
    if missing:
        raise ValueError(f"not LSTM cell parameters: missing {missing} (expected the kernels {names} and "
                         f"the biases of {names[4:]}, as flax.linen.OptimizedLSTMCell names them)")
    cast = (lambda a: a) if dtype is None else (lambda a: jnp.asarray(a).astype(dtype))
    w = jnp.concatenate([cast(cell_params[f"i{g}"]["kernel"]) for g in GATES], axis=-1)
    u = jnp.concatenate([cast(cell_params[f"h{g}"]["kernel"]) for g in GATES], axis=-1)
    b = jnp.concatenate([cast(cell_params[f"h{g}"]["bias"]) for g in GATES], axis=-1)
    return w, u, b


def _activations(z):
    i, f, g, o = jnp.split(z, 4, axis=-1)
    return jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)


def _update(z, c):
    """(c_t, h_t) from the pre-activations z [..., 4H] and c_{t-1} [..., H]."""
    i, f, g, o = _activations(z)
    c = f * c + i * g
    return c, o * jnp.tanh(c)


def lstm_step(w, u, b, x, c, h):
    """One LSTM update (the module docstring's equations): x float [..., D], c and h float [..., H];
    w [D, 4H], u [H, 4H], b [4H] (`lstm_weights`). Returns (c_t, h_t), each [..., H]."""
    return _update(x @ w + h @ u + b, c)


class LSTMCell(nn.Module):
    """An LSTM cell with `flax.linen.OptimizedLSTMCell`'s parameters (the same names, shapes and
    initializers: lecun-normal input kernels, orthogonal recurrent kernels, zero biases; its checkpoints
    load), computed by `lstm_step`: `cell(carry, x)` with carry (c, h) float [..., features] and x
    float [..., D] returns ((c_t, h_t), h_t), in the promoted dtype of x, h and the parameters."""

    features: int

    @nn.compact
    def __call__(self, carry, inputs):
        c, h = carry
        params = {}
        for g in GATES:
            params[f"i{g}"] = {"kernel": DenseParams(self.features, use_bias=False, name=f"i{g}")(inputs)[0]}
        for g in GATES:
            kernel, bias = DenseParams(self.features, use_bias=True, kernel_init=nn.initializers.orthogonal(),
                                       bias_init=nn.initializers.zeros_init(), name=f"h{g}")(h)
            params[f"h{g}"] = {"kernel": kernel, "bias": bias}
        dtype = jnp.result_type(inputs, h, *(p for d in params.values() for p in d.values()))
        c, h = lstm_step(*lstm_weights(params, dtype), inputs.astype(dtype), c.astype(dtype), h.astype(dtype))
        return (c, h), h


def _check(w, u, b, xs, c0, h0):
    if xs.ndim != 3 or w.ndim != 2 or u.ndim != 2 or b.ndim != 1:
        raise ValueError(f"lstm_scan takes xs [T, N, D], w [D, 4H], u [H, 4H], b [4H]; got xs {xs.shape}, "
                         f"w {w.shape}, u {u.shape}, b {b.shape}")
    t, n, d = xs.shape
    hdim = u.shape[0]
    if w.shape != (d, 4 * hdim) or u.shape != (hdim, 4 * hdim) or b.shape != (4 * hdim,):
        raise ValueError(f"lstm_scan: with D = {d} inputs and H = {hdim} units, w must be {(d, 4 * hdim)}, "
                         f"u {(hdim, 4 * hdim)}, b {(4 * hdim,)}; got {w.shape}, {u.shape}, {b.shape}")
    if c0.shape != (n, hdim) or h0.shape != (n, hdim):
        raise ValueError(f"lstm_scan: the initial state must be [N, H] = {(n, hdim)}; got c0 {c0.shape}, "
                         f"h0 {h0.shape}")


def lstm_scan(w, u, b, xs, c0, h0):
    """The LSTM over time: h_t, c_t = `lstm_step`(x_t, c_{t-1}, h_{t-1}) for t = 1 .. T, with the backward
    pass of the module docstring.

    Args:
      w, u, b: float [D, 4H], [H, 4H], [4H] (`lstm_weights`).
      xs: float [T, N, D], time first.
      c0, h0: float [N, H], the initial state.

    Returns:
      ((c_T, h_T) [N, H] each, hs [T, N, H]), in the promoted dtype of the arguments (all are cast to it).

    Raises:
      ValueError: shapes that do not fit together (named in the message).
    """
    _check(w, u, b, xs, c0, h0)
    dtype = jnp.result_type(w, u, b, xs, c0, h0)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"lstm_scan computes in a float dtype; got {dtype} (embed or cast the inputs first)")
    w, u, b, xs, c0, h0 = (jnp.asarray(a).astype(dtype) for a in (w, u, b, xs, c0, h0))
    if xs.shape[0] == 0:
        return (c0, h0), jnp.zeros((0,) + h0.shape, dtype)
    return _lstm_scan(w, u, b, xs, c0, h0)


def _transposed(a):
    """a^T as a materialized copy: the barrier keeps XLA from folding the transpose into the consuming
    dot's dimension numbers (a transposed operand, which XLA:CPU runs on its own slower dot)."""
    return jax.lax.optimization_barrier(jnp.swapaxes(a, -1, -2))


@jax.custom_vjp
def _lstm_scan(w, u, b, xs, c0, h0):
    return _lstm_scan_fwd(w, u, b, xs, c0, h0)[0]


def _lstm_scan_fwd(w, u, b, xs, c0, h0):
    def body(state, x_t):
        c, h = state
        z = x_t @ w + h @ u + b  # `lstm_step`, keeping z for the backward pass
        c, h = _update(z, c)
        return (c, h), (h, c, z)

    (c, h), (hs, cs, zs) = jax.lax.scan(body, (c0, h0), xs)
    return ((c, h), hs), (w, u, xs, c0, h0, hs, cs, zs)


def _lstm_scan_bwd(residuals, cotangents):
    w, u, xs, c0, h0, hs, cs, zs = residuals
    (dc_last, dh_last), dhs = cotangents
    t, n, d = xs.shape
    c_prev = jnp.concatenate([c0[None], cs[:-1]], axis=0)
    u_t = _transposed(u)  # [4H, H]

    def body(carry, inp):
        dc, dh = carry
        dh_out, z, c, cp = inp
        i, f, g, o = _activations(z)
        dh = dh + dh_out
        tc = jnp.tanh(c)
        dc = dc + dh * o * (1 - tc * tc)
        dz = jnp.concatenate([dc * g * i * (1 - i), dc * cp * f * (1 - f), dc * i * (1 - g * g),
                              dh * tc * o * (1 - o)], axis=-1)
        return (dc * f, dz @ u_t), dz

    (dc0, dh0), dzs = jax.lax.scan(body, (dc_last, dh_last), (dhs, zs, cs, c_prev), reverse=True)
    dz = dzs.reshape(t * n, -1)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0).reshape(t * n, -1)
    du = _transposed(h_prev) @ dz
    dw = _transposed(xs.reshape(t * n, d)) @ dz
    dxs = (dz @ _transposed(w)).reshape(t, n, d)
    return dw, du, dz.sum(axis=0), dxs, dc0, dh0


_lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)
