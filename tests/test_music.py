"""gm_jax.data.music: JSB Chorales piano rolls and soprano melodies; MIDI round trip and PNG (gm_jax.viz.music);
the JSB experiments."""

import jax
import numpy as np
import pytest

import gm_jax
from gm_jax.data import DatasetNotFoundError, music
from gm_jax.viz import music as music_viz



def test_midi_round_trip_of_a_known_piano_roll(tmp_path):
    roll = np.zeros((12, music.NUM_KEYS), np.uint8)
    roll[0:4, 60 - 21] = 1     # C4 held for 4 steps
    roll[4:6, 60 - 21] = 1     # ... and again after... (contiguous: one 6-step note)
    roll[0:2, 64 - 21] = 1     # E4, two notes separated by a rest
    roll[3:5, 64 - 21] = 1
    roll[7:12, 0] = 1          # A0 to the end (lowest key)
    roll[2, 87] = 1            # C8, one step (highest key)
    path = tmp_path / "known.mid"
    music_viz.roll_to_midi(roll, path, step_seconds=0.25)
    assert path.stat().st_size > 0
    back = music.midi_to_roll(path, step_seconds=0.25)
    np.testing.assert_array_equal(back, roll)
    import pretty_midi

    notes = sorted((n.pitch, round(n.start, 6), round(n.end, 6)) for n in pretty_midi.PrettyMIDI(str(path))
                   .instruments[0].notes)
    assert notes == [(21, 1.75, 3.0), (60, 0.0, 1.5), (64, 0.0, 0.5), (64, 0.75, 1.25), (108, 0.5, 0.75)]
    with pytest.raises(ValueError, match="88"):
        music_viz.roll_to_midi(np.zeros((4, 12)), None)


def test_primed_midi_marks_the_primer(tmp_path):
    """`roll_to_midi(..., primer_steps=P)`: the primer and the continuation as two instruments and a marker."""
    import pretty_midi

    roll = np.zeros((8, music.NUM_KEYS), np.uint8)
    roll[1:5, 60 - 21] = 1  # C4 held across the end of the primer (P = 3): split there
    roll[0, 64 - 21] = 1    # E4 in the primer only
    roll[6:8, 67 - 21] = 1  # G4 in the continuation only
    pm = music_viz.roll_to_midi(roll, tmp_path / "primed.mid", step_seconds=0.5, primer_steps=3)
    back = pretty_midi.PrettyMIDI(str(tmp_path / "primed.mid"))
    notes = {inst.name: sorted((n.pitch, n.start, n.end) for n in inst.notes) for inst in back.instruments}
    assert notes == {"primer": [(60, 0.5, 1.5), (64, 0.0, 0.5)], "continuation": [(60, 1.5, 2.5), (67, 3.0, 4.0)]}
    assert [(t.text, t.time) for t in back.text_events] == [("continuation", 1.5)]
    np.testing.assert_array_equal(music.midi_to_roll(pm, 0.5, 8), roll)  # both instruments read back together
    assert [inst.name for inst in music_viz.roll_to_midi(roll).instruments] == [""]  # unprimed: one instrument
    for bad in (-1, 9, 1.5):
        with pytest.raises(ValueError, match=r"primer_steps must be an int in \[0, T\] = \[0, 8\]"):
            music_viz.roll_to_midi(roll, primer_steps=bad)


def test_piano_roll_and_melody_encoding(tmp_path):
    roll = music.piano_roll([[60, 64, 67], [], [21, 108]])
    assert roll.shape == (3, 88) and roll.dtype == np.uint8
    assert np.nonzero(roll[0])[0].tolist() == [39, 43, 46] and roll[1].sum() == 0
    assert np.nonzero(roll[2])[0].tolist() == [0, 87]
    with pytest.raises(ValueError, match="outside the piano range"):
        music.piano_roll([[20]])
    tokens = music.melody_tokens([60, -1, 81, 70])
    np.testing.assert_array_equal(tokens, [1, 0, 22, 11])
    with pytest.raises(ValueError, match="outside the melody range"):
        music.melody_tokens([59])
    mroll = music.melody_to_roll(tokens)
    assert [np.nonzero(r)[0].tolist() for r in mroll] == [[39], [], [60], [49]]
    png = music_viz.save_piano_roll_png(tmp_path / "r.png", [roll, mroll], ["a", "b"])
    assert png.stat().st_size > 1000


def test_jsb_splits(jsb_dir):
    sizes = {s: len(music.load_piano_rolls(s, jsb_dir)) for s in music.SPLITS}
    assert sizes == {"train": 229, "valid": 76, "test": 77}
    test = music.load_piano_rolls("test", jsb_dir)
    assert sum(len(r) for r in test) == 4725
    assert all(r.shape[1] == 88 and r.max() <= 1 for r in test)
    melodies = music.load_melodies("test", jsb_dir)
    assert len(melodies) == 77 and sum(len(m) for m in melodies) == 18900
    assert all(m.min() >= 0 and m.max() < music.MELODY_CLASSES for m in melodies)
    with pytest.raises(ValueError):
        music.load_chorales("validation", data_dir=jsb_dir)
    with pytest.raises(DatasetNotFoundError, match="jsb-chorales-quarter.json"):
        music.find_jsb_dir("/nonexistent/folder")


@pytest.mark.parametrize("name", ["lstm_jsb", "melody_jsb"])
def test_jsb_models(jsb_dir, name):
    model = gm_jax.create(name, data_dir=str(jsb_dir), hidden=8)
    x = model.sample(jax.random.key(0), 3, length=10, temperature=0.9)
    assert x.shape[:2] == (3, 10)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(model.sample(jax.random.key(0), 3, length=10,
                                                                         temperature=0.9)))
    e = model.experiment
    lp = model.log_prob(x)
    # log_prob = the sum of per-step conditionals, each step computed from the carried state
    from gm_jax.models import rnn
    inputs = np.asarray(e.inputs(np.asarray(x, np.float32 if name == "lstm_jsb" else np.int32)))
    carry, acc = rnn.init_carry(e.model, 3), np.zeros(3)
    step = jax.jit(lambda c, i: e.model.apply({"params": model.params}, c, i))
    for t in range(10):
        carry, logits = step(carry, inputs[:, t])
        if name == "lstm_jsb":
            p = jax.nn.sigmoid(logits)
            v = np.asarray(x[:, t], np.float32)
            acc += np.sum(v * np.log(p) + (1 - v) * np.log1p(-p), -1)
        else:
            acc += np.asarray(jax.nn.log_softmax(logits))[np.arange(3), np.asarray(x[:, t])]
    np.testing.assert_allclose(lp, acc, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="length"):
        model.sample(jax.random.key(0), 2, length=0)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(jax.random.key(0), 2, temperature=0)
    with pytest.raises(ValueError):
        model.log_prob(np.full((2, 5, 88), 2) if name == "lstm_jsb" else np.full((2, 5), music.MELODY_CLASSES))
