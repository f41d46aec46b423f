"""Sentence VAE (Bowman et al. 2016) on the lines of tiny_shakespeare, characters as tokens.

    python -m experiments.sentence_vae_shakespeare --workdir runs/sentence_vae [--paper]
    python -m experiments.sentence_vae_shakespeare --workdir runs/sentence_lm --config.latent=False \\
        --config.word_dropout=0   # the baseline: the same decoder, z = 0, no encoder

One line = one sentence (up to 63 characters + an end-of-line token; every
tiny_shakespeare line fits). An LSTM encoder gives q(z | x); an LSTM decoder
conditioned on z (initial state, and z at every input) predicts the line's
characters. Trained on -ELBO with KL annealing and character dropout on the
decoder inputs (`gm_jax.models.sentence_vae`, `gm_jax.recipes.sentences`).
Writes `results.json` (test NLL bound per character and per line, KL per line,
...), `samples.txt` and `homotopies.txt`. The default is sized for a 2-core CPU.
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.models import sentence_vae
from gm_jax.recipes.sentences import SentenceExperiment, sentence_config


def get_config() -> ml_collections.ConfigDict:
    """CPU default: LSTMs of 191 units, z of 13 dimensions (the paper's sizes), embeddings of 64, character
    dropout 0.2, KL annealed over 1,500 of 2,500 steps."""
    c = sentence_config(config_lib.base_config())
    c.num_steps = 2500
    c.batch_size = 64
    c.learning_rate = 2e-3
    c.kl_anneal_steps = 1500
    # 0.2: test bound 2.622 bits/char, KL 1.63 nats/line; 0.4: 2.800 and 2.09 (both runs 2,500 steps, README)
    c.word_dropout = 0.2
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 256
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Bowman et al. 2016, "Generating Sentences from a Continuous Space", Sec. 4 (language modelling on the
    Penn Treebank): a single-layer LSTM of 191 units, 353-dimensional embeddings, a 13-dimensional z, z
    feeding the decoder's initial state only (Fig. 1), logistic KL annealing and word dropout.

    The sizes are `sentence_vae.PAPER`; the training length and the word keep rate are this library's
    (the paper tunes the keep rate per experiment), and the data here are characters of Shakespeare's
    lines, not PTB words.
    """
    c = get_config()
    c.update(sentence_vae.PAPER)
    c.z_inputs = False
    c.num_steps = 20_000
    c.kl_anneal_steps = 10_000
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny LSTMs on synthetic text, for tests."""
    c = get_config()
    c.update(data_dir="synthetic", hidden=8, latent_dim=2, embed_dim=4, max_len=48, num_steps=2, batch_size=8,
             eval_batch_size=256, kl_anneal_steps=4, num_iwae_samples=2, log_every=1, checkpoint_every=2,
             num_validation_examples=16)
    return c


class Experiment(SentenceExperiment):
    name = "sentence_vae_shakespeare"


if __name__ == "__main__":
    from gm_jax.cli import main

    main("sentence_vae_shakespeare")
