"""FLOPs of a train step and how close it runs to the hardware's limit (MFU).

* `compiled_flops(compiled, num_devices)`: XLA's count (`Compiled.cost_analysis()["flops"]`)
  of one call of a compiled program, summed over devices (a pmapped or sharded
  step's program is the per-device one, so it is multiplied by the device count).
* `analytic_vae_mlp_train_flops` / `analytic_transformer_train_flops` / `analytic_lstm_train_flops`: the
  matmul FLOPs of one training step written out by hand (forward, plus the
  weight and input gradients of every matmul whose input needs one), to
  cross-check XLA's count; XLA counts elementwise work too (activations,
  softmax, layer norm, the optimizer), so it should be a few percent above.
* `traced_matmul_flops(fn, *args)` / `experiment_train_flops(experiment, batch)`: the matmul and
  convolution FLOPs read from the step's jaxpr, every iteration of a `lax.scan` counted. XLA counts a
  loop's body once, so for the models that scan over time, rows or pixels (the recurrent nets, the
  PixelRNNs, the sentence VAE) this is the count to report (the twins and `benchmarks.run` do).
* `peak_flops(device)`: the peak the MFU is measured against. On a CPU, the
  measured throughput of a large jitted float32 matmul on the same device in
  the same process (`measured_matmul_flops`, on `matmul_runner`, the one matmul
  every peak here is timed with: the practical limit, not a
  datasheet figure); on a GPU/TPU, the vendor's dense peak for the device
  (`VENDOR_PEAK_FLOPS`, float32 without TF32 and bfloat16).

MFU = achieved FLOP/s (FLOPs per step, XLA's or traced, / median seconds per step) / peak.
"""
from __future__ import annotations

import functools
import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core

# device kind substring -> dense peak FLOP/s by dtype (vendor datasheets; SXM parts)
VENDOR_PEAK_FLOPS = {
    "H200": {"float32": 67e12, "bfloat16": 989e12},
    "H100": {"float32": 67e12, "bfloat16": 989e12},
    "A100": {"float32": 19.5e12, "bfloat16": 312e12},
    "L4": {"float32": 30.3e12, "bfloat16": 121e12},
    "TPU v4": {"float32": 275e12, "bfloat16": 275e12},
    "TPU v5e": {"float32": 197e12, "bfloat16": 197e12},
}


def compiled_flops(compiled, num_devices: int = 1) -> float | None:
    """XLA's FLOP count of one call of `compiled` (a `jax.stages.Compiled`), over all `num_devices`
    devices running it; None when the backend reports none."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older JAX: one dict per program
        analysis = analysis[0] if analysis else None
    if not analysis or analysis.get("flops") is None:
        return None
    return float(analysis["flops"]) * num_devices


def compiled_bytes(compiled) -> int | None:
    """Device memory of one call of `compiled` on one device, bytes: its arguments, outputs and temporaries
    (`Compiled.memory_analysis()`; outputs aliased to donated arguments counted once); None when the
    backend reports nothing."""
    m = compiled.memory_analysis()
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)


def _mlp_flops(dims: list[int], batch: int, input_grad: bool) -> float:
    """Matmul FLOPs of a training step through dense layers dims[0] -> dims[1] -> ...: forward, weight
    gradients, and input gradients (the first layer's only when `input_grad`)."""
    fwd = sum(2 * batch * a * b for a, b in zip(dims[:-1], dims[1:]))
    first = 2 * batch * dims[0] * dims[1]
    return 3 * fwd - (0 if input_grad else first)


def analytic_vae_mlp_train_flops(hidden: tuple[int, ...], latent_dim: int, batch: int, data_dim: int = 784) -> float:
    """Matmul FLOPs of one ELBO training step of the MLP VAE (`gm_jax.models.vae`, one latent sample per
    example): the encoder data_dim -> hidden... -> 2 * latent_dim (mean, log-variance; no input gradient: the
    data) and the decoder latent_dim -> reversed(hidden) -> data_dim (its input z needs a gradient)."""
    enc = [data_dim, *hidden, 2 * latent_dim]
    dec = [latent_dim, *reversed(hidden), data_dim]
    return _mlp_flops(enc, batch, input_grad=False) + _mlp_flops(dec, batch, input_grad=True)


def analytic_transformer_train_flops(dim: int, num_layers: int, seq_len: int, vocab_size: int, batch: int,
                                     query_block: int | None = None) -> float:
    """Matmul FLOPs of one training step of the decoder-only Transformer (`gm_jax.models.transformer.GPT`):
    per layer and token, the QKV (d x 3d), output (d x d) and MLP (d x 4d, 4d x d) projections and the
    attention scores and weighted values (d per query and key each), then the head (d x V); every
    matmul's backward is two matmuls of the same size (all inputs need gradients), so the step is 3x
    the forward. The keys each query meets are those `transformer.causal_attention` computes: query
    block [a, b) meets keys [0, b) (`query_block`: default the model's `QUERY_BLOCK`)."""
    from gm_jax.models import transformer

    qb = query_block or transformer.QUERY_BLOCK
    key_pairs = sum((min(a + qb, seq_len) - a) * min(a + qb, seq_len) for a in range(0, seq_len, qb))
    attention = 2 * 2 * dim * key_pairs  # scores and weighted values, summed over the sequence's queries
    projections = 2 * (3 * dim * dim + dim * dim + 8 * dim * dim) * seq_len
    forward = batch * (num_layers * (projections + attention) + 2 * dim * vocab_size * seq_len)
    return 3.0 * forward


def analytic_lstm_train_flops(input_dim: int, hidden: int, num_layers: int, seq_len: int, vocab_size: int,
                              batch: int, gates: int = 4, input_grad: bool = True) -> float:
    """Matmul FLOPs of one training step of the LSTM language model (`gm_jax.models.rnn.RNN`, cell "lstm"):
    per layer and time step the four gates' input and recurrent products, [N, D_in + H] x [D_in + H, 4H]
    (D_in = the embedding width for the first layer, H above it), then the read-out [N, H] x [H, V]; the
    backward pass is two matmuls of the same size per matmul (input and weight gradients), so the step
    is 3x the forward (the first step's recurrent input gradient included: the scan's transpose computes
    every iteration alike) less, with `input_grad=False` (data vectors, not embeddings, feed the first
    layer), the first layer's input gradients. `gates=1`: the vanilla RNN (cell "rnn"). XLA's cost
    analysis counts a `lax.scan`'s body once, not `seq_len` times, so it misses almost all of this;
    `experiment_train_flops` counts it from the step's jaxpr and is tested equal to this."""
    total = 0.0
    for layer in range(num_layers):
        d_in = input_dim if layer == 0 else hidden
        total += 3 * seq_len * 2 * batch * (d_in + hidden) * gates * hidden
        if layer == 0 and not input_grad:
            total -= seq_len * 2 * batch * d_in * gates * hidden
    return total + 3 * seq_len * 2 * batch * hidden * vocab_size


def _dot_general_flops(eqn) -> float:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    contract = math.prod(lhs[d] for d in lhs_contract)
    return 2.0 * math.prod(eqn.outvars[0].aval.shape) * contract  # output: batch x lhs free x rhs free


def _conv_flops(eqn) -> float:
    """2 x (multiply-adds that meet an input element, not padding or a dilation hole) of one convolution."""
    p = eqn.params
    dn = p["dimension_numbers"]
    lhs, kernel = (v.aval.shape for v in eqn.invars)
    out = eqn.outvars[0].aval.shape
    pairs = 1  # (output position, kernel tap) pairs that read an input element, over the spatial dims
    for i, (ld, kd, od) in enumerate(zip(dn.lhs_spec[2:], dn.rhs_spec[2:], dn.out_spec[2:])):
        lhs_dil, rhs_dil = p["lhs_dilation"][i], p["rhs_dilation"][i]
        pos = (np.arange(out[od])[:, None] * p["window_strides"][i] + np.arange(kernel[kd])[None, :] * rhs_dil
               - p["padding"][i][0])
        valid = (pos >= 0) & (pos <= (lhs[ld] - 1) * lhs_dil) & (pos % lhs_dil == 0)
        pairs *= int(valid.sum())
    # out batch x out features x valid pairs x the input features each output reads (in / groups)
    return 2.0 * out[dn.out_spec[0]] * out[dn.out_spec[1]] * pairs * kernel[dn.rhs_spec[1]]


def _jaxpr_matmul_flops(jaxpr) -> float:
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)  # a ClosedJaxpr's Jaxpr
    total = 0.0
    for eqn in jaxpr.eqns:
        name, params = eqn.primitive.name, eqn.params
        if name == "dot_general":
            total += _dot_general_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "scan":
            total += params["length"] * _jaxpr_matmul_flops(params["jaxpr"])
        elif name == "while":
            inner = _jaxpr_matmul_flops(params["body_jaxpr"]) + _jaxpr_matmul_flops(params["cond_jaxpr"])
            if inner:
                raise ValueError("a while loop with matmuls in its body: its trip count is not known from the "
                                 "program, so its FLOPs cannot be counted")
        elif name == "cond":
            total += max(_jaxpr_matmul_flops(b) for b in params["branches"])
        else:  # calls (pjit, closed_call, remat, custom_jvp / custom_vjp, shard_map): their bodies once
            for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
                if isinstance(params.get(key), (jex_core.Jaxpr, jex_core.ClosedJaxpr)):
                    total += _jaxpr_matmul_flops(params[key])
                    break
    return total


def traced_matmul_flops(fn, *args) -> float:
    """The matmul and convolution FLOPs of one call of `fn(*args)`, read from its jaxpr: 2 x (output
    elements) x (contraction size) for every `dot_general`, 2 x (multiply-adds that read an input element,
    padding and dilation holes excluded, as XLA counts) for every `conv_general_dilated`, a `lax.scan`'s
    body counted `length` times, a `lax.cond`'s costliest branch, calls (jit, remat, custom derivatives)
    followed. Elementwise work is not counted. XLA's cost analysis (`compiled_flops`) counts a loop's body
    once; this does not.

    Args:
      fn: a JAX-traceable function; args: its arguments (arrays or `jax.ShapeDtypeStruct`s).

    Raises:
      ValueError: `fn` has a `lax.while_loop` with matmuls in its body (a trip count the program does not
        state, e.g. an adaptive ODE solve).
    """
    return _jaxpr_matmul_flops(jax.make_jaxpr(fn)(*args))


def experiment_train_flops(experiment, batch: dict) -> float:
    """`traced_matmul_flops` of one single-device train step of `experiment` (its first stage's update, as
    `gm_jax.training.TrainStep` runs it) on `batch` (one train batch): for steps that loop over time, rows
    or pixels (`lax.scan`), where XLA's count sees one iteration. Returns FLOPs (float).

    Raises:
      ValueError: as `traced_matmul_flops`.
    """
    update = experiment.update_stages()[0][1]
    n = int(jax.tree_util.tree_leaves(batch)[0].shape[0])
    return traced_matmul_flops(lambda s, b, k: update(s, b, jax.random.split(k, n), None),
                               experiment.abstract_state(), batch, jax.random.key(0))


def matmul_runner(n: int = 2048, device=None):
    """(run, flops): run(k) computes a jitted float32 [n, n] @ [n, n] matmul k times on `device` (default:
    the first), ended by `block_until_ready` (compiled and run once here); flops = 2 n^3, one matmul's
    FLOP count. The one matmul every peak here is measured with (the twins also time it in their rounds)."""
    a = jax.device_put(jax.random.normal(jax.random.key(0), (n, n), jnp.float32), device or jax.devices()[0])
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))

    def run(k: int) -> None:
        jax.block_until_ready([f(a) for _ in range(k)])

    return run, 2.0 * n ** 3


def matmul_flops_per_s(device=None, n: int = 2048, repeats: int = 7) -> float:
    """The FLOP/s of `matmul_runner`'s matmul on `device`, median of `repeats` single timed calls."""
    run, flops = matmul_runner(n, device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(1)
        times.append(time.perf_counter() - t0)
    return flops / statistics.median(times)


@functools.lru_cache(maxsize=None)
def measured_matmul_flops(device=None, n: int = 2048, repeats: int = 7) -> float:
    """`matmul_flops_per_s`, measured once per process and device: the practical peak of dense float32
    work there."""
    return matmul_flops_per_s(device, n, repeats)


def peak_flops(device=None, dtype: str = "float32") -> tuple[float, str]:
    """(peak FLOP/s, where it comes from) for `device`: the vendor's dense `dtype` peak for a known
    GPU/TPU (`VENDOR_PEAK_FLOPS`), else (CPUs, unknown devices) `measured_matmul_flops` on it."""
    device = device or jax.devices()[0]
    if device.platform != "cpu":
        for kind, peaks in VENDOR_PEAK_FLOPS.items():
            if kind.lower() in device.device_kind.lower() and dtype in peaks:
                return peaks[dtype], f"vendor dense {dtype} peak of {kind}"
    return measured_matmul_flops(device), f"measured jitted float32 2048^2 matmul on {device.device_kind}"
