"""Character n-gram model: normalisation for any context (add-k and interpolated Kneser-Ney), counts,
the Kneser-Ney discount's fallback, and agreement of log_prob with the per-step conditionals."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import ngram

TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog."
CHARS = sorted(set(TEXT)) + ["#"]  # '#' never occurs in training
V = len(CHARS)
TOKENS = np.array([CHARS.index(c) for c in TEXT])


@pytest.mark.parametrize("order,smoothing", list(itertools.product([1, 2, 3, 4], ngram.SMOOTHING)))
def test_probabilities_sum_to_one_for_any_context(order, smoothing):
    tables = ngram.fit(TOKENS, V, order, smoothing)
    rng = np.random.default_rng(0)
    # seen contexts, random (mostly unseen) contexts, contexts with the unseen token, short contexts
    seen = np.stack([TOKENS[i: i + order - 1] for i in range(len(TOKENS) - order + 1)])
    ctx = np.concatenate([seen, rng.integers(0, V, (40, order - 1)), np.full((3, order - 1), V - 1)])
    valid = np.concatenate([np.full(len(seen) + 43, order - 1), np.zeros(0, int)])
    valid[-3:] = [0, max(order - 2, 0), order - 1]
    p = ngram.probs(tables, jnp.asarray(ctx, jnp.int32), jnp.asarray(valid, jnp.int32), V, order, smoothing, k=0.5)
    assert p.shape == (len(ctx), V)
    assert bool(jnp.all(p > 0))  # unseen characters keep some mass
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)


def test_add_k_and_kneser_ney_values():
    # add-k at order 2: (c(h w) + k) / (c(h) + k V)
    t = CHARS.index("t")
    tables = ngram.fit(TOKENS, V, 2, "add_k")
    p = ngram.probs(tables, jnp.array([[t]]), jnp.array([1]), V, 2, "add_k", k=0.5)[0]
    follow = [TEXT[i + 1] for i in range(len(TEXT) - 1) if TEXT[i] == "t"]
    for w in ("h", " ", "#"):
        expect = (follow.count(w) + 0.5) / (len(follow) + 0.5 * V)
        np.testing.assert_allclose(p[CHARS.index(w)], expect, rtol=1e-5)
    # Kneser-Ney: the continuation-count unigram of a character is the number of distinct predecessors
    kn = ngram.fit(TOKENS, V, 2, "kneser_ney")
    a = CHARS.index("a")
    lows = kn["m1"]
    cont = dict(zip(np.asarray(lows["ids"]).tolist(), np.asarray(lows["counts"]).tolist()))
    assert cont[a] == len({TEXT[i - 1] for i in range(1, len(TEXT)) if TEXT[i] == "a"})
    # a frequent bigram beats its unigram back-off; a context never seen backs off to the unigram level
    p_kn = ngram.probs(kn, jnp.array([[t], [V - 1]]), jnp.array([1, 1]), V, 2)
    p_uni = ngram.probs(kn, jnp.array([[t]]), jnp.array([0]), V, 2)[0]
    assert p_kn[0, CHARS.index("h")] > p_uni[CHARS.index("h")]
    np.testing.assert_allclose(p_kn[1], p_uni, rtol=1e-6)


@pytest.mark.parametrize("smoothing", ngram.SMOOTHING)
def test_log_prob_is_sum_of_conditionals_and_sampling(smoothing):
    order = 3
    tables = ngram.fit(TOKENS, V, order, smoothing)
    x = jnp.asarray(TOKENS[None, :12], jnp.int32)
    lp = ngram.token_log_probs(tables, x[:, :-1], x[:, 1:], V, order, smoothing, 1.0)
    for t in range(1, 12):
        ctx = np.zeros(order - 1, int)
        n = min(t, order - 1)
        ctx[order - 1 - n:] = TOKENS[t - n: t]
        p = ngram.probs(tables, jnp.asarray(ctx[None]), jnp.array([n]), V, order, smoothing, 1.0)[0]
        np.testing.assert_allclose(lp[0, t - 1], np.log(p[TOKENS[t]]), rtol=1e-5)
    s = ngram.sample_cached(tables, jax.random.key(0), x[:, :4].repeat(2, 0), 20, V, order, smoothing, 1.0)
    assert s.shape == (2, 24)
    np.testing.assert_array_equal(np.asarray(s[:, :4]), np.asarray(x[:, :4].repeat(2, 0)))


def test_kneser_ney_discount_stays_in_open_unit_interval():
    """An order with no count of 1 (or of 2) gets the fallback discount 0.5, not n1 / (n1 + 2 n2) = 0 (or 1).

    On [0, 1, 1, 2, 2] every bigram occurs once (n2 = 0) and the continuation count of each seen unigram is
    2 (n1 = 0): with D_1 = 0 no mass reached the uniform floor, and p(0 | any context) was 0."""
    tables = ngram.fit([0, 1, 1, 2, 2], 3, 2)
    for table in tables.values():
        assert 0.0 < float(table["discount"]) < 1.0
    assert float(tables["m1"]["discount"]) == ngram.FALLBACK_DISCOUNT
    p = ngram.probs(tables, jnp.array([[0], [1], [2], [0]]), jnp.array([1, 1, 1, 0]), 3, 2)
    assert bool(jnp.all(p > 0))
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)
    # the estimate itself where both counts exist: D = n1 / (n1 + 2 n2)
    assert ngram._discount(np.array([1, 1, 1, 2, 5])) == 3 / (3 + 2 * 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="order"):
        ngram.fit(TOKENS, 65, 6)
    with pytest.raises(ValueError, match="smoothing"):
        ngram.fit(TOKENS, V, 2, "witten_bell")
    with pytest.raises(ValueError):
        ngram.fit(np.array([0, V]), V, 1)
