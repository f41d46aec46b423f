"""gm_jax.nn: masks, shifted convolutions' receptive fields, activations, errors."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax import nn as gnn


def _receptive(module, shape, out_pos, out_ch=0):
    """Boolean [H, W, C] map of the inputs that output (r, c, out_ch) of `module` depends on."""
    x = jax.random.normal(jax.random.key(0), (1, *shape))
    params = module.init(jax.random.key(1), x)
    params = jax.tree_util.tree_map(lambda p: p + 0.5, params)  # no zero taps by chance
    r, c = out_pos
    g = jax.grad(lambda x: module.apply(params, x)[0, r, c, out_ch])(x)[0]
    return np.asarray(g != 0)


def test_causal_mask_a_and_b_single_channel():
    a = gnn.causal_mask((3, 3), 1, 1, "A")[..., 0, 0]
    b = gnn.causal_mask((3, 3), 1, 1, "B")[..., 0, 0]
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])


def test_causal_mask_per_channel_groups():
    """RGB: at the centre, mask A lets G see R and B see R, G; mask B also lets each see itself."""
    a = gnn.causal_mask((3, 3), 3, 6, "A", groups=3)[1, 1]  # [in 3, out 6], out groups of 2
    b = gnn.causal_mask((3, 3), 3, 6, "B", groups=3)[1, 1]
    np.testing.assert_array_equal(a, [[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]])


def test_causal_mask_rejects_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        gnn.causal_mask((2, 3), 1, 1, "A")
    with pytest.raises(ValueError, match="mask_type"):
        gnn.causal_mask((3, 3), 1, 1, "C")
    with pytest.raises(ValueError, match="divisible"):
        gnn.causal_mask((3, 3), 4, 6, "B", groups=3)


def test_masked_conv_receptive_field():
    rf = _receptive(gnn.MaskedConv2D(2, (5, 5), "A"), (7, 7, 1), (3, 3))[..., 0]
    expected = np.zeros((7, 7), bool)
    expected[1:3, 1:6] = True
    expected[3, 1:3] = True
    np.testing.assert_array_equal(rf, expected)
    rf_b = _receptive(gnn.MaskedConv2D(2, (5, 5), "B"), (7, 7, 1), (3, 3))[..., 0]
    expected[3, 3] = True
    np.testing.assert_array_equal(rf_b, expected)


def test_masked_conv_channel_masks():
    """Mask A with 3 groups: output group 1 (G) at the centre sees input channel R only."""
    rf = _receptive(gnn.MaskedConv2D(3, (3, 3), "A", groups=3), (5, 5, 3), (2, 2), out_ch=1)
    assert rf[2, 2].tolist() == [True, False, False]
    assert rf[1, 1].all() and not rf[2, 3].any() and not rf[3].any()


def test_down_shifted_conv_receptive_field():
    rf = _receptive(gnn.DownShiftedConv2D(2, (2, 3)), (6, 6, 1), (3, 3))[..., 0]
    expected = np.zeros((6, 6), bool)
    expected[2:4, 2:5] = True
    np.testing.assert_array_equal(rf, expected)
    shifted = _receptive(_Shifted(gnn.DownShiftedConv2D(2, (2, 3))), (6, 6, 1), (3, 3))[..., 0]
    np.testing.assert_array_equal(shifted, np.roll(expected, -1, axis=0))  # rows 1..2: strictly above


def test_down_right_shifted_conv_receptive_field():
    rf = _receptive(gnn.DownRightShiftedConv2D(2, (2, 2)), (6, 6, 1), (3, 3))[..., 0]
    expected = np.zeros((6, 6), bool)
    expected[2:4, 2:4] = True
    np.testing.assert_array_equal(rf, expected)


def test_strided_and_transposed_shapes_and_causality():
    x = jnp.ones((2, 28, 28, 3))
    down = gnn.DownShiftedConv2D(4, (2, 3), strides=(2, 2))
    assert down.apply(down.init(jax.random.key(0), x), x).shape == (2, 14, 14, 4)
    right = gnn.DownRightShiftedConv2D(4, (2, 2), strides=(2, 2))
    assert right.apply(right.init(jax.random.key(0), x), x).shape == (2, 14, 14, 4)
    y = jnp.ones((2, 7, 7, 3))
    for mod in (gnn.DownShiftedConvTranspose2D(4), gnn.DownRightShiftedConvTranspose2D(4)):
        assert mod.apply(mod.init(jax.random.key(0), y), y).shape == (2, 14, 14, 4)
    # output rows 2i, 2i+1 of the upsampling see input row i only
    for mod in (gnn.DownShiftedConvTranspose2D(2), gnn.DownRightShiftedConvTranspose2D(2)):
        for out_r in (4, 5):
            rf = _receptive(mod, (4, 4, 1), (out_r, 3))[..., 0]
            assert rf[2].any() and not np.delete(rf, 2, axis=0).any()
    rf = _receptive(gnn.DownRightShiftedConvTranspose2D(2), (4, 4, 1), (5, 3))[..., 0]
    assert not rf[:, 2:].any()  # column 3 of the fine grid sees coarse column <= 1


def test_shifts():
    x = jnp.arange(2 * 3 * 3 * 1.0).reshape(2, 3, 3, 1)
    np.testing.assert_array_equal(gnn.down_shift(x)[:, 0], 0)
    np.testing.assert_array_equal(gnn.down_shift(x)[:, 1:], x[:, :2])
    np.testing.assert_array_equal(gnn.right_shift(x)[:, :, 0], 0)
    np.testing.assert_array_equal(gnn.right_shift(x)[:, :, 1:], x[:, :, :2])


def test_gated_activation_and_concat_elu():
    x = jax.random.normal(jax.random.key(0), (3, 8))
    np.testing.assert_allclose(gnn.gated_activation(x), np.tanh(x[:, :4]) * jax.nn.sigmoid(x[:, 4:]), rtol=1e-6)
    with pytest.raises(ValueError, match="even"):
        gnn.gated_activation(jnp.ones((2, 3)))
    y = gnn.concat_elu(x)
    assert y.shape == (3, 16)
    np.testing.assert_allclose(y, jax.nn.elu(np.concatenate([x, -x], -1)), rtol=1e-6)


def test_down_shifted_conv_needs_odd_width():
    with pytest.raises(ValueError, match="odd"):
        gnn.DownShiftedConv2D(2, (2, 2)).init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))


import flax.linen as nn  # noqa: E402


class _Shifted(nn.Module):
    inner: nn.Module

    def __call__(self, x):
        return gnn.down_shift(self.inner(x))


@pytest.mark.parametrize("kernel,strides,hw", [((4, 4), (2, 2), (7, 7)), ((6, 3), (3, 2), (4, 5)),
                                               ((1, 3), (2, 2), (3, 4))])  # (1, 3) / 2: a phase without taps
def test_fractionally_strided_conv_is_conv_transpose(kernel, strides, hw):
    """The phase-by-phase evaluation gives flax's ConvTranspose(padding="SAME"), values and gradients,
    with the same parameter names and shapes (so one can replace the other)."""
    import flax.linen as nn

    x = jax.random.normal(jax.random.key(0), (2, *hw, 3))
    ref = nn.ConvTranspose(5, kernel, strides, "SAME")
    params = ref.init(jax.random.key(1), x)
    params = jax.tree_util.tree_map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
    layer = gnn.FractionallyStridedConv2D(5, kernel, strides)
    assert jax.tree_util.tree_map(jnp.shape, layer.init(jax.random.key(1), x)) == \
        jax.tree_util.tree_map(jnp.shape, params)
    y_ref, y = jax.jit(ref.apply)(params, x), jax.jit(layer.apply)(params, x)
    assert y.shape == (2, hw[0] * strides[0], hw[1] * strides[1], 5)
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))
    g_ref, g = (jax.jit(jax.grad(loss(m), (0, 1)))(params, x) for m in (ref, layer))
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref)):
        np.testing.assert_allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match="NHWC"):
        layer.apply(params, x[0])


# -- the fast-backward layers equal the plain ones (values and gradients, float32 tolerance) -------------

def _assert_same_function(f_ref, f, params, x, atol=1e-4, second_order=False):
    """f(params, x) == f_ref(params, x), and so are the gradients with respect to params and x, and (if
    `second_order`) the gradient of a gradient (what a Langevin step inside a training loss differentiates)."""
    np.testing.assert_allclose(jax.jit(f)(params, x), jax.jit(f_ref)(params, x), rtol=1e-5, atol=1e-5)
    loss = lambda fn: lambda p, x: jnp.sum(jnp.sin(fn(p, x)))  # noqa: E731 - a non-linear cotangent
    g_ref, g = (jax.jit(jax.grad(loss(fn), (0, 1)))(params, x) for fn in (f_ref, f))
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol)
    if not second_order:
        return
    gg = lambda fn: jax.grad(lambda p: jnp.sum(jax.grad(loss(fn), 1)(p, x) ** 2))  # noqa: E731
    for a, b in zip(jax.tree_util.tree_leaves(jax.jit(gg(f))(params)),
                    jax.tree_util.tree_leaves(jax.jit(gg(f_ref))(params)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=10 * atol)


def _noisy(params):
    return jax.tree_util.tree_map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)


@pytest.mark.parametrize("cls,crop", [(gnn.DownShiftedConvTranspose2D, 1), (gnn.DownRightShiftedConvTranspose2D, 0)])
def test_shifted_conv_transposes_are_cropped_conv_transposes(cls, crop):
    """The phase-by-phase causal upsamplings equal `jax.lax.conv_transpose(..., "VALID")` cropped to rows
    [0, 2H) and columns [crop, crop + 2W) (openai/pixel-cnn's down(-right)_shifted_deconv2d), values and
    gradients."""
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
    layer = cls(4)
    params = _noisy(layer.init(jax.random.key(1), x))

    def reference(p, x):
        y = jax.lax.conv_transpose(x, p["params"]["kernel"], (2, 2), "VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y[:, :10, crop:crop + 12] + p["params"]["bias"]

    assert layer.apply(params, x).shape == (2, 10, 12, 4)
    _assert_same_function(reference, layer.apply, params, x)


@pytest.mark.parametrize("kernel,strides,padding,features", [
    ((3, 3), (1, 1), "SAME", 6), ((2, 3), (1, 1), ((1, 0), (1, 1)), 6), ((1, 1), (1, 1), "SAME", 6),
    ((4, 4), (2, 2), "SAME", 6), ((1, 1), (2, 2), "VALID", 6),
    ((3, 3), (1, 1), "SAME", 1), ((2, 3), (1, 1), ((2, 0), (1, 2)), 1)])  # one output channel: the tap sum
def test_conv_is_flax_conv(kernel, strides, padding, features):
    """`gnn.Conv` (on `conv2d`, whose backward pass is rewritten) is `flax.linen.Conv`: same parameter
    tree, values, gradients with respect to parameters and input, and second derivatives."""
    x = jax.random.normal(jax.random.key(0), (3, 9, 8, 4))
    ref = nn.Conv(features, kernel, strides, padding)
    params = _noisy(ref.init(jax.random.key(1), x))
    layer = gnn.Conv(features, kernel, strides, padding)
    assert jax.tree_util.tree_map(jnp.shape, layer.init(jax.random.key(1), x)) == \
        jax.tree_util.tree_map(jnp.shape, params)
    _assert_same_function(ref.apply, layer.apply, params, x, second_order=True)


def test_dense_is_flax_dense():
    x = jax.random.normal(jax.random.key(0), (3, 5, 4, 6))
    ref, layer = nn.Dense(7), gnn.Dense(7)
    params = _noisy(ref.init(jax.random.key(1), x))
    assert jax.tree_util.tree_map(jnp.shape, layer.init(jax.random.key(1), x)) == \
        jax.tree_util.tree_map(jnp.shape, params)
    _assert_same_function(ref.apply, layer.apply, params, x)


class _MaskedFlaxConv(nn.Module):
    """The reference: flax.linen.Conv (SAME) whose kernel is multiplied by the causal mask."""

    features: int
    kernel_size: tuple
    mask_type: str
    groups: int

    @nn.compact
    def __call__(self, x):
        conv = nn.Conv(self.features, self.kernel_size, padding="SAME", name="conv")
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (*self.kernel_size, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        mask = gnn.causal_mask(self.kernel_size, x.shape[-1], self.features, self.mask_type, self.groups)
        return conv.apply({"params": {"kernel": kernel * mask, "bias": bias}}, x)


@pytest.mark.parametrize("kernel,mask_type,groups", [((3, 3), "B", 1), ((7, 7), "A", 1), ((5, 3), "A", 3)])
def test_masked_conv_is_masked_flax_conv(kernel, mask_type, groups):
    """MaskedConv2D (computed with the kernel's rows at and above the centre only) equals flax's Conv with
    the masked kernel: values and gradients (the masked taps' gradients are zero in both)."""
    x = jax.random.normal(jax.random.key(0), (2, 7, 6, 3))
    ref = _MaskedFlaxConv(6, kernel, mask_type, groups)
    params = _noisy(ref.init(jax.random.key(1), x))
    layer = gnn.MaskedConv2D(6, kernel, mask_type, groups)
    _assert_same_function(ref.apply, layer.apply, params, x)


@pytest.mark.parametrize("cls,kernel,strides", [(gnn.DownShiftedConv2D, (3, 5), (1, 1)),
                                                (gnn.DownRightShiftedConv2D, (2, 2), (2, 2))])
def test_shifted_conv_is_padded_flax_conv(cls, kernel, strides):
    x = jax.random.normal(jax.random.key(0), (2, 8, 7, 3))
    layer = cls(5, kernel, strides)
    params = _noisy(layer.init(jax.random.key(1), x))
    pad = (gnn.down_right_shifted_padding if cls is gnn.DownRightShiftedConv2D else gnn.down_shifted_padding)(kernel)
    ref = nn.Conv(5, kernel, strides, "VALID")
    _assert_same_function(lambda p, x: ref.apply(p, jnp.pad(x, ((0, 0), *pad, (0, 0)))), layer.apply, params, x)


def test_conv2d_rejects_bad_arguments():
    x, k = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 5))
    with pytest.raises(ValueError, match="padding"):
        gnn.conv2d(x, k, padding="FULL")
    with pytest.raises(ValueError, match="non-negative"):
        gnn.conv2d(x, k, padding=((-1, 0), (0, 0)))
    with pytest.raises(ValueError, match="C_in"):
        gnn.conv2d(x, jnp.ones((3, 3, 3, 5)))
    with pytest.raises(ValueError, match="NHWC"):
        gnn.Conv(5).init(jax.random.key(0), x[0])


# -- XLA:CPU runs convolutions with its own kernels, not YNNPACK's (set by `import gm_jax`) -------------------

def test_xla_cpu_conv_flag_is_set_unless_the_user_chose(monkeypatch):
    from gm_jax import xla_cpu

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    monkeypatch.delenv("GM_JAX_XLA_CPU_CONV", raising=False)
    monkeypatch.setattr(xla_cpu, "backends_started", lambda: False)
    monkeypatch.setattr(xla_cpu, "MEASURED_JAXLIB", ((0, 0), (999, 0)))
    assert xla_cpu.set_conv_flag()
    assert os.environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {xla_cpu.CONV_FLAG}"
    assert xla_cpu.set_conv_flag() and os.environ["XLA_FLAGS"].count("ynn_fusion_type") == 1  # idempotent
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=individual_dot")  # the user's own
    assert not xla_cpu.set_conv_flag()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setenv("GM_JAX_XLA_CPU_CONV", "ynn")  # opted out
    assert not xla_cpu.set_conv_flag() and os.environ["XLA_FLAGS"] == ""
    monkeypatch.delenv("GM_JAX_XLA_CPU_CONV")
    monkeypatch.setattr(xla_cpu, "MEASURED_JAXLIB", ((0, 0), (0, 1)))  # a jaxlib it was not measured on
    assert not xla_cpu.set_conv_flag() and os.environ["XLA_FLAGS"] == ""
    monkeypatch.setattr(xla_cpu, "MEASURED_JAXLIB", ((0, 0), (999, 0)))
    monkeypatch.setattr(xla_cpu, "backends_started", lambda: True)  # too late to take effect: says so
    with pytest.warns(UserWarning, match="import gm_jax before"):
        xla_cpu.set_conv_flag()
    with pytest.raises(ValueError, match="xla_cpu_convolutions"):
        xla_cpu.compiler_options("eigen")
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setenv("GM_JAX_XLA_CPU_CONV", "ynnpack")  # a misspelt opt-out is an error, not ignored
    with pytest.raises(ValueError, match=r"GM_JAX_XLA_CPU_CONV='ynnpack'; valid values: \['xla', 'ynn'\]"):
        xla_cpu.set_conv_flag()
    assert os.environ["XLA_FLAGS"] == ""
    monkeypatch.setenv("GM_JAX_XLA_CPU_CONV", " YNN ")
    assert not xla_cpu.set_conv_flag()


# A program with an 82 MB intermediate (the [4096, 5000] product), run 7 times after 2 warm-up calls; prints
# HEAP_SET and the minor page faults of each call.
_FAULTS_SCRIPT = """
import resource
import gm_jax, jax, jax.numpy as jnp
f = jax.jit(lambda x, w, v: (x @ w) @ v)
x, w, v = jnp.ones((4096, 64)), jnp.ones((64, 5000)), jnp.ones((5000, 1))
for _ in range(2):
    jax.block_until_ready(f(x, w, v))
per_call = []
for _ in range(7):
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(f(x, w, v))
    per_call.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
print(gm_jax.xla_cpu.HEAP_SET, *per_call)
"""


def test_xla_cpu_step_buffers_stay_in_the_heap():
    """After `import gm_jax`, a program's 82 MB of intermediates are reused from the heap on every call
    instead of being mapped (and page-faulted in, 4 KB at a time) afresh; with GM_JAX_XLA_CPU_HEAP=off
    they are mapped every call (about 20,000 faults): the check can fail. Median faults per call over 7
    calls. Under load, a process sometimes has the block mapped afresh for a run of calls even with the
    setting on (`gm_jax/xla_cpu.py`, README), so "on" gets up to three processes; "off" must fault in its
    one."""
    import statistics
    import subprocess
    import sys

    from gm_jax import xla_cpu

    if not xla_cpu.HEAP_SET:
        pytest.skip("not glibc, or a jaxlib outside the measured range: XLA:CPU's buffers are left as they are")

    def median_faults(heap: str) -> float:
        env = {k: v for k, v in os.environ.items() if k != "JAX_CPU_ENABLE_ASYNC_DISPATCH"}
        env[xla_cpu.HEAP_ENV] = heap
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], env=env, capture_output=True, text=True,
                             check=True).stdout.split()
        assert out[0] == str(heap == "on"), out
        return statistics.median(float(v) for v in out[1:])

    off = median_faults("off")
    on = [median_faults("on")]
    while on[-1] >= 2_000 and len(on) < 3:
        on.append(median_faults("on"))
    assert on[-1] < 2_000 and off > 15_000, {"on": on, "off": off}


def test_xla_cpu_heap_setting_rejects_unknown_values(monkeypatch):
    """GM_JAX_XLA_CPU_HEAP takes on / off: any other value is a ValueError naming both, not a silent default."""
    from gm_jax import xla_cpu

    monkeypatch.setenv(xla_cpu.HEAP_ENV, "no")
    with pytest.raises(ValueError, match=r"GM_JAX_XLA_CPU_HEAP='no'; valid values: \['on', 'off'\]"):
        xla_cpu.keep_buffers_in_heap()
    monkeypatch.setenv(xla_cpu.HEAP_ENV, "OFF")
    assert not xla_cpu.keep_buffers_in_heap()


def test_xla_cpu_heap_setting_is_all_or_nothing(monkeypatch):
    """If glibc takes mmap off but refuses the trim threshold, mmap is turned back on (glibc's default) and
    `keep_buffers_in_heap` says False: the process is left as it started."""
    from gm_jax import xla_cpu

    if not xla_cpu._jaxlib_measured():
        pytest.skip("a jaxlib outside the measured range: the heap settings are never tried")
    calls = []

    class FakeLibc:
        gnu_get_libc_version = None

        def mallopt(self, param, value):
            calls.append((param, value))
            return 0 if param == xla_cpu.M_TRIM_THRESHOLD else 1

    monkeypatch.setenv(xla_cpu.HEAP_ENV, "on")
    monkeypatch.setattr(xla_cpu.ctypes, "CDLL", lambda name: FakeLibc())
    assert not xla_cpu.keep_buffers_in_heap()
    assert calls == [(xla_cpu.M_MMAP_MAX, 0), (xla_cpu.M_TRIM_THRESHOLD, 2 ** 31 - 1),
                     (xla_cpu.M_MMAP_MAX, xla_cpu.DEFAULT_MMAP_MAX)]


def test_train_steps_compile_convolutions_with_the_experiment_s_kernels():
    """In this process (flag set by `import gm_jax`) a convolution and its gradients compile to XLA's own
    convolutions, except in a program compiled with an experiment's `compiler_options` for "ynnpack" (the
    flows), which XLA:CPU hands to YNNPACK."""
    import gm_jax
    from gm_jax import xla_cpu
    from gm_jax.training.steps import TrainStep

    if not xla_cpu.CONV_FLAG_SET:
        pytest.skip("jaxlib outside the measured range: XLA:CPU keeps its default convolutions")
    assert gm_jax.build("glow_mnist").compiler_options == xla_cpu.YNNPACK_CONV_OPTIONS
    assert gm_jax.build("pixelcnn_mnist").compiler_options == {}
    x, k = jnp.ones((8, 14, 14, 64)), jnp.ones((3, 3, 64, 4))

    def update(k, batch, keys, axis_name):
        g = jax.grad(lambda k: jnp.sum(gnn.conv2d(batch["x"], k, padding="SAME") ** 2))(k)
        return k - g, {}

    for options, in_ynnpack in (({}, False), (xla_cpu.YNNPACK_CONV_OPTIONS, True)):
        step = TrainStep(update, "none", compiler_options=options)
        hlo = step._step.lower(k, {"x": x}, jax.random.key(0)).compile().as_text()
        ynn_convs = [line for line in hlo.splitlines() if "__ynn_fusion" in line and "conv_general_dilated" in line]
        assert bool(ynn_convs) == in_ynnpack
        if not in_ynnpack:
            assert "convolution(" in hlo


# -- the LSTM -----------------------------------------------------------------------------------------------
def _lstm_problem(dtype, t=6, n=3, d=5, h=4):
    ks = jax.random.split(jax.random.key(7), 8)
    w, u = (jax.random.normal(ks[0], (d, 4 * h), dtype) * 0.5, jax.random.normal(ks[1], (h, 4 * h), dtype) * 0.5)
    b = jax.random.normal(ks[2], (4 * h,), dtype) * 0.5
    xs, c0, h0 = (jax.random.normal(ks[3], (t, n, d), dtype), jax.random.normal(ks[4], (n, h), dtype),
                  jax.random.normal(ks[5], (n, h), dtype))
    # random cotangents on every output (hs and the final state), as a loss would give
    gh, gc, gl = (jax.random.normal(ks[6], (t, n, h), dtype), jax.random.normal(ks[7], (n, h), dtype),
                  jax.random.normal(ks[0], (n, h), dtype))
    return (w, u, b, xs, c0, h0), (gh, gc, gl)


def _reference_lstm_scan(w, u, b, xs, c0, h0):
    """A `lax.scan` of `lstm_step`, differentiated by JAX."""
    from gm_jax.nn.lstm import lstm_step

    def body(state, x):
        c, h = lstm_step(w, u, b, x, *state)
        return (c, h), h
    return jax.lax.scan(body, (c0, h0), xs)


@pytest.mark.parametrize("dtype, tol", [(jnp.float32, 2e-5), (jnp.float64, 1e-12)])
def test_lstm_scan_equals_a_scan_of_the_step_values_and_gradients(dtype, tol):
    """`lstm_scan`'s written-out backward pass (gate gradients in the loop, kernel / input gradients as one
    product each after it) gives the gradients JAX derives for a `lax.scan` of `lstm_step`, for every
    argument, with cotangents on the outputs and on the final state."""
    from gm_jax.nn.lstm import lstm_scan
    with jax.enable_x64(dtype == jnp.float64):
        args, (gh, gc, gl) = _lstm_problem(dtype)

        def loss(f, *a):
            (c, h), hs = f(*a)
            return jnp.sum(hs * gh) + jnp.sum(c * gc) + jnp.sum(h * gl)
        out, ref = lstm_scan(*args), _reference_lstm_scan(*args)
        for a, r in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(ref)):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, r, rtol=tol, atol=tol)
        grads = jax.grad(lambda *a: loss(lstm_scan, *a), argnums=tuple(range(6)))(*args)
        ref_grads = jax.grad(lambda *a: loss(_reference_lstm_scan, *a), argnums=tuple(range(6)))(*args)
        for name, a, r in zip(["w", "u", "b", "xs", "c0", "h0"], grads, ref_grads):
            assert a.shape == r.shape and a.dtype == dtype, name
            np.testing.assert_allclose(a, r, rtol=tol, atol=tol, err_msg=name)
        # under jit, and the zero-length sequence (the state passes through)
        np.testing.assert_allclose(jax.jit(lstm_scan)(*args)[1], ref[1], rtol=tol, atol=tol)
        (c, h), hs = lstm_scan(*args[:3], args[3][:0], *args[4:])
        assert hs.shape == (0,) + args[4].shape and (c == args[4]).all() and (h == args[5]).all()


def test_lstm_cell_has_flax_optimized_lstm_cell_parameters_and_values():
    """`LSTMCell` creates `flax.linen.OptimizedLSTMCell`'s parameters (names, shapes, values for a key: its
    checkpoints load) and computes the same update; `lstm_weights` refuses a tree that is not one."""
    import flax.linen as fnn

    from gm_jax.nn.lstm import LSTMCell, lstm_weights
    key = jax.random.key(0)
    x = jax.random.normal(key, (3, 5))
    carry = (jax.random.normal(jax.random.key(1), (3, 7)), jax.random.normal(jax.random.key(2), (3, 7)))
    ref = fnn.OptimizedLSTMCell(7).init(key, carry, x)
    ours = LSTMCell(7).init(key, carry, x)
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(ref)
    for a, r in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_array_equal(a, r)
    params = jax.tree_util.tree_map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(3), p.shape), ref)
    for a, r in zip(jax.tree_util.tree_leaves(LSTMCell(7).apply(params, carry, x)),
                    jax.tree_util.tree_leaves(fnn.OptimizedLSTMCell(7).apply(params, carry, x))):
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-6)
    bad = {k: v for k, v in params["params"].items() if k != "hg"}
    with pytest.raises(ValueError, match="hg"):
        lstm_weights(bad)


def test_lstm_scan_rejects_bad_arguments():
    from gm_jax.nn.lstm import lstm_scan
    (w, u, b, xs, c0, h0), _ = _lstm_problem(jnp.float32)
    with pytest.raises(ValueError, match=r"xs \[T, N, D\]"):
        lstm_scan(w, u, b, xs[0], c0, h0)
    with pytest.raises(ValueError, match="w must be"):
        lstm_scan(w[:-1], u, b, xs, c0, h0)
    with pytest.raises(ValueError, match="initial state"):
        lstm_scan(w, u, b, xs, c0[:-1], h0)
    with pytest.raises(ValueError, match="float"):
        lstm_scan(w.astype(jnp.int32), u.astype(jnp.int32), b.astype(jnp.int32), xs.astype(jnp.int32),
                  c0.astype(jnp.int32), h0.astype(jnp.int32))
