"""LDA: corpus checks, generative process, collapsed Gibbs invariants, VI ELBO monotonicity, topic recovery."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import gm_jax
from gm_jax.models import lda
from gm_jax.training.loop import train_and_evaluate

K, V = 3, 12


def _topics():
    """Three topics on disjoint blocks of 4 words (uniform inside the block)."""
    t = np.zeros((K, V), np.float32)
    for k in range(K):
        t[k, 4 * k: 4 * k + 4] = 0.25
    return jnp.asarray(t)


def _corpus(num_docs=60, length=30, seed=0):
    w, z = lda.sample(_topics(), jax.random.key(seed), num_docs, length, alpha=0.2, return_topics=True)
    words, docs = lda.corpus_arrays(list(np.asarray(w)), V)
    return jnp.asarray(words), jnp.asarray(docs), np.asarray(w), np.asarray(z)


def test_document_without_vocabulary_word_is_value_error():
    with pytest.raises(ValueError, match="document 1 has no in-vocabulary word"):
        lda.corpus_arrays([[1, 2], [-1, 12], [3]], V)
    with pytest.raises(ValueError, match="document 0"):
        lda.corpus_arrays([[]], V)
    words, docs = lda.corpus_arrays([[1, -1, 2], [5]], V)  # out-of-vocabulary ids are dropped
    assert words.tolist() == [1, 2, 5] and docs.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="alpha"):
        lda.check_hyperparameters(3, 0.0, 0.1)


def test_sample_follows_generative_process():
    _, _, w, z = _corpus()
    assert w.shape == (60, 30) and w.dtype == np.int32
    np.testing.assert_array_equal(w // 4, z)  # every word comes from its topic's block
    topics = lda.sample_topics(jax.random.key(0), 4, 50, 0.5)
    np.testing.assert_allclose(np.asarray(topics).sum(1), 1.0, rtol=1e-5)


def test_gibbs_count_invariants():
    words, docs, w, _ = _corpus()
    state = lda.gibbs_init(jax.random.key(1), words, docs, 60, K, V)
    sweep = jax.jit(lambda s, k: lda.gibbs_sweep(s, k, words, docs, 0.2, 0.1))
    z_before = np.asarray(state["z"])
    for i in range(3):
        state = sweep(state, jax.random.key(i))
        z = np.asarray(state["z"])
        assert z.min() >= 0 and z.max() < K
        ref = lda.gibbs_counts(state["z"], words, docs, 60, K, V)
        for name in ("ndk", "nkw", "nk"):
            np.testing.assert_array_equal(np.asarray(state[name]), np.asarray(ref[name]))
            assert np.asarray(state[name]).min() >= 0
        np.testing.assert_array_equal(np.asarray(state["ndk"]).sum(1), np.full(60, 30))
        np.testing.assert_array_equal(np.asarray(state["nkw"]).sum(0), np.bincount(w.ravel(), minlength=V))
        assert int(np.asarray(state["nk"]).sum()) == words.shape[0]
    assert np.mean(z != z_before) > 0.3  # the sampler moves


def _matched_error(estimated) -> float:
    est, true = np.asarray(estimated), np.asarray(_topics())
    cost = np.abs(true[:, None] - est[None]).sum(-1)  # L1 distance between topic distributions
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].max())


def test_gibbs_recovers_topics():
    words, docs, _, _ = _corpus()
    state = lda.gibbs_init(jax.random.key(1), words, docs, 60, K, V)
    sweep = jax.jit(lambda s, k: lda.gibbs_sweep(s, k, words, docs, 0.2, 0.1))
    ll = []
    for i in range(30):
        state = sweep(state, jax.random.key(i))
        ll.append(float(lda.gibbs_log_likelihood(state, 0.1)))
    assert ll[-1] > ll[0] + 100  # log p(w | z) climbs from the random start
    assert _matched_error(lda.gibbs_topics(state, 0.1)) < 0.15


def test_vi_elbo_never_decreases_and_recovers_topics():
    words, docs, _, _ = _corpus()
    state = lda.vi_init(jax.random.key(2), words, docs, 60, K, V, 0.2)
    step = jax.jit(lambda s: lda.vi_step(s, words, docs, 0.2, 0.1, 3))
    bound = jax.jit(lambda s: lda.elbo(s, words, docs, 0.2, 0.1))
    values = [float(bound(state))]
    for _ in range(40):
        state = step(state)
        values.append(float(bound(state)))
    values = np.asarray(values, np.float64)
    assert np.all(np.isfinite(values))
    assert np.all(np.diff(values) >= -1e-6 * np.abs(values[1:])), np.diff(values).min()
    assert values[-1] > values[0] + 100
    assert _matched_error(lda.vi_topics(state)) < 0.25  # random topics: ~1.3


def test_vi_best_keeps_the_highest_elbo():
    """`vi_best` returns the restart with the highest ELBO of stacked VI states (`vi_init_restarts`, stepped under
    vmap: the experiment, in the tiny run below) and every restart's ELBO."""
    words, docs, _, _ = _corpus()
    rng = np.random.default_rng(0)
    states = {"gamma": jnp.asarray(rng.gamma(5.0, 1.0, (3, 60, K)), jnp.float32),
              "lam": jnp.asarray(rng.gamma(100.0, 0.01, (3, K, V)), jnp.float32)}
    best_of = jax.jit(lambda s: lda.vi_best(s, words, docs, 0.2, 0.1))
    picked = set()
    for scale in (1.0, 30.0):  # restart 1 as drawn, then changed: whichever restart is best is kept
        states = {**states, "lam": states["lam"].at[1].multiply(scale)}
        best, elbos = best_of(states)
        assert elbos.shape == (3,) and len(set(np.asarray(elbos).tolist())) == 3
        picked.add(int(np.argmax(elbos)))
        for name in ("gamma", "lam"):
            np.testing.assert_array_equal(np.asarray(best[name]), np.asarray(states[name][int(np.argmax(elbos))]))
    assert len(picked) == 2
    with pytest.raises(ValueError, match="num_restarts"):
        lda.vi_init_restarts(jax.random.key(3), words, docs, 60, K, V, 0.2, 0)


def test_fold_in_and_completion():
    topics = _topics()
    words = jnp.asarray([0, 1, 2, 3, 8, 9, 10, 11], jnp.int32)  # doc 0 from topic 0, doc 1 from topic 2
    docs = jnp.asarray([0, 0, 0, 0, 1, 1, 1, 1], jnp.int32)
    theta = np.asarray(lda.fold_in(topics, words, docs, 2, 0.1, 50))
    assert theta[0, 0] > 0.9 and theta[1, 2] > 0.9
    ll = np.asarray(lda.completion_log_likelihood(topics, jnp.asarray(theta), words, docs))
    assert np.all(ll > np.log(0.25 * 0.9)) and np.all(ll <= np.log(0.25) + 1e-6)
    (ow, od), (hw, hd) = lda.split_for_completion(np.asarray(words), np.asarray(docs))
    assert ow.tolist() == [0, 2, 8, 10] and hw.tolist() == [1, 3, 9, 11] and hd.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="at least 2 tokens"):
        lda.split_for_completion(np.array([1, 2, 3]), np.array([0, 0, 1]))


def test_experiment_config_checks():
    """num_steps is derived from the sweep counts (0 = derived); a contradicting value is a ValueError."""
    assert gm_jax.api.build("lda_shakespeare").config.num_steps == 600
    assert gm_jax.api.build("lda_shakespeare", gibbs_sweeps=7, vi_iterations=3).config.num_steps == 10
    assert gm_jax.api.build("lda_shakespeare", gibbs_sweeps=7, num_steps=107).config.num_steps == 107
    with pytest.raises(ValueError, match="num_steps=7 .* gibbs_sweeps \\+ vi_iterations = 500 \\+ 100 = 600"):
        gm_jax.api.build("lda_shakespeare", num_steps=7)
    with pytest.raises(ValueError, match="vi_restarts"):
        gm_jax.api.build("lda_shakespeare", vi_restarts=0)
    with pytest.raises(ValueError, match="sample_from"):
        gm_jax.api.build("lda_shakespeare", sample_from="em")


def test_parallel_modes_run_the_same_sweep():
    """Every device runs the whole (sequential) sweep on its copy of the corpus with the global first key."""
    from experiments import lda_shakespeare
    from gm_jax.training import TrainStep
    from gm_jax.training.loop import run_keys

    experiment = gm_jax.build("lda_shakespeare", config=lda_shakespeare.get_test_config())
    batch = next(experiment.train_batches())
    out = {}
    for parallel in ("none", "pmap", "sharded"):
        step = TrainStep(experiment.update, parallel)
        state = step.put_state(experiment.init_state(run_keys(0)["init"]))
        for i in range(2):  # one Gibbs sweep, one VI iteration
            state, metrics = step(state, batch, jax.random.key(i))
        out[parallel] = (step.get_state(state).params, float(metrics["loss"]))
    for parallel in ("pmap", "sharded"):
        assert out[parallel][1] == pytest.approx(out["none"][1], rel=1e-6)
        for a, b in zip(jax.tree_util.tree_leaves(out[parallel][0]), jax.tree_util.tree_leaves(out["none"][0])):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_lda_shakespeare_tiny_run(shakespeare_dir, tmp_path):
    experiment = gm_jax.api.build("lda_shakespeare", num_topics=4, gibbs_sweeps=2, vi_iterations=2, vi_restarts=3,
                                  fold_in_iters=5, checkpoint_every=4, progress_bar=False)  # num_steps derived: 4
    stats = experiment.corpus()["stats"]
    assert stats["vocab_size"] > 1000 and stats["train_docs"] > 5000
    assert "thou" not in experiment.index and "the" not in experiment.index
    with pytest.raises(ValueError, match="document 1 has no in-vocabulary word"):
        experiment.encode(["the king is dead", "and thou art the"])
    results = train_and_evaluate(experiment, tmp_path)
    for key in ("gibbs_perplexity", "vi_perplexity", "unigram_perplexity"):
        assert np.isfinite(results[key]) and results[key] > 1
    assert len(results["gibbs_topics"]) == 4 and results["step"] == 4
    restart_elbos = results["vi_restart_elbo_per_token"]
    assert len(set(restart_elbos)) == 3 and results["vi_best_restart"] == int(np.argmax(restart_elbos))
    assert results["vi_final_elbo_per_token"] == pytest.approx(max(restart_elbos), rel=1e-5)
    for f in ("comparison.json", "comparison.md", "topics.txt", "training.png"):
        assert (tmp_path / f).stat().st_size > 100
    model = gm_jax.load(tmp_path)
    docs = model.sample(jax.random.key(0), 3)
    assert docs.shape == (3, 20) and int(docs.max()) < stats["vocab_size"]
    with pytest.raises(NotImplementedError):
        model.log_prob(np.asarray(docs))


def test_classical_benchmark_quick(shakespeare_dir, tmp_path):
    """benchmarks/classical.py --quick: EM, Gibbs, VI and Langevin throughputs are measured and written."""
    import json

    from benchmarks import classical

    classical.main(["--quick", "--repeats", "1", "--out", str(tmp_path)])
    records = json.loads((tmp_path / "classical.json").read_text())["records"]
    assert [r["name"] for r in records] == ["gmm_em_toy", "lda_gibbs_sweep", "lda_vi_iteration", "ebm_langevin_toy"]
    assert all(r["per_s"] > 0 and np.isfinite(r["per_s"]) for r in records)
    assert "Gibbs sweeps/s" in (tmp_path / "classical.md").read_text()
