"""docs/sampling_basics.py: every sampler passes its test against the exact distribution (fixed seed), and the
same samples fail against a deliberately wrong one, so the checks can fail."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[1] / "docs" / "sampling_basics.py"


@pytest.fixture(scope="module")
def basics():
    spec = importlib.util.spec_from_file_location("sampling_basics", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_samplers_match_their_exact_distributions_and_wrong_ones_are_rejected(basics, capsys):
    rows = basics.main(["--seed", "0", "--num-samples", "20000"])
    out = capsys.readouterr().out
    assert len(rows) == 6
    for r in rows:
        assert r["sampler"] in out and r["wrong"] in out
        assert r["p_value"] > 1e-3, r      # the exact distribution is not rejected
        assert r["p_value_wrong"] < 1e-3, r  # the wrong one is
    assert {r["test"] for r in rows} == {"chi-square", "KS"}


def test_exact_distributions(basics):
    pairs = basics.lda_pair_probs()
    assert pairs.shape == (3, 3) and pairs.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(pairs, pairs.T)  # exchangeable words
    # each word's marginal: theta's mean is uniform (symmetric alpha), so p(w) = mean over topics of beta_kw
    np.testing.assert_allclose(pairs.sum(1), basics.LDA_TOPICS.mean(0))
    # the words share theta, so they are positively dependent: same-word pairs are more likely than independent
    assert np.all(np.diag(pairs) > pairs.sum(1) ** 2)
    cdf = basics.gmm_cdf(np.array([-50.0, 0.0, 50.0]))
    np.testing.assert_allclose(cdf[[0, 2]], [0.0, 1.0], atol=1e-12)
    assert 0.3 < cdf[1] < 0.8
