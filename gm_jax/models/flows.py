"""Normalizing flows: RealNVP (Dinh et al. 2017) and Glow (Kingma & Dhariwal 2018).

Every bijector is a Flax Linen module with one interface (the distrax naming):

    y, log_det = module.apply(variables, x, method="forward_and_log_det")
    x, log_det_inv = module.apply(variables, y, method="inverse_and_log_det")

`x`, `y` have a leading batch axis [B, ...]; `log_det` is float32 [B], the log
absolute Jacobian determinant log|det dy/dx| of each example (and
`log_det_inv = log|det dx/dy| = -log_det` at the matching point). Internally
every bijector is one compact `__call__(x, inverse=False)`, so the forward and
inverse directions share their parameters by construction.

Bijectors:

* `ActNorm` (Glow Sec. 3.1): per-channel affine `y = (x + loc) * exp(log_scale)`,
  with data-dependent initialisation: `module.init(key, x_batch)` sets `loc`
  and `log_scale` so that the init batch comes out with zero mean and unit
  variance per channel (the init is a pure function of the batch: the
  parameter initialisers read the activations flowing through `init`).
* `Invertible1x1Conv` (Glow Sec. 3.2): `y = x W` over channels, W initialised to
  a random rotation, log-det `H W log|det W|`; `Invertible1x1ConvLU`: the
  LU-decomposed `W = P L (U + diag(sign(s) exp(log_s)))` with P and sign(s)
  fixed (they are stored in the params but behind `stop_gradient`, so Adam
  never moves them), log-det `H W sum(log_s)` (Glow Eq. 10).
* `AffineCoupling` (RealNVP Eqs. 7-9, Glow Sec. 3.3): `y_b = x_b exp(s(x_a)) + t(x_a)`
  with `s = scale * tanh(.)` (RealNVP), or `y_b = (x_b + t(x_a)) exp(s(x_a))` with
  `s = log sigmoid(. + 2)` (Glow's code; the shift-first order keeps the float32 inverse
  accurate), with a checkerboard or a channel-wise mask; the conditioner's last layer is
  zero-initialised, so a coupling starts near the identity.
* `Squeeze` (RealNVP Sec. 3.6): [B, H, W, C] -> [B, H/2, W/2, 4C].
* `Logit` (RealNVP Sec. 4.1 preprocessing): `y = logit(alpha + (1 - 2 alpha) x)`
  for x in [0, 1].
* `Chain`: composition; `MultiScale` (RealNVP Sec. 3.6, Glow Fig. 2): levels
  with half of the channels factored out after every level but the last; maps
  an image [B, H, W, C] to the concatenation of all latents [B, H W C].

Densities (exact, change of variables with a standard normal base):
`log p(x) = log N(f(x); 0, I) + log|det df/dx|` (`log_prob`). For 8-bit images,
`dequantize` gives `x~ = (x + u) / 256`, u ~ U[0, 1)^D, and `bits_per_dim`
turns the density of x~ on [0, 1]^D into bits per dimension of the 8-bit data,
`(-log p(x~) + D ln 256) / (D ln 2)` (Theis et al. 2016; the `D ln 256` is the
change of scale from [0, 1] to [0, 256]). `sample` draws z ~ N(0, T^2 I) and
returns `f^{-1}(z)` (T is the temperature of Glow Sec. 5).

The image experiments (`experiments.realnvp_mnist`, `experiments.glow_mnist`)
are built on `gm_jax.recipes.images.ImageFlowExperiment`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import gm_jax.distributions as distributions

from gm_jax.nn import Conv, Dense

LN256 = math.log(256.0)


def _sum_except_batch(x: jax.Array) -> jax.Array:
    return jnp.sum(x.reshape(x.shape[0], -1), axis=1)


def _positions(x: jax.Array) -> int:
    """Number of positions a per-channel map acts on: prod of the axes between batch and channels."""
    return int(np.prod(x.shape[1:-1])) if x.ndim > 2 else 1


class Bijector(nn.Module):
    """Base class: subclasses implement `__call__(x, inverse=False) -> (y, log_det [B])`."""

    def forward_and_log_det(self, x: jax.Array):
        """y = f(x) and log|det df/dx| per example: ([B, ...], float32 [B])."""
        return self(x, inverse=False)

    def inverse_and_log_det(self, y: jax.Array):
        """x = f^{-1}(y) and log|det df^{-1}/dy| per example: ([B, ...], float32 [B])."""
        return self(y, inverse=True)


class ActNorm(Bijector):
    """Per-channel affine map with data-dependent init (Glow Sec. 3.1, Table 1 row 1).

    `y = (x + loc) * exp(log_scale)`, log-det `positions * sum(log_scale)`.
    `init` (forward direction) sets `loc = -mean(x)` and `log_scale = -log(std(x))`
    over all but the channel axis of the init batch, so the init batch comes
    out with zero mean and unit variance per channel.

    Attributes:
      min_std: floor on the init std (a constant channel would otherwise give an infinite scale).
    """

    min_std: float = 1e-3

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        axes = tuple(range(x.ndim - 1))
        loc = self.param("loc", lambda _: -jnp.mean(x, axes))
        log_scale = self.param("log_scale", lambda _: -jnp.log(jnp.maximum(jnp.std(x, axes), self.min_std)))
        ld = _positions(x) * jnp.sum(log_scale) * jnp.ones(x.shape[:1], x.dtype)
        if not inverse:
            return (x + loc) * jnp.exp(log_scale), ld
        return x * jnp.exp(-log_scale) - loc, -ld


def _random_rotation(key, shape, dtype=jnp.float32):
    q, _ = jnp.linalg.qr(jax.random.normal(key, shape, dtype))
    return q


class Invertible1x1Conv(Bijector):
    """Invertible 1x1 convolution `y = x W` over the channel axis (Glow Sec. 3.2, Eq. 9).

    W [C, C] starts as a random rotation; log-det `positions * log|det W|`.
    Works on images [B, H, W, C] and vectors [B, C].
    """

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        c = x.shape[-1]
        w = self.param("kernel", _random_rotation, (c, c))
        ld = _positions(x) * jnp.linalg.slogdet(w)[1] * jnp.ones(x.shape[:1], x.dtype)
        if not inverse:
            return x @ w, ld
        return x @ jnp.linalg.inv(w), -ld


class Invertible1x1ConvLU(Bijector):
    """LU-decomposed invertible 1x1 convolution (Glow Sec. 3.2, Eq. 10).

    `W = P L (U + diag(sign_s * exp(log_s)))` with L unit lower triangular and U
    strictly upper triangular; initialised from the LU decomposition of a random
    rotation. P and sign_s are kept in the params (under `lu`) for checkpointing
    but pass through `stop_gradient`, so they stay fixed. Log-det
    `positions * sum(log_s)`.
    """

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        c = x.shape[-1]

        def init(key):
            p, lower, upper = jax.scipy.linalg.lu(_random_rotation(key, (c, c)))
            s = jnp.diag(upper)
            return {"p": p, "l": jnp.tril(lower, -1), "u": jnp.triu(upper, 1),
                    "sign_s": jnp.sign(s), "log_s": jnp.log(jnp.abs(s))}

        lu = self.param("lu", init)
        p, sign_s = jax.lax.stop_gradient(lu["p"]), jax.lax.stop_gradient(lu["sign_s"])
        lower = jnp.tril(lu["l"], -1) + jnp.eye(c, dtype=x.dtype)
        upper = jnp.triu(lu["u"], 1) + jnp.diag(sign_s * jnp.exp(lu["log_s"]))
        ld = _positions(x) * jnp.sum(lu["log_s"]) * jnp.ones(x.shape[:1], x.dtype)
        if not inverse:
            return x @ (p @ lower @ upper), ld
        # W^-1 = U^-1 L^-1 P^T by triangular solves
        l_inv_pt = jax.scipy.linalg.solve_triangular(lower, p.T, lower=True, unit_diagonal=True)
        w_inv = jax.scipy.linalg.solve_triangular(upper, l_inv_pt, lower=False)
        return x @ w_inv, -ld


class Conditioner(nn.Module):
    """The s, t network of a coupling layer: a small conv net for images, an MLP for vectors.

    Images: conv3x3(hidden) - ReLU - conv1x1(hidden) - ReLU - conv3x3(2 * out), the
    last one zero-initialised (Glow's NN(), without its actnorms). Vectors:
    `num_layers` Dense(hidden)-ReLU and a zero-initialised Dense(2 * out).
    Returns the raw (pre-scale) log-scale and the shift, each [..., out].
    """

    out: int
    hidden: int = 64
    num_layers: int = 2

    @nn.compact
    def __call__(self, h):
        zeros = nn.initializers.zeros
        if h.ndim == 4:
            h = nn.relu(Conv(self.hidden, (3, 3))(h))
            for _ in range(self.num_layers - 1):
                h = nn.relu(Conv(self.hidden, (1, 1))(h))
            h = Conv(2 * self.out, (3, 3), kernel_init=zeros, bias_init=zeros)(h)
        else:
            for _ in range(self.num_layers):
                h = nn.relu(Dense(self.hidden)(h))
            h = Dense(2 * self.out, kernel_init=zeros, bias_init=zeros)(h)
        return h[..., : self.out], h[..., self.out:]


class AffineCoupling(Bijector):
    """Affine coupling layer (RealNVP Eqs. 7-9 with masks; Glow Sec. 3.3).

    `y = x_a` on the conditioning part and an affine map of the rest, log-det `sum(s)`:

    * `scale_fn="tanh"` (RealNVP Eq. 7): `y_b = x_b * exp(s(x_a)) + t(x_a)`, `s = scale * tanh(raw)`
      with a learned per-channel `scale`;
    * `scale_fn="sigmoid"` (Glow's code, `openai/glow` model.py): shift first, then scale,
      `y_b = (x_b + t(x_a)) * exp(s(x_a))`, `exp(s) = min_scale + (1 - min_scale) sigmoid(raw + 2)`
      (`min_scale = 0` is Glow's code). The order matters in
      float32: with scale-then-shift the inverse `(y_b - t) / exp(s)` multiplies the round-off
      of `y_b` (relative to |t|) by `1 / sigmoid(.)`, which a trained Glow drives to 1e-3 on
      some images (reconstruction errors up to 1e-3 on MNIST); shift-first inverts with
      `y_b / exp(s) - t`, whose round-off is relative to |x_b + t| and is never divided by
      the scale. The floor `min_scale` bounds what the inverse can amplify: its sensitivity to an
      error in `x_a` (through `t`) is `1 / exp(s)` times the forward's, so a coupling that squashes
      (exp(s) -> 0) has an exploding inverse even when the forward is well-conditioned
      (Behrmann et al. 2021, "Understanding and mitigating exploding inverses in invertible
      neural networks", Sec. 4-5). A trained glow_mnist without the floor has exp(s) ~ 1e-3 on
      rare test images, where the float32 inverse of its second level lost 3 decimal digits;
      with floors 0.1 / 0.25 its worst reconstruction error over the 10,000 test images was
      2.4e-4 / 8.6e-6 (glow_mnist's default is 0.25).

    Attributes:
      mask: "channel" (first / second half of the last axis; works for images
        [B, H, W, C] with C >= 2 and vectors [B, D] with D >= 2) or
        "checkerboard" (images only: the pixels with (i + j + parity) even
        condition the others, RealNVP Fig. 3).
      parity: 0 or 1, which half conditions (alternate it between layers).
      hidden, num_layers: conditioner width and depth.
      scale_fn: "tanh" (RealNVP: scale then shift, s = scale * tanh(raw)) or
        "sigmoid" (Glow: shift then scale, exp(s) = min_scale + (1 - min_scale) sigmoid(raw + 2)).
      min_scale: floor in [0, 1) of the sigmoid scale (0: Glow's code); unused by "tanh".
    """

    mask: str = "channel"
    parity: int = 0
    hidden: int = 64
    num_layers: int = 2
    scale_fn: str = "tanh"
    min_scale: float = 0.0

    def _log_scale(self, raw):
        if self.scale_fn == "tanh":
            scale = self.param("scale", nn.initializers.ones, (raw.shape[-1],))
            return scale * jnp.tanh(raw)
        if self.scale_fn == "sigmoid":
            if not 0.0 <= self.min_scale < 1.0:
                raise ValueError(f"min_scale={self.min_scale} must be in [0, 1)")
            if self.min_scale == 0.0:
                return jax.nn.log_sigmoid(raw + 2.0)
            return jnp.log(self.min_scale + (1.0 - self.min_scale) * jax.nn.sigmoid(raw + 2.0))
        raise ValueError(f"scale_fn={self.scale_fn!r}; valid choices: ['tanh', 'sigmoid']")

    def _affine(self, x, log_s, t, inverse: bool):
        """The affine map of the transformed part and its log-det (see the class doc for the order)."""
        ld = _sum_except_batch(log_s)
        if self.scale_fn == "sigmoid":  # Glow: shift, then scale
            return ((x + t) * jnp.exp(log_s), ld) if not inverse else (x * jnp.exp(-log_s) - t, -ld)
        return (x * jnp.exp(log_s) + t, ld) if not inverse else ((x - t) * jnp.exp(-log_s), -ld)

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        if self.mask == "checkerboard":
            if x.ndim != 4:
                raise ValueError(f"checkerboard coupling needs images [B, H, W, C], got shape {x.shape}")
            h, w = x.shape[1:3]
            m = ((np.arange(h)[:, None] + np.arange(w)[None, :] + self.parity) % 2 == 0)
            m = jnp.asarray(m, x.dtype)[None, :, :, None]
            cond = jnp.concatenate([x * m, jnp.broadcast_to(m, x.shape[:3] + (1,))], -1)
            raw, t = Conditioner(x.shape[-1], self.hidden, self.num_layers, name="conditioner")(cond)
            log_s, t = self._log_scale(raw) * (1 - m), t * (1 - m)
            return self._affine(x, log_s, t, inverse)
        if self.mask != "channel":
            raise ValueError(f"mask={self.mask!r}; valid choices: ['channel', 'checkerboard']")
        c = x.shape[-1]
        if c < 2:
            raise ValueError(f"channel coupling needs at least 2 channels / dimensions, got shape {x.shape}")
        first, second = x[..., : c // 2], x[..., c // 2:]
        xa, xb = (first, second) if self.parity == 0 else (second, first)
        raw, t = Conditioner(xb.shape[-1], self.hidden, self.num_layers, name="conditioner")(xa)
        yb, ld = self._affine(xb, self._log_scale(raw), t, inverse)
        out = (xa, yb) if self.parity == 0 else (yb, xa)
        return jnp.concatenate(out, -1), ld


def squeeze(x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H/2, W/2, 4C] (each 2x2 patch into channels). ValueError for odd H or W."""
    b, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"squeeze needs even height and width, got shape {x.shape}")
    x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // 2, w // 2, 4 * c)


def unsqueeze(x: jax.Array) -> jax.Array:
    """The inverse of `squeeze`: [B, H, W, 4C] -> [B, 2H, 2W, C]."""
    b, h, w, c4 = x.shape
    x = x.reshape(b, h, w, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, 2 * h, 2 * w, c4 // 4)


class Squeeze(Bijector):
    """Space-to-depth squeeze (RealNVP Sec. 3.6), volume preserving (log-det 0)."""

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        zero = jnp.zeros(x.shape[:1], x.dtype)
        return (unsqueeze(x) if inverse else squeeze(x)), zero


class Logit(Bijector):
    """Logit preprocessing of data in [0, 1] (RealNVP Sec. 4.1): y = logit(alpha + (1 - 2 alpha) x)."""

    alpha: float = 0.05

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        a = self.alpha
        if not inverse:
            p = a + (1 - 2 * a) * x
            y = jnp.log(p) - jnp.log1p(-p)
            return y, _sum_except_batch(math.log(1 - 2 * a) - jnp.log(p) - jnp.log1p(-p))
        p = jax.nn.sigmoid(x)
        ld = _sum_except_batch(math.log(1 - 2 * a) - jnp.log(p) - jnp.log1p(-p))
        return (p - a) / (1 - 2 * a), -ld


class Shift(Bijector):
    """y = x + shift (Glow's x - 0.5 centring), volume preserving."""

    shift: float = -0.5

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        zero = jnp.zeros(x.shape[:1], x.dtype)
        return (x - self.shift if inverse else x + self.shift), zero


class Chain(Bijector):
    """Composition: forward applies `layers` in order, inverse in reverse order; log-dets add."""

    layers: Sequence[nn.Module]

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        ld = jnp.zeros(x.shape[:1], x.dtype)
        for layer in (reversed(self.layers) if inverse else self.layers):
            x, l = layer(x, inverse)
            ld = ld + l
        return x, ld


def _level_out_shape(level, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    layers = level.layers if isinstance(level, Chain) else [level]
    for layer in layers:
        if isinstance(layer, Squeeze):
            h, w, c = shape
            shape = (h // 2, w // 2, 4 * c)
    return shape


class MultiScale(Bijector):
    """Multi-scale architecture with factored-out latents (RealNVP Sec. 3.6, Glow Fig. 2b).

    Forward: `h = level_0(x)`; the first half of the channels of h is factored
    out as latent z_0 and the rest goes on to level_1, ...; the last level's
    whole output is the last latent. The output is the concatenation of the
    flattened latents: [B, H, W, C] -> [B, H W C]. With the standard normal
    base of `log_prob` this is the factorisation p(z) = prod_i N(z_i; 0, I).

    Attributes:
      image_shape: (H, W, C) of one input.
      levels: bijectors (usually `Chain`s holding a `Squeeze`) per level; the
        output shape of a level is found from the `Squeeze` layers in it.
    """

    image_shape: tuple[int, int, int]
    levels: Sequence[nn.Module]

    def _shapes(self):
        shapes, shape = [], tuple(self.image_shape)
        for i, level in enumerate(self.levels):
            out = _level_out_shape(level, shape)
            if i < len(self.levels) - 1:
                z = (out[0], out[1], out[2] // 2)
                shape = (out[0], out[1], out[2] - out[2] // 2)
            else:
                z = out
            shapes.append((out, z))
        return shapes

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        b = x.shape[0]
        shapes = self._shapes()
        ld = jnp.zeros((b,), x.dtype)
        if not inverse:
            if x.shape[1:] != tuple(self.image_shape):
                raise ValueError(f"MultiScale expects [B, {', '.join(map(str, self.image_shape))}], got {x.shape}")
            zs, h = [], x
            for i, level in enumerate(self.levels):
                h, l = level(h, False)
                ld = ld + l
                if i < len(self.levels) - 1:
                    k = h.shape[-1] // 2
                    zs.append(h[..., :k].reshape(b, -1))
                    h = h[..., k:]
            zs.append(h.reshape(b, -1))
            return jnp.concatenate(zs, -1), ld
        sizes = np.cumsum([int(np.prod(z)) for _, z in shapes])[:-1]
        pieces = jnp.split(x, sizes, axis=-1)
        h = pieces[-1].reshape(b, *shapes[-1][1])
        for i in reversed(range(len(self.levels))):
            if i < len(self.levels) - 1:
                h = jnp.concatenate([pieces[i].reshape(b, *shapes[i][1]), h], -1)
            h, l = self.levels[i](h, True)
            ld = ld + l
        return h, ld


# -- architectures ------------------------------------------------------------------------------

def glow(image_shape=(28, 28, 1), num_levels: int = 2, steps_per_level: int = 8, hidden: int = 64,
         lu: bool = True, preprocess: str = "logit", logit_alpha: float = 0.05, num_layers: int = 2,
         min_scale: float = 0.0) -> Chain:
    """Glow (Kingma & Dhariwal 2018, Fig. 2): per level a squeeze and `steps_per_level` steps of
    [ActNorm, invertible 1x1 conv (LU if `lu`), affine coupling (channel mask, sigmoid scale
    floored at `min_scale`)],
    then a split (all levels but the last). `preprocess`: "logit" (RealNVP's logit of x~) or
    "center" (Glow's x~ - 0.5). Maps [B, H, W, C] in [0, 1] to [B, H W C]."""
    conv = Invertible1x1ConvLU if lu else Invertible1x1Conv
    levels = []
    for i in range(num_levels):
        layers = [Squeeze()]
        for k in range(steps_per_level):
            layers += [ActNorm(), conv(), AffineCoupling("channel", 0, hidden, num_layers, "sigmoid", min_scale)]
        levels.append(Chain(layers))
    return Chain([preprocessing(preprocess, logit_alpha), MultiScale(tuple(image_shape), levels)])


def realnvp(image_shape=(28, 28, 1), num_scales: int = 2, hidden: int = 64, num_layers: int = 2,
            preprocess: str = "logit", logit_alpha: float = 0.05, couplings: int = 3) -> Chain:
    """RealNVP multi-scale architecture (Dinh et al. 2017, Sec. 3.6 and 4.1): each scale has
    `couplings` checkerboard couplings, a squeeze, `couplings` channel-wise couplings and a split;
    the last scale has `couplings + 1` checkerboard couplings. Couplings alternate their mask
    parity and use s = scale * tanh(.); an ActNorm (in place of RealNVP's batch norm) follows each
    coupling. Maps [B, H, W, C] in [0, 1] to [B, H W C]."""
    levels = []
    for i in range(num_scales):
        last = i == num_scales - 1
        layers = []
        for k in range(couplings + (1 if last else 0)):
            layers += [AffineCoupling("checkerboard", k % 2, hidden, num_layers, "tanh"), ActNorm()]
        if not last:
            layers.append(Squeeze())
            for k in range(couplings):
                layers += [AffineCoupling("channel", k % 2, hidden, num_layers, "tanh"), ActNorm()]
        levels.append(Chain(layers))
    return Chain([preprocessing(preprocess, logit_alpha), MultiScale(tuple(image_shape), levels)])


def realnvp_2d(num_layers: int = 8, hidden: int = 128, mlp_layers: int = 2, actnorm: bool = True) -> Chain:
    """RealNVP for 2-D points (Dinh et al. 2017, Fig. 1 toy setting): `num_layers` channel-wise
    affine couplings with alternating halves, tanh scales and MLP conditioners, each followed
    by an ActNorm if `actnorm`. Maps [B, 2] -> [B, 2]."""
    layers = []
    for k in range(num_layers):
        layers.append(AffineCoupling("channel", k % 2, hidden, mlp_layers, "tanh"))
        if actnorm:
            layers.append(ActNorm())
    return Chain(layers)


def preprocessing(kind: str, alpha: float) -> Bijector:
    """The parameter-free map of images in [0, 1] to a flow's input: "logit" (`Logit(alpha)`, RealNVP Sec. 4.1)
    or "center" (`Shift(-0.5)`, Glow). Raises ValueError for another kind."""
    if kind == "logit":
        return Logit(alpha)
    if kind == "center":
        return Shift(-0.5)
    raise ValueError(f"preprocess={kind!r}; valid choices: ['logit', 'center']")


# -- densities, dequantization, sampling ------------------------------------------------------------

def log_prob(flow: nn.Module, params, x: jax.Array) -> jax.Array:
    """Exact log density log p(x) = log N(f(x); 0, I) + log|det df/dx| (RealNVP Eq. 3).

    Args:
      flow: a bijector whose forward maps data to the base space.
      params: its parameters.
      x: float32 [B, ...] points.

    Returns:
      float32 [B], nats (a density with respect to Lebesgue measure on x's space).
    """
    z, ld = flow.apply({"params": params}, x, method="forward_and_log_det")
    return distributions.standard_normal_log_prob(z.reshape(z.shape[0], -1)) + ld


def dequantize(key: jax.Array, x: jax.Array) -> jax.Array:
    """Uniform dequantization x~ = (x + u) / 256, u ~ U[0, 1) i.i.d. per value.

    Args:
      key: PRNG key.
      x: integer array [...] with values 0-255.

    Returns:
      float32 array of the same shape in [0, 1).
    """
    u = jax.random.uniform(key, x.shape, jnp.float32)
    return (x.astype(jnp.float32) + u) / 256.0


def quantize(x: jax.Array) -> jax.Array:
    """The inverse of dequantization: uint8 floor(256 x), clipped to 0-255."""
    return jnp.clip(jnp.floor(x * 256.0), 0, 255).astype(jnp.uint8)


def bits_per_dim(log_density: jax.Array, num_dims: int) -> jax.Array:
    """Bits per dimension of 8-bit data from the log density of x~ = (x + u)/256 on [0, 1]^D.

    `(-log p(x~) + D ln 256) / (D ln 2)`: a uniform density on [0, 1]^D
    (log p = 0) gives exactly 8 bits/dim. Its expectation over u is an upper
    bound on the discrete model's -log2 P(x) / D (Theis et al. 2016).

    Args:
      log_density: nats, any shape.
      num_dims: D, the number of dimensions of one example.
    """
    return distributions.nats_to_bits(-log_density + num_dims * LN256, num_dims)


def sample(flow: nn.Module, params, key: jax.Array, num_samples: int, dim: int, temperature=1.0) -> jax.Array:
    """x = f^{-1}(z), z ~ N(0, temperature^2 I) of shape [num_samples, dim] (Glow Sec. 5 temperature).

    Returns:
      float32 [num_samples, ...] in the flow's data space.
    """
    z = temperature * jax.random.normal(key, (num_samples, dim), jnp.float32)
    x, _ = flow.apply({"params": params}, z, method="inverse_and_log_det")
    return x


def check_temperature(t) -> float:
    """The sampling temperature T of z ~ N(0, T^2 I) as a float.

    Raises:
      ValueError: T is not a finite real number >= 0.
    """
    if isinstance(t, bool) or not isinstance(t, (int, float, np.floating, np.integer)) \
            or not math.isfinite(float(t)) or float(t) < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {t!r}")
    return float(t)
