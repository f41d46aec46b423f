"""PixelCNN++ (Salimans, Karpathy, Chen & Kingma 2017).

The model of the paper's Sec. 2 and the openai/pixel-cnn code, without weight
normalisation and data-dependent init (plain Flax convs):

* the likelihood of an 8-bit pixel is a discretized logistic mixture (Eq. 2;
  `gm_jax.distributions.discretized_logistic_mixture_log_prob`), with the colour
  channels of one pixel coupled linearly (Sec. 2.2) when C = 3;
* two streams, `u` (down-shifted convs: sees the rows above) and `ul`
  (down-right-shifted convs: sees the rows above and the row so far), built from
  gated ResNet blocks with concat_elu non-linearities and dropout (Sec. 2.3-2.6);
* downsampling by stride-2 shifted convolutions (three resolutions, 28 -> 14 -> 7
  for MNIST) and upsampling by shifted transposed convolutions, with shortcut
  connections from each block of the down pass to its mirror in the up pass
  (Sec. 2.4, Fig. 2).

Samplers (both run the library's one ancestral loop, `gm_jax.sampling.ancestral`,
with the mixture's sampler as its `draw_fn`; pixel i draws with `fold_in(key, i)`,
so the same key and parameters give the same samples):

* `sample_naive`: the full network once per pixel (H W full passes).
* `sample_cached`: Ramachandran et al. 2017 ("Fast Generation for Convolutional
  Autoregressive Models"), `init_cache` / `step`: the same layers and parameters
  applied to cached activations, computing each activation of the network once.
  The dependencies of the shifted convolutions fix when each can be computed: at
  level l (resolution H / 2^l x W / 2^l) the u stream's row R sees the image rows
  < 2^l R only, and the ul stream's position (R, C) the pixels before (2^l R, 2^l C)
  in raster order (the stride-2 convs read rows 2R - 1..2R, the transposed convs
  row R // 2). So
  - at the start of image row r, for each level l with 2^l | r, the u stream's
    row r / 2^l (down pass fine to coarse, then up pass coarse to fine, each
    block on its own row and the cached row above) and the row part of the ul
    stream's input are computed (`_rows`; cost per row: the u stream of one row
    at each due level, i.e. over the image the u stream's share of one full pass);
  - at pixel (r, c), for each level l with 2^l | r and 2^l | c, the ul stream at
    the one position (r / 2^l, c / 2^l): every layer on the 2 x 2 window of its
    input held in two-row buffers, the shortcuts and the u-stream inputs read from
    the row caches (cost per pixel: the ul layers of one position at level 0, plus
    those of levels l >= 1 at 1 pixel in 4^l, under a `lax.cond`).
  Over a whole image that is about one full pass of work (against H W full passes
  for `sample_naive`). The mixture parameters equal the full network's at every
  pixel up to float rounding (tested at every pixel); the speed-up is measured by
  `python -m benchmarks.pixelcnn_sampling --models pixelcnn_pp_mnist` (README).

`PAPER` holds the paper's hyperparameters.
"""
from __future__ import annotations

import collections
import numbers

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax import distributions, sampling
from gm_jax.models.pixelcnn import check_pixels, to_input
from gm_jax.nn import (
    Dense,
    DownRightShiftedConv2D,
    DownRightShiftedConvTranspose2D,
    DownShiftedConv2D,
    DownShiftedConvTranspose2D,
    concat_elu,
    conv2d,
    down_shift,
    right_shift,
)


# The paper's network (Salimans et al. 2017, Sec. 3 and the openai/pixel-cnn defaults behind its CIFAR-10
# result): 160 filters, 5 gated ResNet blocks per resolution, 10 mixture components, dropout 0.5, three
# resolutions. Keys are `PixelCNNPP` attributes.
PAPER = {"features": 160, "num_resnet": 5, "num_mixtures": 10, "dropout": 0.5, "num_levels": 3}


class GatedResnet(nn.Module):
    """x + a * sigmoid(b), [a, b] = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(concat_elu(aux))))).

    Salimans et al. 2017 Sec. 2.3 (`gated_resnet` in openai/pixel-cnn). x float
    [N, H, W, F] -> same; `aux` [N, H, W, F'] or None; `right` picks the
    down-right-shifted (2, 2) conv over the down-shifted (2, 3) one.
    """

    features: int
    right: bool = False
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x, aux=None, train: bool = False):
        conv = (lambda f: DownRightShiftedConv2D(f, (2, 2))) if self.right else (lambda f: DownShiftedConv2D(f, (2, 3)))
        c = conv(self.features)(concat_elu(x))
        if aux is not None:
            c = c + Dense(self.features)(concat_elu(aux))
        c = nn.Dropout(self.dropout, deterministic=not train)(concat_elu(c))
        a, b = jnp.split(conv(2 * self.features)(c), 2, axis=-1)
        return x + a * jax.nn.sigmoid(b)


class PixelCNNPP(nn.Module):
    """PixelCNN++ network: integer pixels [N, H, W, C] -> mixture parameters [N, H, W, P].

    P = 3K for C = 1 (logits, means, log scales) and 10K for C = 3 (plus 3 coupling
    coefficients per component), K = `num_mixtures`. H and W must be divisible
    by 2^(num_levels - 1).

    Attributes:
      image_shape: (H, W, C), C in {1, 3}.
      features: channels of every stream (nr_filters; 160 in the paper).
      num_resnet: gated ResNet blocks per resolution (5 in the paper).
      num_mixtures: K (10 in the paper).
      dropout: dropout rate inside the blocks (0.5 in the paper).
      num_levels: resolutions (3 in the paper).
      num_values: 256 for 8-bit data.
    """

    image_shape: tuple = (28, 28, 1)
    features: int = 32
    num_resnet: int = 1
    num_mixtures: int = 5
    dropout: float = 0.5
    num_levels: int = 3
    num_values: int = 256

    @nn.compact
    def __call__(self, x, labels=None, train: bool = False):
        h, w, c = self.image_shape
        if c not in (1, 3):
            raise ValueError(f"PixelCNNPP models 1- or 3-channel images, got image_shape {self.image_shape}")
        if h % 2 ** (self.num_levels - 1) or w % 2 ** (self.num_levels - 1):
            raise ValueError(f"image height and width must be divisible by {2 ** (self.num_levels - 1)}")
        f, nr = self.features, self.num_resnet
        xin = to_input(x, self.num_values)
        xin = jnp.concatenate([xin, jnp.ones_like(xin[..., :1])], axis=-1)  # marks the zero padding
        u_list = [down_shift(DownShiftedConv2D(f, (2, 3))(xin))]
        ul_list = [down_shift(DownShiftedConv2D(f, (1, 3))(xin)) + right_shift(DownRightShiftedConv2D(f, (2, 1))(xin))]
        for level in range(self.num_levels):
            for _ in range(nr):
                u_list.append(GatedResnet(f, False, self.dropout)(u_list[-1], None, train))
                ul_list.append(GatedResnet(f, True, self.dropout)(ul_list[-1], u_list[-1], train))
            if level < self.num_levels - 1:
                u_list.append(DownShiftedConv2D(f, (2, 3), strides=(2, 2))(u_list[-1]))
                ul_list.append(DownRightShiftedConv2D(f, (2, 2), strides=(2, 2))(ul_list[-1]))
        u, ul = u_list.pop(), ul_list.pop()
        for level in range(self.num_levels):
            for _ in range(nr if level == 0 else nr + 1):
                u = GatedResnet(f, False, self.dropout)(u, u_list.pop(), train)
                ul = GatedResnet(f, True, self.dropout)(ul, jnp.concatenate([u, ul_list.pop()], axis=-1), train)
            if level < self.num_levels - 1:
                u = DownShiftedConvTranspose2D(f, (2, 3))(u)
                ul = DownRightShiftedConvTranspose2D(f, (2, 2))(ul)
        assert not u_list and not ul_list
        k = self.num_mixtures
        return Dense(k * (3 if c == 1 else 10))(jax.nn.elu(ul))


def mixture_params(out: jax.Array, channels: int, num_mixtures: int):
    """Split network output [..., P] into (logit_weights [..., K], means [..., C, K],
    log_scales [..., C, K], coeffs [..., 3, K] or None)."""
    k, c = num_mixtures, channels
    lw = out[..., :k]
    means = out[..., k:k + c * k].reshape(*out.shape[:-1], c, k)
    log_scales = out[..., k + c * k:k + 2 * c * k].reshape(*out.shape[:-1], c, k)
    coeffs = None if c == 1 else out[..., k + 2 * c * k:].reshape(*out.shape[:-1], 3, k)
    return lw, means, log_scales, coeffs


def log_prob(model: PixelCNNPP, params, x: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
    """Exact log p(x) in nats, float32 [N] (Salimans et al. 2017, Eq. 2 over all pixels).

    Args:
      model, params: the network and its parameters.
      x: integer [N, H, W, C] pixels in [0, 255].
      dropout_key: a PRNG key to apply dropout (training), or None (evaluation: exact log-likelihood).

    Raises:
      ValueError: (concrete inputs) bad shape, dtype or pixel values.
    """
    check_pixels(x, model.num_values, model.image_shape)
    train = dropout_key is not None
    out = model.apply({"params": params}, x, None, train, rngs={"dropout": dropout_key} if train else None)
    lw, means, log_scales, coeffs = mixture_params(out, model.image_shape[-1], model.num_mixtures)
    return distributions.discretized_logistic_mixture_log_prob(x, lw, means, log_scales, coeffs,
                                                               num_values=model.num_values)


def conditionals(model: PixelCNNPP, params, x: jax.Array) -> dict:
    """The discretized logistic mixture p(x_ij | x_<ij) of every pixel (dropout off), one network pass:
    {"logit_weights": float32 [N, H, W, K], "means" and "log_scales": [N, H, W, C, K] (means in the [-1, 1]
    scale, before the channel coupling), and "coeffs": [N, H, W, 3, K] (raw, tanh not applied) only when
    C = 3}: the arguments of `distributions.discretized_logistic_mixture_log_prob`.

    Raises:
      ValueError: (concrete inputs) bad shape, dtype or pixel values.
    """
    check_pixels(x, model.num_values, model.image_shape)
    out = model.apply({"params": params}, x, None, False)
    lw, means, log_scales, coeffs = mixture_params(out, model.image_shape[-1], model.num_mixtures)
    d = {"logit_weights": lw, "means": means, "log_scales": log_scales}
    return d if coeffs is None else {**d, "coeffs": coeffs}


def log_prob_per_pixel(model: PixelCNNPP, params, x: jax.Array) -> jax.Array:
    """log p(x_ij | x_<ij) of every pixel (its C channels jointly, Salimans et al. 2017, Eq. 2 and
    Sec. 2.2), nats, float32 [N, H, W] (from `conditionals`); summed over [H, W] it is `log_prob` (dropout off).

    Raises:
      ValueError: (concrete inputs) bad shape, dtype or pixel values.
    """
    return distributions.discretized_logistic_mixture_log_prob(x, **conditionals(model, params, x),
                                                               num_values=model.num_values, event_ndims=0)


def sample_naive(model: PixelCNNPP, params, key: jax.Array, num_samples: int, labels=None) -> jax.Array:
    """Ancestral sampling, one full network pass per pixel (`sampling.ancestral`, drawing from the mixture).

    Args:
      key: PRNG key; pixel i (raster index) draws its C channels with `fold_in(key, i)`.
      num_samples: N (static).
      labels: ignored (the model is unconditional).

    Returns:
      uint8 [N, H, W, C] in [0, 255].
    """
    h, w, c = model.image_shape
    n = num_samples

    def step(cache, x, i):
        out = model.apply({"params": params}, x.reshape(n, h, w, c)).reshape(n, h * w, -1)
        return jax.lax.dynamic_index_in_dim(out, i, 1, keepdims=False), cache

    return _ancestral(model, step, None, key, n)


def _ancestral(model: PixelCNNPP, step, cache, key: jax.Array, n: int) -> jax.Array:
    """`sampling.ancestral` over the H W pixels with `step` (naive or cached), each pixel's C channels drawn from
    the discretized logistic mixture of the step's output [N, P]: uint8 [N, H, W, C]."""
    h, w, c = model.image_shape

    def draw_fn(k, out):  # the discretized logistic mixture of out [N, P] -> int32 [N, C]
        lw, means, log_scales, coeffs = mixture_params(out, c, model.num_mixtures)
        return distributions.discretized_logistic_mixture_sample(k, lw, means, log_scales, coeffs, model.num_values)

    x, _ = sampling.ancestral(step, cache, jnp.zeros((n, h * w, c), jnp.int32), key, 0, draw_fn=draw_fn)
    return x.reshape(n, h, w, c).astype(jnp.uint8)


# -- the cached sampler (Ramachandran et al. 2017) ----------------------------------------------------------

def _layer_names(num_levels: int, num_resnet: int) -> dict:
    """The parameter names `PixelCNNPP.__call__` gives its layers (Flax names the submodules of a compact
    module `ClassName_k` in creation order), arranged by role:

    {"u_in", "ul_in_row", "ul_in_pixel": the input convs; "down": per level {"blocks": [(u block, ul block)] *
    num_resnet, "downsample": (u conv, ul conv) to the next level or None}; "up": per level (index = level,
    0 = full resolution) {"blocks": [(u block, ul block)], "upsample": (u, ul) transposed convs to level - 1
    or None}; "head": the output Dense}.
    """
    count = collections.Counter()

    def name(cls):
        count[cls] += 1
        return f"{cls}_{count[cls] - 1}"

    names = {"u_in": name("DownShiftedConv2D"), "ul_in_row": name("DownShiftedConv2D"),
             "ul_in_pixel": name("DownRightShiftedConv2D"), "down": [], "up": [None] * num_levels}
    for level in range(num_levels):
        blocks = [(name("GatedResnet"), name("GatedResnet")) for _ in range(num_resnet)]
        down = (name("DownShiftedConv2D"), name("DownRightShiftedConv2D")) if level < num_levels - 1 else None
        names["down"].append({"blocks": blocks, "downsample": down})
    for j in range(num_levels):  # the up pass, coarsest level first
        level = num_levels - 1 - j
        blocks = [(name("GatedResnet"), name("GatedResnet")) for _ in range(num_resnet + (j > 0))]
        up = (name("DownShiftedConvTranspose2D"), name("DownRightShiftedConvTranspose2D")) if level > 0 else None
        names["up"][level] = {"blocks": blocks, "upsample": up}
    names["head"] = "Dense_0"
    return names


def _pops(level: int, num_levels: int, num_resnet: int) -> list[int]:
    """Indices into the down-pass list of a level ([level input, block 1 output, ..., block R output]) that the
    up-pass blocks of the level take as shortcuts, in block order (`u_list.pop()` / `ul_list.pop()`); at the
    coarsest level the last entry starts the up pass and is not a shortcut."""
    top = num_resnet - 1 if level == num_levels - 1 else num_resnet
    return list(range(top, -1, -1))


def _conv(p: dict, window: jax.Array, strides=(1, 1), cols=(0, 0)) -> jax.Array:
    """A shifted conv's parameters applied to a buffered window without row padding (`conv2d`, VALID rows,
    `cols` zero columns each side): only the outputs whose whole kernel lies in the window."""
    return conv2d(window, p["kernel"], p["bias"], strides=strides, padding=((0, 0), tuple(cols)))


def _dense(p: dict, v: jax.Array) -> jax.Array:
    return v @ p["kernel"] + p["bias"]  # `Dense` on [..., C_in]


def _row_block(p: dict, x_prev, x_cur, c_prev, aux):
    """A u-stream `GatedResnet` (down-shifted (2, 3) convs) on row R: x_prev / x_cur [N, W, F] its input at
    rows R - 1 and R, c_prev [N, W, F] its inner activation (before concat_elu) at row R - 1, aux [N, W, F']
    or None. Returns (output row R, inner activation row R)."""
    name = "DownShiftedConv2D"
    c = _conv(p[f"{name}_0"], concat_elu(jnp.stack([x_prev, x_cur], 1)), cols=(1, 1))[:, 0]
    if aux is not None:
        c = c + _dense(p["Dense_0"], concat_elu(aux))
    a, b = jnp.split(_conv(p[f"{name}_1"], concat_elu(jnp.stack([c_prev, c], 1)), cols=(1, 1))[:, 0], 2, -1)
    return x_cur + a * jax.nn.sigmoid(b), c


def _pixel_block(p: dict, x_win, c_win, aux):
    """A ul-stream `GatedResnet` (down-right-shifted (2, 2) convs) at one position (R, C): x_win [N, 2, 2, F]
    its input at rows R - 1..R, columns C - 1..C (the new value at [1, 1]), c_win the same window of its inner
    activation (the entry at [1, 1] is replaced), aux [N, F']. Returns (output, inner activation) [N, F]."""
    name = "DownRightShiftedConv2D"
    c = _conv(p[f"{name}_0"], concat_elu(x_win))[:, 0, 0] + _dense(p["Dense_0"], concat_elu(aux))
    c_win = c_win.at[:, 1, 1].set(c)
    a, b = jnp.split(_conv(p[f"{name}_1"], concat_elu(c_win))[:, 0, 0], 2, -1)
    return x_win[:, 1, 1] + a * jax.nn.sigmoid(b), c


def _check_cached_model(model: PixelCNNPP) -> None:
    h, w, c = model.image_shape
    if c not in (1, 3):
        raise ValueError(f"PixelCNNPP models 1- or 3-channel images, got image_shape {model.image_shape}")
    if h % 2 ** (model.num_levels - 1) or w % 2 ** (model.num_levels - 1):
        raise ValueError(f"image height and width must be divisible by {2 ** (model.num_levels - 1)}")


def init_cache(model: PixelCNNPP, num_samples: int) -> dict:
    """The empty (all-zero) cache of `step` for N = num_samples images. With F = features, R = num_resnet,
    B_l the up-pass blocks of level l (R at the coarsest level, R + 1 elsewhere), H_l x W_l = H / 2^l x W / 2^l:

    * "xbuf" [N, 2 + H, 2 + W, C + 1]: the network input (pixels in [-1, 1] and the padding-marker 1) of every
      drawn pixel at (row + 2, column + 1), zeros around (the shifted convs' padding);
    * "rows" (the u stream, row state): "ul_row" [N, W, F], the row part of the ul stream's input (the (1, 3)
      conv of the row above); per level "down": {"cur": the R + 1 down-pass activations of the level's current
      row, [N, W_l, F] each (level input, then each block's output), "prev": the same of the row before,
      "c": the R blocks' inner activations of the current row}; "up": {"cur": B_l + 1 rows (the level's
      up-pass input, then each block's output), "c": B_l inner rows};
    * "ul" (the ul stream, position buffers): per level "down_x" R + 1 (level input, block outputs), "down_c" R
      (blocks' inner activations), "up_x" B_l + 1, "up_c" B_l buffers [N, 2, 1 + W_l, F]: rows R - 1 and R
      (R the level's current row), position C at column C + 1 (column 0 and, at R = 0, row 0 stay zero: the
      down-right-shifted convs' padding). Two rows, not the whole map: a (2, 2) kernel reads no further up,
      and XLA updates these small loop-carried buffers in place (whole-map buffers that were both read and
      updated each step were copied at every step, 2.7x slower).
    """
    _check_cached_model(model)
    h, w, c = model.image_shape
    n, f, nr, levels = num_samples, model.features, model.num_resnet, model.num_levels
    z = jnp.zeros
    rows = {"ul_row": z((n, w, f)), "down": [], "up": []}
    ul = []
    for level in range(levels):
        wl = w >> level
        nb = len(_pops(level, levels, nr))
        rows["down"].append({"cur": [z((n, wl, f))] * (nr + 1), "prev": [z((n, wl, f))] * (nr + 1),
                             "c": [z((n, wl, f))] * nr})
        rows["up"].append({"cur": [z((n, wl, f))] * (nb + 1), "c": [z((n, wl, f))] * nb})
        buf = z((n, 2, 1 + wl, f))
        ul.append({"down_x": [buf] * (nr + 1), "down_c": [buf] * nr, "up_x": [buf] * (nb + 1), "up_c": [buf] * nb})
    return {"xbuf": z((n, 2 + h, 2 + w, c + 1)), "rows": rows, "ul": ul}


def _rows(model: PixelCNNPP, p: dict, names: dict, rows: dict, xbuf: jax.Array, r) -> dict:
    """The u stream's rows due at the start of full-resolution row r (level l row r / 2^l when 2^l divides r),
    and the ul stream's row term: the network's u-stream layers restricted to one row each (they see the rows
    above only). Levels >= 1 run under a `lax.cond`."""
    n, nr, levels = xbuf.shape[0], model.num_resnet, model.num_levels
    ch = xbuf.shape[-1]
    w = model.image_shape[1]
    new = {"down": [None] * levels, "up": [None] * levels}
    # the input convs then down_shift: row r sees input rows r - 2, r - 1 (xbuf rows r, r + 1); row 0 sees nothing
    u_in = _conv(p[names["u_in"]], jax.lax.dynamic_slice(xbuf, (0, r, 0, 0), (n, 2, w + 2, ch)))[:, 0]
    ul_row = _conv(p[names["ul_in_row"]], jax.lax.dynamic_slice(xbuf, (0, r + 1, 0, 0), (n, 1, w + 2, ch)))[:, 0]
    new["ul_row"] = jnp.where(r == 0, 0.0, ul_row)

    def when_due(level, fn, st, *operands):  # level l steps at the rows r that 2^l divides
        return fn(st, *operands) if level == 0 else jax.lax.cond(r % (1 << level) == 0, fn, lambda st, *_: st,
                                                                 st, *operands)

    for level in range(levels):
        def down(st, below, level=level):
            if level == 0:
                start = jnp.where(r == 0, 0.0, u_in)
            else:  # the stride-2 (2, 3) conv of rows 2R - 1, 2R of the level above
                win = jnp.stack([below["prev"][nr], below["cur"][nr]], 1)
                start = _conv(p[names["down"][level - 1]["downsample"][0]], win, (2, 2), (1, 1))[:, 0]
            cur, cs = [start], []
            for k in range(nr):
                out, c = _row_block(p[names["down"][level]["blocks"][k][0]], st["cur"][k], cur[k], st["c"][k], None)
                cur.append(out)
                cs.append(c)
            return {"cur": cur, "prev": st["cur"], "c": cs}

        new["down"][level] = when_due(level, down, rows["down"][level], new["down"][level - 1] if level else None)
    for level in reversed(range(levels)):
        def up(st, d, coarse, level=level):
            if level == levels - 1:
                start = d[nr]
            else:  # the transposed conv of row R // 2 of the level below; row R takes its kernel row R % 2
                t = DownShiftedConvTranspose2D(model.features, (2, 3)).apply(
                    {"params": p[names["up"][level + 1]["upsample"][0]]}, coarse[:, None])
                start = jax.lax.dynamic_index_in_dim(t, (r >> level) % 2, 1, keepdims=False)
            cur, cs = [start], []
            for j, k in enumerate(_pops(level, levels, nr)):
                out, c = _row_block(p[names["up"][level]["blocks"][j][0]], st["cur"][j], cur[j], st["c"][j], d[k])
                cur.append(out)
                cs.append(c)
            return {"cur": cur, "c": cs}

        coarse = new["up"][level + 1]["cur"][-1] if level < levels - 1 else None
        new["up"][level] = when_due(level, up, rows["up"][level], new["down"][level]["cur"], coarse)
    return new


def step(model: PixelCNNPP, params, cache: dict, x: jax.Array, i):
    """The mixture parameters of pixel i from the cache: what `model.apply` gives at pixel i (dropout off),
    computed from the cached activations (Ramachandran et al. 2017).

    Pixel i - 1 (drawn last) enters the input buffer. At the start of a row the u-stream rows that are due are
    computed (`_rows`). Then at every level l whose stride 2^l divides both the row r and the column c of
    pixel i (level 0 always) the ul stream is computed at the one position (r / 2^l, c / 2^l): the level's
    down pass, from the coarse to the fine levels the up pass, each layer applied to the buffered 2 x 2 window
    of its input; the new activations are written to the buffers. Levels >= 1 run under a `lax.cond`.

    Args:
      model, params: the network and its parameters.
      cache: from `init_cache` (or the previous step).
      x: int [N, H * W, C] pixels in raster order; those before i are drawn.
      i: int32 scalar, the raster index.

    Returns:
      (mixture parameters float32 [N, P] of pixel i, the cache).
    """
    h, w, ch = model.image_shape
    n, f, nr, levels = x.shape[0], model.features, model.num_resnet, model.num_levels
    names = _layer_names(levels, nr)
    p = params
    # pixel i - 1 enters the input buffer at (row + 2, column + 1)
    r0, c0 = jnp.divmod(i - 1, w)
    value = to_input(jax.lax.dynamic_index_in_dim(x, i - 1, 1, keepdims=False), model.num_values)  # [N, C]
    value = jnp.concatenate([value, jnp.ones_like(value[..., :1])], -1)
    old = jax.lax.dynamic_slice(cache["xbuf"], (0, r0 + 2, c0 + 1, 0), (n, 1, 1, ch + 1))
    xbuf = jax.lax.dynamic_update_slice(cache["xbuf"], jnp.where(i > 0, value[:, None, None], old),
                                        (0, r0 + 2, c0 + 1, 0))
    r, col = jnp.divmod(i, w)
    rows = jax.lax.cond(col == 0, lambda rs, xb: _rows(model, p, names, rs, xb, r), lambda rs, xb: rs,
                        cache["rows"], xbuf)
    ul = [{k: list(v) for k, v in level.items()} for level in cache["ul"]]

    # a ul buffer [N, 2, 1 + W_l, F] holds rows R - 1 and R of its level (position C at column C + 1)
    def win(buf, cc):  # rows R - 1..R, columns cc - 1..cc
        return jax.lax.dynamic_slice(buf, (0, 0, cc, 0), (n, 2, 2, f))

    def at(buf, cc):  # row R, column cc
        return jax.lax.dynamic_index_in_dim(buf[:, 1], cc + 1, 1, keepdims=False)

    def put(buf, v, cc):
        return jax.lax.dynamic_update_slice(buf, v[:, None, None], (0, 1, cc + 1, 0))

    def new_row(buf, start):  # at the level's first position of a row, row R becomes row R - 1
        return jnp.concatenate([jnp.where(start, buf[:, 1:], buf[:, :1]), buf[:, 1:]], 1)

    def column(row, cc):  # [N, W_l, F] -> [N, F]
        return jax.lax.dynamic_index_in_dim(row, cc, 1, keepdims=False)

    def run(level, fn, operands, old):
        if level == 0:
            return fn(*operands)
        due = ((r | col) & ((1 << level) - 1)) == 0
        return jax.lax.cond(due, fn, lambda *_: old, *operands)

    # the down pass, fine to coarse
    down_vals = []  # per level its activations at this step's position (the values written to the buffers)
    for level in range(levels):
        cc = col >> level
        start = (col == 0) & (r % (1 << level) == 0)
        bufs = ul[level] = {k: [new_row(b, start) for b in v] for k, v in ul[level].items()}
        xw = [win(b, cc) for b in bufs["down_x"][:nr]]
        cw = [win(b, cc) for b in bufs["down_c"]]
        aux = [column(rows["down"][level]["cur"][k + 1], cc) for k in range(nr)]
        if level == 0:  # (2, 1) conv of input rows r - 1..r at column c - 1, then right_shift (0 at c = 0)
            pix = _conv(p[names["ul_in_pixel"]], jax.lax.dynamic_slice(xbuf, (0, r + 1, col, 0), (n, 2, 1, ch + 1)))
            first = column(rows["ul_row"], col) + jnp.where(col == 0, 0.0, pix[:, 0, 0])
        else:  # the stride-2 (2, 2) conv of rows 2R - 1..2R, columns 2C - 1..2C of the level above
            first = win(ul[level - 1]["down_x"][nr], 2 * cc)

        def down(first, xw, cw, aux, level=level):
            if level:
                first = _conv(p[names["down"][level - 1]["downsample"][1]], first)[:, 0, 0]
            xs, cs = [first], []
            for k in range(nr):
                out, c = _pixel_block(p[names["down"][level]["blocks"][k][1]], xw[k].at[:, 1, 1].set(xs[k]), cw[k],
                                      aux[k])
                xs.append(out)
                cs.append(c)
            return xs, cs

        old = ([at(b, cc) for b in bufs["down_x"]], [at(b, cc) for b in bufs["down_c"]])  # kept when not due
        xs, cs = run(level, down, (first, xw, cw, aux), old)
        down_vals.append(xs)
        bufs["down_x"] = [put(b, v, cc) for b, v in zip(bufs["down_x"], xs)]
        bufs["down_c"] = [put(b, v, cc) for b, v in zip(bufs["down_c"], cs)]
    # the up pass, coarse to fine
    for level in reversed(range(levels)):
        rr, cc, bufs = r >> level, col >> level, ul[level]
        d = down_vals[level]  # this position's down pass (computed above)
        pops = _pops(level, levels, nr)
        xw = [win(b, cc) for b in bufs["up_x"][:len(pops)]]
        cw = [win(b, cc) for b in bufs["up_c"]]
        aux = [jnp.concatenate([column(rows["up"][level]["cur"][j + 1], cc), d[k]], -1) for j, k in enumerate(pops)]
        first = d[nr] if level == levels - 1 else at(ul[level + 1]["up_x"][-1], cc >> 1)

        def up(first, xw, cw, aux, level=level, rr=rr, cc=cc):
            if level < levels - 1:  # the transposed conv of position (R // 2, C // 2); (R, C) takes tap (R % 2, C % 2)
                t = DownRightShiftedConvTranspose2D(f, (2, 2)).apply(
                    {"params": p[names["up"][level + 1]["upsample"][1]]}, first[:, None, None])
                first = jax.lax.dynamic_index_in_dim(jax.lax.dynamic_index_in_dim(t, rr % 2, 1, False), cc % 2, 1, False)
            xs, cs = [first], []
            for j in range(len(xw)):
                out, c = _pixel_block(p[names["up"][level]["blocks"][j][1]], xw[j].at[:, 1, 1].set(xs[j]), cw[j],
                                      aux[j])
                xs.append(out)
                cs.append(c)
            return xs, cs

        old = ([at(b, cc) for b in bufs["up_x"]], [at(b, cc) for b in bufs["up_c"]])
        xs, cs = run(level, up, (first, xw, cw, aux), old)
        bufs["up_x"] = [put(b, v, cc) for b, v in zip(bufs["up_x"], xs)]
        bufs["up_c"] = [put(b, v, cc) for b, v in zip(bufs["up_c"], cs)]
    out = _dense(p[names["head"]], jax.nn.elu(xs[-1]))
    return out, {"xbuf": xbuf, "rows": rows, "ul": ul}


def sample_cached(model: PixelCNNPP, params, key: jax.Array, num_samples: int, labels=None) -> jax.Array:
    """Fast ancestral sampling with activation caches (Ramachandran et al. 2017): `init_cache` / `step` in
    `sampling.ancestral`, drawing from the mixture as `sample_naive`; the same samples as `sample_naive` for
    the same key and parameters (up to float rounding in the mixture parameters, which changes a draw only
    when a uniform lands within ~1e-6 of a bin edge or a component's Gumbel margin).

    Args:
      key: PRNG key; pixel i (raster index) draws its C channels with `fold_in(key, i)`.
      num_samples: N (static, a positive int).
      labels: must be None (the model is unconditional).

    Returns:
      uint8 [N, H, W, C] in [0, 255].

    Raises:
      ValueError: labels given, or num_samples not a positive int.
    """
    if labels is not None:
        raise ValueError("PixelCNNPP is unconditional: sample_cached takes no labels")
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    return _ancestral(model, lambda cache, x, i: step(model, params, cache, x, i), init_cache(model, num_samples),
                      key, num_samples)
