"""FSDD reading, labels and mu-law companding (gm_jax.data.audio)."""

import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.data import DatasetNotFoundError, audio


def test_mu_law_known_values():
    q = audio.mu_law_encode(np.array([-1.0, 0.0, 1.0, -2.0, 2.0]))
    np.testing.assert_array_equal(q, [0, 128, 255, 0, 255])
    assert q.dtype == np.int32
    np.testing.assert_allclose(audio.mu_law_decode(np.array([0, 255])), [-1.0, 1.0], atol=1e-6)
    # class 128 is the smallest positive level: f = 1/255, x = (256^(1/255) - 1) / 255
    np.testing.assert_allclose(audio.mu_law_decode(np.array([128])), [(256 ** (1 / 255) - 1) / 255], rtol=1e-4)
    # mu-law is symmetric: class q and class 255 - q decode to opposite amplitudes
    q_all = np.arange(256)
    np.testing.assert_allclose(audio.mu_law_decode(q_all), -audio.mu_law_decode(255 - q_all), atol=1e-7)


def test_mu_law_round_trip_and_monotone():
    q = np.arange(256)
    np.testing.assert_array_equal(audio.mu_law_encode(audio.mu_law_decode(q)), q)
    x = np.linspace(-1, 1, 10001, dtype=np.float32)
    enc = audio.mu_law_encode(x)
    assert np.all(np.diff(enc) >= 0) and enc.min() == 0 and enc.max() == 255
    # decode(encode(x)) is within half a quantisation step of x in the companded domain
    comp = lambda v: np.sign(v) * np.log1p(255 * np.abs(v)) / np.log1p(255)  # noqa: E731
    assert np.abs(comp(audio.mu_law_decode(enc)) - comp(x)).max() <= 1 / 255 + 1e-5
    # the jax path gives the same classes
    np.testing.assert_array_equal(np.asarray(audio.mu_law_encode(jnp.asarray(x))), enc)
    # bin edges: the classes either side of every inner edge
    e = audio.mu_law_bin_edges()
    mid = 0.5 * (np.maximum(e[:-1], -1.0) + np.minimum(e[1:], 1.0))
    np.testing.assert_array_equal(audio.mu_law_encode(mid), q)


def test_labels_from_names_and_bad_labels():
    assert audio.parse_name("7_jackson_32.wav") == (7, "jackson", 32)
    assert audio.parse_name("/x/y/0_yweweler_0.wav") == (0, "yweweler", 0)
    with pytest.raises(ValueError, match="0..9"):
        audio.parse_name("12_jackson_3.wav")
    with pytest.raises(ValueError, match="george.*jackson.*lucas.*nicolas.*theo.*yweweler"):
        audio.parse_name("1_alice_3.wav")
    with pytest.raises(ValueError, match="not an FSDD file name"):
        audio.parse_name("jackson.wav")
    with pytest.raises(ValueError, match=r"valid: \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\]"):
        audio.check_digit(10)
    with pytest.raises(ValueError, match="0..9"):
        audio.check_digit(-1)
    assert audio.speaker_id("Theo") == audio.SPEAKERS.index("theo") and audio.speaker_id(5) == 5
    with pytest.raises(ValueError, match="valid speakers"):
        audio.speaker_id(6)


def test_split_file_names():
    test, train = audio.file_names("test"), audio.file_names("train")
    assert len(test) == 300 and len(train) == 2700 and not set(test) & set(train)
    assert {audio.parse_name(n)[2] for n in test} == set(range(5))
    assert {audio.parse_name(n)[2] for n in train} == set(range(5, 50))
    with pytest.raises(ValueError, match="valid choices"):
        audio.file_names("valid")


def test_missing_and_unreadable_wav_named(tmp_path):
    missing = tmp_path / "3_theo_7.wav"
    with pytest.raises(FileNotFoundError, match="3_theo_7.wav"):
        audio.read_wav(missing)
    bad = tmp_path / "4_theo_7.wav"
    bad.write_bytes(b"RIFF this is not a wave file at all")
    with pytest.raises(ValueError, match="4_theo_7.wav"):
        audio.read_wav(bad)
    # a dataset folder with one recording missing: loading the split names the missing file
    rec = tmp_path / "spoken_digits" / "recordings"
    rec.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"0_george_0\.wav"):
        audio.load_recordings("test", tmp_path)
    with pytest.raises(DatasetNotFoundError, match="spoken_digits"):
        audio.find_fsdd_dir(tmp_path / "nowhere")


def test_wrong_rate_named(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    path = tmp_path / "1_lucas_9.wav"
    soundfile.write(path, np.zeros(100, np.float32), 16000)
    with pytest.raises(ValueError, match="1_lucas_9.wav.*8000 Hz"):
        audio.read_wav(path)


def test_voiced_bounds():
    x = np.zeros(8000, np.float32)
    x[2000:5000] = 0.5 * np.sin(np.arange(3000) * 0.3)
    x += 1e-4 * np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    a, b = audio.voiced_bounds(x)
    assert 1840 <= a <= 2000 and 5000 <= b <= 5160


def test_real_recordings(fsdd_dir):
    d = audio.load_recordings("test", fsdd_dir)
    assert len(d["audio"]) == 300 and set(d["take"]) == set(range(5))
    assert np.bincount(d["digit"]).tolist() == [30] * 10 and np.bincount(d["speaker"]).tolist() == [50] * 6
    i = d["names"].index("7_jackson_3.wav")
    assert d["digit"][i] == 7 and audio.SPEAKERS[d["speaker"][i]] == "jackson"
    assert all(a.dtype == np.float32 and a.ndim == 1 and np.abs(a).max() <= 1 for a in d["audio"])
    assert 0.1 < np.mean([len(a) for a in d["audio"]]) / audio.SAMPLE_RATE < 1.0
