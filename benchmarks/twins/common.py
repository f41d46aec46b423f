"""The side-by-side harness: a gm_jax train step against its PyTorch twin, interleaved in one process.

A twin (`Twin`) is a PyTorch module with the same parameters, in the same shapes, as one gm_jax
experiment's default model, plus the code that copies the Flax parameters into it and runs one
train step (the same loss, the same batch, `torch.optim.Adam` with optax's defaults and the
config's learning rate). Before timing, `check` asserts

* equal parameter counts, and
* equal initial loss on the same batch with the same weights (copied across), to `rtol`;

then `measure` times, in the steady state (each function called `warmup` times first),
blocks of `steps` train steps in rounds A, B1, B2 [, B3], P, A, B1, ... where

* A  = the gm_jax step (`TrainStep(experiment.update, "none")`, the step the training loop runs,
       ended by `jax.block_until_ready`),
* A' = the same step sharded over the host's CPU devices (`TrainStep(experiment.update, "sharded")`),
       when the process has more than one (`XLA_FLAGS=--xla_force_host_platform_device_count=N`) and
       they divide the batch: XLA:CPU runs each device's program on its own thread, so this is how a
       JAX step uses every core for ops too small to split,
* B1 = PyTorch with 1 thread, B2 = PyTorch with all threads (`torch.set_num_threads`),
* B3 = `torch.compile` of the twin's step with all threads (`--compile`; recorded as an
       error when it does not compile),

and reports median ms/step per variant, the ratios PyTorch / gm_jax (> 1: gm_jax is faster),
the gm_jax step's FLOP count (XLA's `cost_analysis()` of the compiled step) and FLOP/s, and the
matmul peak measured in the same rounds (P = a jitted 2048 x 2048 float32 matmul, `steps` of them
per round after the other variants, median), so every figure says how far it is from the hardware's
limit under the conditions the step was timed in (a shared VM's speed drifts within a run).
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import gm_jax
from gm_jax.training.loop import run_keys
from gm_jax.training.steps import TrainStep
from benchmarks.flops import matmul_runner


try:
    import torch
except ImportError as e:  # pragma: no cover - the benchmark's own dependency
    raise ImportError("benchmarks.twins needs PyTorch (CPU): pip install -e .[bench] "
                      "--extra-index-url https://download.pytorch.org/whl/cpu") from e


@dataclasses.dataclass
class Twin:
    """A PyTorch twin of one gm_jax experiment's default configuration.

    Attributes:
      name: entry name (`--only`).
      experiment: the gm_jax experiment (`gm_jax.build(experiment, **overrides)`).
      build: `build(experiment) -> torch.nn.Module`, the twin with freshly made parameters.
      load: `load(module, params)`: copy the Flax parameters (a pytree of arrays) into the module.
      loss: `loss(module, batch, keys) -> 0-d tensor`: the training loss on `batch` (the gm_jax
        batch dict as numpy arrays); `keys` [B] are the gm_jax per-example keys of that step, for
        twins whose loss draws noise (they may turn them into the same noise as gm_jax's, see
        `jax_noise`), or None when timing (the twin then draws with torch's generator).
      jax_loss: `jax_loss(experiment, params, batch, keys) -> float`, the loss the twin must equal
        (default: `experiment.loss_fn(params, batch, keys)[0]`).
      step: `step(module, optimizer, batch) -> None` for updates that are not one Adam step on
        `loss` (a GAN's two-player step); None: `loss(module, batch, None).backward()` + Adam.
      optimizer: `optimizer(module, experiment) -> torch optimizer(s)` (default Adam, lr from the
        config, optax's betas and eps).
      variables: `variables(experiment, state) -> pytree`, what `load` and `jax_loss` receive and the check
        counts (default `experiment.params_of(state)`, the sampler's parameters; a GAN's twin takes both
        players' parameters).
      overrides: config overrides (none: the default configuration).
      rtol: tolerance of the initial-loss check.
      flops: `flops(experiment, batch) -> float`, the step's FLOPs on that train batch
        (`benchmarks.flops.experiment_train_flops`), for a step XLA's count misses most of (it counts a
        `lax.scan`'s body once); None: XLA's count.
    """

    name: str
    experiment: str
    build: Callable[[Any], "torch.nn.Module"]
    load: Callable[["torch.nn.Module", Any], None]
    loss: Callable[["torch.nn.Module", dict, Any], "torch.Tensor"]
    jax_loss: Callable[[Any, Any, dict, Any], float] | None = None
    step: Callable[["torch.nn.Module", Any, dict], None] | None = None
    optimizer: Callable[["torch.nn.Module", Any], Any] | None = None
    variables: Callable[[Any, Any], Any] | None = None
    overrides: dict = dataclasses.field(default_factory=dict)
    rtol: float = 1e-4
    flops: Callable[[Any, dict], float] | None = None


# -- helpers the twins share ---------------------------------------------------------------------

def t(x, dtype=None) -> "torch.Tensor":
    """A numpy / jax array as a torch tensor (copied; float arrays as float32 unless `dtype`)."""
    a = np.array(x)
    if dtype is None and a.dtype.kind == "f":
        a = a.astype(np.float32)
    out = torch.from_numpy(a)
    return out if dtype is None else out.to(dtype)


def conv_weight(kernel) -> "torch.Tensor":
    """A Flax HWIO conv kernel [kh, kw, C_in, C_out] as torch's OIHW."""
    return t(np.transpose(np.asarray(kernel), (3, 2, 0, 1)))


def dense_weight(kernel) -> "torch.Tensor":
    """A Flax Dense kernel [in, out] as torch.nn.Linear's [out, in]."""
    return t(np.asarray(kernel).T)


def assign(param: "torch.nn.Parameter", value: "torch.Tensor") -> None:
    """Copy `value` into `param`, raising ValueError on a shape mismatch (names both shapes)."""
    if tuple(param.shape) != tuple(value.shape):
        raise ValueError(f"twin parameter shape {tuple(param.shape)} != copied value shape {tuple(value.shape)}")
    with torch.no_grad():
        param.copy_(value)


def adam(module: "torch.nn.Module", experiment) -> "torch.optim.Optimizer":
    """torch Adam with optax.adam's defaults (b1 0.9, b2 0.999, eps 1e-8) and the config's learning rate."""
    return torch.optim.Adam(module.parameters(), lr=float(experiment.config.learning_rate),
                            betas=(0.9, 0.999), eps=1e-8)


def count_params(tree) -> int:
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(tree)))


def _np_batch(batch: dict) -> dict:
    return {k: np.asarray(v) for k, v in batch.items()}


# -- the measurement -----------------------------------------------------------------------------

PEAK = "matmul_peak"  # the timing key of the interleaved matmul (ms per 2048^3 matmul)


class Pair:
    """One twin set up for timing: the gm_jax step and state, the torch module, optimizer and batch."""

    def __init__(self, twin: Twin):
        self.twin = twin
        self.experiment = gm_jax.build(twin.experiment, **twin.overrides)
        keys = run_keys(self.experiment.config.seed)
        self.state = jax.device_get(self.experiment.jit_init_state(keys["init"]))
        self.params = (twin.variables or (lambda e, s: e.params_of(s)))(self.experiment, self.state)
        self.batch = next(iter(self.experiment.train_batches(0)))
        self.np_batch = _np_batch(self.batch)
        self.key = jax.random.fold_in(keys["train"], 0)
        self.module = twin.build(self.experiment)
        twin.load(self.module, self.params)
        self.opt = (twin.optimizer or adam)(self.module, self.experiment)
        self.compiled: dict = {}  # parallel mode -> the compiled gm_jax step (`jax_runner`; its HLO: the profile)

    def check(self) -> dict:
        """Assert equal parameter counts and equal initial loss; return both counts and losses.

        Raises:
          AssertionError: the twin differs (names the two values).
        """
        twin, exp = self.twin, self.experiment
        n_jax = count_params(self.params)
        n_torch = int(sum(p.numel() for p in self.module.parameters()))
        assert n_jax == n_torch, f"{twin.name}: gm_jax has {n_jax} parameters, the twin {n_torch}"
        bs = int(jax.tree_util.tree_leaves(self.batch)[0].shape[0])
        keys = jax.random.split(self.key, bs)  # the keys TrainStep gives the update
        if twin.jax_loss is not None:
            l_jax = float(twin.jax_loss(exp, self.params, self.batch, keys))
        else:
            l_jax = float(exp.loss_fn(self.params, self.batch, keys)[0])
        with torch.no_grad():
            l_torch = float(twin.loss(self.module, self.np_batch, np.asarray(jax.random.key_data(keys))))
        assert np.isfinite(l_jax) and abs(l_jax - l_torch) <= twin.rtol * max(1.0, abs(l_jax)), (
            f"{twin.name}: initial loss gm_jax {l_jax:.7g} != twin {l_torch:.7g} (rtol {twin.rtol})")
        return {"params": n_jax, "loss_gm_jax": l_jax, "loss_torch": l_torch}

    def jax_runner(self, parallel: str = "none") -> tuple[Callable[[int], None], float]:
        """(run(k): k gm_jax train steps under `parallel` ended by block_until_ready, XLA's FLOP count of
        one step, all its devices)."""
        step = TrainStep(self.experiment.update, parallel, compiler_options=self.experiment.compiler_options)
        state = step.put_state(jax.tree_util.tree_map(np.copy, self.state))
        box = {"state": state}
        self.compiled[parallel] = step._step.lower(state, step.put_batch(self.batch), self.key).compile()
        try:
            cost = self.compiled[parallel].cost_analysis()
            cost = cost[0] if isinstance(cost, (list, tuple)) else cost
            flops = float(cost.get("flops", float("nan")))
        except Exception:  # noqa: BLE001 - a backend without cost analysis: FLOP/s left blank
            flops = float("nan")

        def run(k):
            for i in range(k):
                box["state"], metrics = step(box["state"], self.batch, jax.random.fold_in(self.key, i))
            jax.block_until_ready((box["state"], metrics))

        return run, flops

    def torch_runner(self, threads: int, compiled: bool = False) -> Callable[[int], None]:
        """run(k): k PyTorch train steps with `threads` intra-op threads (`torch.compile`d if asked)."""
        twin, module, opt, batch = self.twin, self.module, self.opt, self.np_batch

        if twin.step is not None:
            def one():
                twin.step(module, opt, batch)
        else:
            def one():
                opt.zero_grad(set_to_none=True)
                twin.loss(module, batch, None).backward()
                opt.step()
        fn = torch.compile(one) if compiled else one

        def run(k):
            torch.set_num_threads(threads)
            for _ in range(k):
                fn()

        return run


def measure(twin: Twin, *, rounds: int = 7, steps: int = 5, warmup: int = 2, compile_torch: bool = False,
            log=print) -> dict:
    """Check `twin`, then time gm_jax and PyTorch interleaved; return the record (see module docstring)."""
    pair = Pair(twin)
    record = {"name": twin.name, "experiment": twin.experiment, **pair.check()}
    jax_run, flops = pair.jax_runner()
    record["flops_source"] = "xla" if twin.flops is None else "jaxpr"
    if twin.flops is not None:
        record["flops_xla"], flops = flops, float(twin.flops(pair.experiment, pair.batch))
    all_threads = len(os.sched_getaffinity(0))  # the cores this process may use (`--cores`): XLA's threads too
    runners = {"gm_jax": jax_run}
    batch_size = int(jax.tree_util.tree_leaves(pair.batch)[0].shape[0])
    if jax.local_device_count() > 1 and batch_size % jax.local_device_count() == 0:
        runners["gm_jax_sharded"] = pair.jax_runner("sharded")[0]
    runners.update({"torch_1": pair.torch_runner(1), f"torch_{all_threads}": pair.torch_runner(all_threads)})
    record["cores"] = all_threads
    if compile_torch:
        runners["torch_compile"] = pair.torch_runner(all_threads, compiled=True)
    runners[PEAK], peak_flops = matmul_runner()  # the peak, measured in the same rounds as the steps
    timings: dict[str, list[float]] = {k: [] for k in runners}
    errors = {}
    for name, run in list(runners.items()):
        try:
            run(warmup)
        except Exception as e:  # noqa: BLE001 - torch.compile may not handle a twin: recorded, not fatal
            if not name.startswith("torch_compile"):
                raise
            errors[name] = f"{type(e).__name__}: {e}"[:300]
            del runners[name], timings[name]
    for _ in range(rounds):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(steps)
            timings[name].append((time.perf_counter() - t0) / steps * 1e3)
    torch.set_num_threads(all_threads)
    ms = {k: statistics.median(v) for k, v in timings.items()}
    peak = peak_flops / ms.pop(PEAK) / 1e6
    record.update({
        "ms_per_step": ms, "timings_ms": timings, "errors": errors, "matmul_peak_gflops": peak,
        "ratio": {k: ms[k] / ms["gm_jax"] for k in ms if k.startswith("torch_")},
        "flops_per_step": flops, "gflops_per_s": flops / ms["gm_jax"] / 1e6, "batch_size": batch_size,
    })
    if "gm_jax_sharded" in ms:
        record.update({"host_devices": jax.local_device_count(),
                       "ratio_sharded": {k: ms[k] / ms["gm_jax_sharded"] for k in ms if k.startswith("torch_")},
                       "gflops_per_s_sharded": flops / ms["gm_jax_sharded"] / 1e6})
    log(f"{twin.name}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()) + f"; matmul peak {peak:.0f} GFLOP/s")
    return record
