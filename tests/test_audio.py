"""FSDD reading, labels, mu-law companding and voiced crops (gm_jax.data.audio); audio baselines and checks
(gm_jax.evaluation.audio); WAV / spectrogram writers (gm_jax.viz.audio)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.data import DatasetNotFoundError, audio
from gm_jax.evaluation import audio as audio_eval
from gm_jax.viz import audio as audio_viz


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


def test_voiced_crops_reproducible_and_inside_the_voiced_part():
    d = audio.coded_recordings("train", "synthetic")
    assert len(d["codes"]) == len(d["audio"]) and d["voiced"].shape == (len(d["audio"]), 2)
    a = audio.voiced_crops(d, 256, 8, seed=3, step=5)
    b = audio.voiced_crops(d, 256, 8, seed=3, step=5)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert a["x"].shape == (8, 256) and a["x"].dtype == np.int32 and a["mask"].min() == 1
    # every crop of a long voiced part lies inside it
    rng = np.random.default_rng([3, 5])
    idx = rng.integers(0, len(d["codes"]), 8)
    starts = audio.crop_starts(rng, idx, d["voiced"], [len(c) for c in d["codes"]], 256)
    for i, s in zip(idx, starts):
        lo, hi = d["voiced"][i]
        assert lo <= s and s + 256 <= hi
        np.testing.assert_array_equal(a["x"][list(idx).index(i)], d["codes"][i][s: s + 256])
    # a crop longer than every recording is padded with the zero class and masked
    long = audio.voiced_crops(d, 5000, 2, seed=0, step=0)
    assert long["mask"][:, -1].max() == 0 and np.all(long["x"][long["mask"] == 0] == audio.ZERO_CLASS)
    batches = list(audio.padded_batches(d, 64))
    assert sum(int(b["mask"].sum()) for b in batches) == sum(len(c) for c in d["codes"])
    assert all(b["x"].shape[1] % 2048 == 0 for b in batches)


def test_baselines_and_audio_checks(tmp_path):
    rng = np.random.default_rng(0)
    # an AR(1) process: the linear AR baseline beats the i.i.d. histogram by a wide margin
    def ar1(n):
        x = np.zeros(n)
        for t in range(1, n):
            x[t] = 0.99 * x[t - 1] + 0.005 * rng.standard_normal()
        return audio.mu_law_encode(np.clip(x, -1, 1))
    train, test = [ar1(2000) for _ in range(4)], [ar1(2000)]
    iid = audio_eval.iid_baseline(train, test)
    ar = audio_eval.linear_ar_baseline(train, test, order=2)
    assert 0 < ar["nll"] < iid - 1.0 and ar["sigma"] > 0
    # the discretised Gaussian of the AR baseline is normalised over the 256 classes
    edges = audio.mu_law_bin_edges()
    lo, hi = 2.0 * np.arange(256) / 255 - 1 - 1 / 255, 2.0 * np.arange(256) / 255 - 1 + 1 / 255
    lo[0], hi[-1] = -np.inf, np.inf
    p = np.exp(audio_eval._log_diff_ndtr((hi - 0.3) / 0.1, (lo - 0.3) / 0.1))
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-9)
    assert len(edges) == 257
    # flatness: white noise near 1, a pure tone near 0
    t = np.arange(4000) / audio.SAMPLE_RATE
    assert audio_eval.spectral_flatness(rng.standard_normal(4000)) > 0.5
    assert audio_eval.spectral_flatness(np.sin(2 * np.pi * 440 * t)) < 0.05
    checks = audio_eval.audio_checks(0.1 * np.sin(2 * np.pi * 440 * t)[None].repeat(3, 0),
                                     [0.1 * rng.standard_normal(3000) for _ in range(5)], jax.random.key(0))
    assert checks["generated_recordings"] == 3 and checks["generated_flatness_below_white_noise"]
    wav = audio_viz.save_wav(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t), audio.SAMPLE_RATE)
    np.testing.assert_allclose(audio.read_wav(wav), 0.5 * np.sin(2 * np.pi * 440 * t), atol=1e-4)
    png = audio_viz.save_spectrograms(tmp_path / "s.png", [t * 0], [np.sin(t)], audio.SAMPLE_RATE)
    assert png.stat().st_size > 1000
