"""Primed generation of the JSB music experiments (`JSBExperiment`: `sample(..., prompt=...)`,
`continuation_log_prob`, `primed_generation`, the primed MIDI files), on tiny models and synthetic chorales."""

import jax
import numpy as np
import pretty_midi
import pytest

from gm_jax.api import Model, get_experiment_module
from gm_jax.data import music
from properties import assert_cached_equals_naive

NAMES = ["melody_jsb", "lstm_jsb"]
P, L = 5, 6  # primer steps, new steps


@pytest.fixture(scope="module")
def models():
    """The test configs with random parameters of the right shapes (no initialisation to compile)."""
    out = {}
    for name in NAMES:
        module = get_experiment_module(name)
        experiment = module.Experiment(module.get_test_config())
        rng = np.random.default_rng(0)
        params = jax.tree_util.tree_map(lambda s: (0.5 * rng.normal(size=s.shape)).astype(s.dtype),
                                        jax.eval_shape(experiment.init_params, jax.random.key(0)))
        out[name] = Model(experiment, params)
    return out


def _primers(name: str, n: int) -> np.ndarray:
    """Distinct primers [n, P(, 88)] in the data's form: the first steps of n synthetic test chorales shifted."""
    rng = np.random.default_rng(0)
    if name == "melody_jsb":
        return rng.integers(0, music.MELODY_CLASSES, (n, P)).astype(np.int32)
    return (rng.random((n, P, music.NUM_KEYS)) < 0.05).astype(np.uint8)


@pytest.mark.parametrize("name", NAMES)
def test_primed_samples_keep_the_primer_and_cached_equals_naive(models, name):
    model = models[name]
    key = jax.random.key(3)
    primers = _primers(name, 3)
    # one primer per sample: the naive and the cached sampler draw the same continuation and keep the primer
    x = assert_cached_equals_naive(lambda **kw: model.sample(key, 3, method="naive", **kw),
                                   lambda **kw: model.sample(key, 3, method="cached", **kw),
                                   prompt=primers, length=L)
    assert x.shape[:2] == (3, P + L)
    np.testing.assert_array_equal(x[:, :P], primers)
    # one primer [P(, 88)] for every sample
    y = np.asarray(model.sample(key, 3, prompt=primers[0], length=L))
    np.testing.assert_array_equal(y[:, :P], np.broadcast_to(primers[0], y[:, :P].shape))


@pytest.mark.parametrize("name", NAMES)
def test_continuation_log_prob_is_full_minus_primer(models, name):
    model = models[name]
    e = model.experiment
    x = np.asarray(model.sample(jax.random.key(4), 3, prompt=_primers(name, 3), length=L))
    got = np.asarray(e.continuation_log_prob(model.params, x, P))
    # independently: two whole-sequence log-likelihoods (each from the start symbol), by the chain rule
    expected = np.asarray(model.log_prob(x)) - np.asarray(model.log_prob(x[:, :P]))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)
    assert np.all(got < 0)
    for bad in (0, P + L, 2.0):
        with pytest.raises(ValueError, match=r"primer_steps must be an int in \[1, T - 1\]"):
            e.continuation_log_prob(model.params, x, bad)


def _bad_primers(name):
    if name == "melody_jsb":
        ok = np.ones(P, np.int32)
        return [(ok[:0], "empty primer"), (ok.astype(np.float32), "dtype float32"),
                (np.array([1, music.MELODY_CLASSES]), r"out of range: \[23\]"),
                (np.array([-1, 2]), r"out of range: \[-1\]"),
                (np.ones((2, 3, 4), np.int32), r"shape \(2, 3, 4\)"), (np.ones((2, P), np.int32), "num_samples = 3")]
    ok = np.zeros((P, music.NUM_KEYS), np.uint8)
    return [(ok[:0], "empty primer"), (ok.astype(np.float32), "dtype float32"), (ok + 2, r"out of range: \[2\]"),
            (np.zeros((P, 12), np.uint8), r"shape \(5, 12\)"), (np.zeros(P, np.uint8), r"shape \(5,\)"),
            (np.zeros((2, P, music.NUM_KEYS), np.uint8), "num_samples = 3")]


@pytest.mark.parametrize("name", NAMES)
def test_bad_primers_raise(models, name):
    model = models[name]
    for bad, match in _bad_primers(name):
        with pytest.raises(ValueError, match="prompt: .*" + match):
            model.sample(jax.random.key(0), 3, prompt=bad, length=2)
    with pytest.raises(ValueError, match=r"length must be <= 2,147,483,641"):  # start step + 5 primer steps given
        model.sample(jax.random.key(0), 3, prompt=_primers(name, 3), length=2**31 - 6)


def test_primed_generation_and_its_midi(models, tmp_path):
    model = models["lstm_jsb"]
    e = model.experiment
    key = jax.random.key(5)
    primed = e.primed_generation(model.params, key)
    m = primed["metrics"]
    p, length = m["primer_steps"], m["primed_continuation_steps"]
    piece = e.pieces("test")[m["primed_test_piece"]]
    assert p == min(e.config.primer_bars * e.steps_per_bar, len(piece) - 1) and p + length <= len(piece)
    np.testing.assert_array_equal(primed["truth"], piece[:p + length])
    assert primed["samples"].shape == (e.num_primed_samples, p + length, music.NUM_KEYS)
    np.testing.assert_array_equal(primed["samples"][:, :p], np.broadcast_to(piece[:p], primed["samples"][:, :p].shape))
    assert m["primed_samples_keep_primer"] is True
    both = np.concatenate([primed["truth"][None], primed["samples"]])
    lp = np.asarray(e.continuation_log_prob(model.params, both, p))
    assert m["primed_true_continuation_log_prob_nats"] == pytest.approx(lp[0], rel=1e-5)
    assert m["primed_sample_continuation_log_prob_nats"] == pytest.approx(lp[1:].mean(), rel=1e-5)
    assert m["primed_true_continuation_nll_per_step_nats"] == pytest.approx(-lp[0] / length, rel=1e-5)
    # the true continuation without its primer: scored from the start frame alone
    alone = float(model.log_prob(primed["truth"][None, p:])[0])
    assert m["unprimed_true_continuation_log_prob_nats"] == pytest.approx(alone, rel=1e-5)

    e.write_artifacts(model.params, key, tmp_path)
    for i in range(e.num_primed_samples):
        pm = pretty_midi.PrettyMIDI(str(tmp_path / "samples" / f"primed_{i}.mid"))
        assert [inst.name for inst in pm.instruments] == ["primer", "continuation"]
        assert [(t.text, t.time) for t in pm.text_events] == [("continuation", p * e.config.step_seconds)]
        assert max(n.end for n in pm.instruments[0].notes) <= p * e.config.step_seconds + 1e-9
        np.testing.assert_array_equal(music.midi_to_roll(pm, e.config.step_seconds, p + length), primed["samples"][i])
    truth = music.midi_to_roll(tmp_path / "samples" / "primed_true.mid", e.config.step_seconds, p + length)
    np.testing.assert_array_equal(truth, primed["truth"])
    assert (tmp_path / "primed.png").stat().st_size > 1000
