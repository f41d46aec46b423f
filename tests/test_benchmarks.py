"""The benchmark harness end to end: `python -m benchmarks.run --quick` on vae_mnist, in-process."""
import json
import math

import pytest

from benchmarks import run


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, binarized_mnist_dir):
    out = tmp_path_factory.mktemp("bench")
    payload = run.main(["--quick", "--only", "vae_mnist", "--out", str(out)])
    return out, payload


def _ok(record) -> bool:
    t, s = record["throughput"], record["median_s_per_call"]
    return t is not None and s is not None and math.isfinite(t) and t > 0 and math.isfinite(s) and s > 0


def test_json_has_positive_finite_throughputs(quick_run):
    out, payload = quick_run
    data = json.loads((out / "benchmarks.json").read_text())
    assert data == json.loads(json.dumps(payload))  # what main returns is what it wrote
    env = data["environment"]
    assert env["jax_version"] and env["devices"]["count"] >= 1 and env["devices"]["platform"]
    records = data["records"]
    assert {r["entry"] for r in records} == {"vae_mnist"}
    train = [r for r in records if r["what"] == "train_step"]
    sample = [r for r in records if r["what"] == "sample"]
    assert "none" in {r["parallel"] for r in train}
    assert [r["num_samples"] for r in sample] == list(run.ENTRIES[0].quick_sample_sizes)
    for r in [next(r for r in train if r["parallel"] == "none"), *sample]:
        assert _ok(r), r
        assert r["repeats"] == len(r["timings_s"]) == run.QUICK_REPEATS
    assert train[0]["unit"] == "examples/s" and train[0]["batch_size"] == 8
    assert sample[0]["unit"] == "samples/s"


def test_every_parallel_mode_is_measured(quick_run):
    """With several devices (tests/conftest.py fakes 4 CPUs) pmap and sharded are timed in the same run."""
    import jax

    _, payload = quick_run
    train = {r["parallel"]: r for r in payload["records"] if r["what"] == "train_step"}
    expected = {"none", "pmap", "sharded"} if jax.local_device_count() > 1 else {"none"}
    assert set(train) == expected
    for mode, r in train.items():
        assert not r.get("error"), f"train step with parallel={mode} failed: {r['error']}"
        assert _ok(r), r


def test_markdown_has_a_row_per_record(quick_run):
    out, payload = quick_run
    lines = (out / "benchmarks.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith("| vae_mnist |")]
    assert len(rows) == len(payload["records"])
    assert any("examples/s" in row for row in rows) and any("samples/s" in row for row in rows)


def test_train_steps_report_flops_and_mfu(quick_run):
    _, payload = quick_run
    for r in (r for r in payload["records"] if r["what"] == "train_step"):
        assert r["flops_per_step"] > 0 and r["peak_flops_per_s"] > 0 and r["peak_source"], r
        assert math.isclose(r["achieved_flops_per_s"], r["flops_per_step"] / r["median_s_per_call"])
        assert 0 < r["mfu"] == r["achieved_flops_per_s"] / r["peak_flops_per_s"]


def _xla_step_flops(name, **overrides):
    import gm_jax
    from benchmarks import flops
    from gm_jax.training.loop import run_keys
    from gm_jax.training.steps import TrainStep

    experiment = gm_jax.build(name, data_dir="synthetic", **overrides)
    step = TrainStep(experiment.update, "none")
    keys = run_keys(0)
    batch = next(experiment.train_batches(0))  # lowered on the state's shapes: nothing is initialised or run
    compiled = step.lower(experiment.abstract_state(), batch, keys["train"]).compile()
    return experiment, flops.compiled_flops(compiled)


def test_xla_flop_counts_agree_with_the_analytic_counts():
    """XLA's count of a train step is the matmul FLOPs written out by hand plus a few percent of
    elementwise work (issue 19: within 10%): the default MLP VAE and a 2-layer Transformer."""
    from benchmarks import flops

    vae, xla = _xla_step_flops("vae_mnist")
    c = vae.config
    analytic = flops.analytic_vae_mlp_train_flops(tuple(c.hidden), c.latent_dim, c.batch_size)
    assert 1.0 <= xla / analytic <= 1.1, (xla, analytic)
    gpt, xla = _xla_step_flops("transformer_shakespeare", dim=64, num_layers=2, num_heads=2, block_size=64,
                               batch_size=8)
    c = gpt.config
    analytic = flops.analytic_transformer_train_flops(c.dim, c.num_layers, c.block_size, gpt.vocab_size, c.batch_size)
    assert 1.0 <= xla / analytic <= 1.1, (xla, analytic)


def test_traced_flops_count_every_iteration_of_a_loop():
    """`traced_matmul_flops` reads the jaxpr: a scan's body once per iteration, convolutions without the
    padding, and a while loop (trip count unknown) refused; on a train step it is the LSTM's matmuls written
    out, and just under XLA's count where XLA sees the whole step (no loop)."""
    import jax
    import jax.numpy as jnp

    import gm_jax
    from benchmarks import flops

    w, xs = jnp.ones((3, 4)), jnp.ones((5, 2, 3))
    assert flops.traced_matmul_flops(lambda w, xs: jax.lax.scan(lambda c, x: (c, x @ w), 0.0, xs)[1], w, xs) \
        == 5 * 2 * 2 * 3 * 4
    x, k = jnp.ones((1, 4, 1)), jnp.ones((3, 1, 1))  # [N, W, C], [W, I, O]: SAME padding, 10 of 12 taps read x
    conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"))  # noqa: E731
    assert flops.traced_matmul_flops(conv, x, k) == 2 * 10
    loop = lambda w: jax.lax.while_loop(lambda c: c[1] < 3, lambda c: (c[0] @ w, c[1] + 1), (w, 0))[0]  # noqa: E731
    with pytest.raises(ValueError, match="while loop"):
        flops.traced_matmul_flops(loop, jnp.ones((2, 2)))
    for cell in ("lstm", "rnn"):
        lstm = gm_jax.build("charrnn_shakespeare", data_dir="synthetic", window=7, cell=cell, batch_size=4)
        m = lstm.model
        traced = flops.experiment_train_flops(lstm, next(lstm.train_batches(0)))
        assert traced == flops.analytic_lstm_train_flops(m.embed_dim, m.hidden, m.num_layers, 7, m.out_dim, 4,
                                                         gates=4 if cell == "lstm" else 1), cell
    # without loops XLA sees the whole step: its count is the traced one plus the elementwise work
    # (activations, the loss, Adam)
    for name, overrides in (("pixelcnn_mnist", dict(features=8, num_layers=2, output_features=8, batch_size=4)),
                            ("vae_mnist", {})):
        experiment, xla = _xla_step_flops(name, **overrides)
        traced = flops.experiment_train_flops(experiment, next(experiment.train_batches(0)))
        assert 1.0 <= xla / traced <= 1.15, (name, xla, traced)


def test_accelerator_suite_times_both_dtypes(tmp_path):
    """`python -m benchmarks.accelerator --quick`: float32 and bfloat16 rows (bfloat16 where implemented),
    with FLOPs, MFU and memory."""
    from benchmarks import accelerator

    assert accelerator.main(["--quick", "--only", "vae_mnist", "pixelcnn_mnist", "--repeats", "1",
                             "--steps-per-timing", "1", "--out", str(tmp_path)]) == 0
    records = {(r["experiment"], r["compute_dtype"]): r
               for r in json.loads((tmp_path / "accelerator.json").read_text())["records"]}
    assert sorted(records) == [("pixelcnn_mnist", "bfloat16"), ("pixelcnn_mnist", "float32"),
                               ("vae_mnist", "bfloat16"), ("vae_mnist", "float32")]
    assert "not implemented" in records["pixelcnn_mnist", "bfloat16"]["skipped"]
    for key in (("vae_mnist", "float32"), ("vae_mnist", "bfloat16"), ("pixelcnn_mnist", "float32")):
        r = records[key]
        assert r["flops_per_step"] > 0 and r["mfu"] > 0 and r["memory_bytes"] > 0 and _ok(r), r
    assert "| vae_mnist | bfloat16 |" in (tmp_path / "accelerator.md").read_text()


def test_matmul_runner_counts_one_matmul_and_the_peak_is_its_rate():
    """`matmul_runner` (the twins time it in every round beside the steps) and `matmul_peak` built on it."""
    from benchmarks import flops as flop_counts
    from benchmarks import harness

    run, flops = flop_counts.matmul_runner(64)
    assert flops == 2 * 64 ** 3
    run(3)  # k matmuls, ended by block_until_ready
    peak = harness.matmul_peak(64, repeats=3)
    assert math.isfinite(peak) and peak > 0


def test_op_kinds_of_a_compiled_step_and_of_torch_ops():
    """`benchmarks.op_kinds` (the twins' profile): in the compiled gradient of a scan every dot is a matmul,
    the while loops are control flow, transposes and copies are data movement and tanh is the rest, a
    fusion that calls a dot is a matmul; PyTorch's aten names sort the same way."""
    import re

    import jax
    import jax.numpy as jnp

    from benchmarks.op_kinds import KINDS, hlo_op_kinds, torch_op_kind

    def f(w, x):
        def body(h, xt):
            h = jnp.tanh(xt + h @ w)
            return h, h
        hs = jax.lax.scan(body, x[0], x)[1].reshape(-1, 8)
        return jnp.sum(hs.T @ hs)

    text = jax.jit(jax.grad(f)).lower(jnp.ones((8, 8)), jnp.ones((5, 4, 8))).compile().as_text()
    kinds = hlo_op_kinds(text)
    ops = dict(re.findall(r"%([\w.\-]+) = .*?\s([a-z][a-z\-]*)\(", text))
    expected = {"dot": KINDS[0], "convolution": KINDS[0], "while": "control flow", "transpose": KINDS[1],
                "copy": KINDS[1], "tanh": KINDS[2], "add": KINDS[2], "multiply": KINDS[2]}
    checked = [(name, op) for name, op in ops.items() if op in expected]
    assert {"while", "tanh"} <= {op for _, op in checked} and {"dot", "fusion"} & set(ops.values())
    for name, op in checked:
        assert kinds[name] == expected[op], (name, op, kinds[name])
    dot_fusions = [n for n, op in ops.items() if op == "fusion" and kinds[n] == KINDS[0]]
    assert len(dot_fusions) + sum(op == "dot" for op in ops.values()) >= 3  # forward, backward, hs^T hs
    assert set(kinds.values()) <= {*KINDS, "control flow"}
    for fn, kind in ((lambda a: a.T[1:] * 1, KINDS[1]), (lambda a: jnp.tanh(a.T[1:]), KINDS[2])):
        text = jax.jit(fn).lower(jnp.ones((6, 9))).compile().as_text()
        entry = text[text.index("\nENTRY"):]
        root = re.search(r"ROOT %([\w.\-]+) = ", entry).group(1)  # one fusion: a transpose and a slice (and tanh)
        assert hlo_op_kinds(text)[root] == kind, (root, entry)
    assert [torch_op_kind(n) for n in ("aten::addmm", "aten::convolution_backward", "aten::mkldnn_rnn_layer",
                                        "aten::copy_", "aten::t", "aten::cat", "aten::gelu", "aten::lerp_")] == \
        [KINDS[0]] * 3 + [KINDS[1]] * 3 + [KINDS[2]] * 2
