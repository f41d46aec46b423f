"""gm_jax.data.text: tiny_shakespeare reading, the character vocabulary and its unknown-character policy,
windows with targets shifted by one."""

import numpy as np
import pytest

from gm_jax.data import text



def test_splits_and_vocabulary(shakespeare_dir):
    train, val, test = (text.load_text(s, shakespeare_dir) for s in ("train", "validation", "test"))
    assert (len(train), len(val), len(test)) == (1_003_854, 55_770, 55_770)
    assert train.startswith("First Citizen:\nBefore we proceed")
    vocab = text.CharVocab.from_text(train)
    assert vocab.size == 65 and vocab.chars == "".join(sorted(set(train)))
    assert vocab.unknown(val) == [] and vocab.unknown(test) == []  # nothing dropped in evaluation
    ids = vocab.encode(test)
    assert ids.dtype == np.int32 and ids.shape == (len(test),)
    assert vocab.decode(ids) == test


def test_bad_split_and_dataset():
    with pytest.raises(ValueError, match="no split"):
        text.load_text("valid")
    with pytest.raises(ValueError, match="not a text dataset"):
        text.load_text("train", name="mnist")


def test_unknown_character_policy():
    vocab = text.CharVocab("abc \n")
    np.testing.assert_array_equal(vocab.encode("cab"), [4, 2, 3])  # sorted: '\n', ' ', 'a', 'b', 'c'
    with pytest.raises(ValueError, match=r"outside the vocabulary.*'x'.*'z'"):
        vocab.encode("zax")
    np.testing.assert_array_equal(vocab.encode("zax", unknown="drop"), vocab.encode("a"))
    with pytest.raises(ValueError):
        vocab.encode("a", unknown="replace")
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        vocab.decode([5])


def test_windows_targets_shifted_by_one():
    tokens = np.arange(23)
    w = text.windows(tokens, 5)
    assert w["inputs"].shape == w["targets"].shape == (5, 5)
    np.testing.assert_array_equal(w["targets"][:, :-1], w["inputs"][:, 1:])
    np.testing.assert_array_equal(w["inputs"][1], [5, 6, 7, 8, 9])
    np.testing.assert_array_equal(w["targets"][1], [6, 7, 8, 9, 10])
    np.testing.assert_array_equal(w["targets"][:4].reshape(-1), np.arange(1, 21))
    # the tail that does not fill a window: one more window ending at the last token, scoring its last 2
    np.testing.assert_array_equal(w["inputs"][4], [17, 18, 19, 20, 21])
    np.testing.assert_array_equal(w["mask"][4], [0, 0, 0, 1, 1])
    with pytest.raises(ValueError):
        text.windows(tokens, 23)


@pytest.mark.parametrize("num_tokens, length, stride", [(23, 5, None), (30, 8, 3), (1000, 128, 64), (1000, 100, None),
                                                         (55_770, 128, 64), (55_770, 100, None), (55_770, 1024, None),
                                                         (9, 8, None), (10, 8, 8), (17, 8, 5)])
def test_windows_score_every_character_after_the_first_exactly_once(num_tokens, length, stride):
    """Issue 15: the final partial window was dropped (25 / 69 / 473 of the 55,769 tiny_shakespeare test
    targets for windows 128 / 100 / 1024); now the scored targets are exactly tokens[1:]."""
    w = text.windows(np.arange(num_tokens), length, stride)
    scored = w["targets"][w["mask"] > 0]
    assert w["mask"].sum() == num_tokens - 1
    np.testing.assert_array_equal(np.sort(scored), np.arange(1, num_tokens))
    # every scored target of a window after the first has at least length - stride tokens of context in it
    col = np.broadcast_to(np.arange(length), w["mask"].shape)
    assert col[1:][w["mask"][1:] > 0].min(initial=length) >= length - (stride or length)


def test_strided_windows_score_every_target_once_with_long_context():
    tokens = np.arange(30)
    w = text.windows(tokens, 8, stride=3)
    assert w["inputs"].shape == w["targets"].shape == w["mask"].shape == (8, 8)  # 29 - 8 = 21 = 7 * 3: no tail
    np.testing.assert_array_equal(w["inputs"][2], np.arange(6, 14))
    scored = w["targets"][w["mask"] > 0]
    np.testing.assert_array_equal(np.sort(scored), np.arange(1, 30))  # each target once, none twice
    # every scored target of a later window sees at least length - stride = 5 tokens of its window before it
    col = np.broadcast_to(np.arange(8), (8, 8))
    assert col[1:][w["mask"][1:] > 0].min() >= 5
    # the default stride is the consecutive windows, all targets scored (the last window only its tail)
    assert text.windows(np.arange(25), 8)["mask"].all()
    for bad in (0, 9):
        with pytest.raises(ValueError, match="stride"):
            text.windows(tokens, 8, stride=bad)


def test_random_windows_reproducible_and_resumable():
    tokens = np.arange(1000) % 7
    a = text.random_windows(tokens, 10, 4, seed=3)
    first = [next(a) for _ in range(3)]
    resumed = next(text.random_windows(tokens, 10, 4, seed=3, start_step=2))
    np.testing.assert_array_equal(resumed["inputs"], first[2]["inputs"])
    for b in first:
        assert b["inputs"].shape == (4, 10)
        np.testing.assert_array_equal(b["targets"], (b["inputs"] + 1) % 7)
    other = next(text.random_windows(tokens, 10, 4, seed=4))
    assert not np.array_equal(other["inputs"], first[0]["inputs"])
