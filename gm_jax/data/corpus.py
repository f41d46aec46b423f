"""Documents and words of a play text, for topic models (`gm_jax.models.lda`).

Speeches: in the text of a tiny_shakespeare split a line of the form `NAME:`
(a capitalised name followed by a colon, e.g. `First Citizen:`, `KING RICHARD
III:`) starts a speech, which runs to the next blank line (the speaker line
itself is not part of it; text before the first speaker line is dropped).

Words: lower-cased runs of letters with inner apostrophes
(`[a-z]+(?:'[a-z]+)*`, so "know't" is one word and "'tis" becomes "tis"),
minus `STOP_WORDS` (English function words plus Early Modern English ones:
thou, thee, thy, hath, doth, ...).

`speech_corpus` builds the whole corpus of an LDA run: every `heldout_every`-th
speech held out, a vocabulary of the words seen at least `min_count` times in
the training speeches, and the documents as word-id arrays (flatten them with
`gm_jax.models.lda.corpus_arrays`).
"""
from __future__ import annotations

import collections
import re

import numpy as np

from gm_jax.data.text import load_text

# English function words and Early Modern English forms (pronouns, auxiliaries, contractions).
STOP_WORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below between
both but by can cannot could couldn't did didn't do does doesn't doing don't down during each few for from further
had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how how's
i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my myself no nor not of off on
once only or other ought our ours ourselves out over own same shan't she she'd she'll she's should shouldn't so some
such than that that's the their theirs them themselves then there there's these they they'd they'll they're they've
this those through to too under until up very was wasn't we we'd we'll we're we've were weren't what what's when
when's where where's which while who who's whom why why's with won't would wouldn't you you'd you'll you're you've
your yours yourself yourselves
thou thee thy thine ye art hast hath doth dost shalt wilt wouldst canst couldst shouldst didst hadst wert
o oh ay nay yea tis twas 'tis 'twas is't on't in't ne'er e'er o'er an' i' th' upon unto thus hence whence
thither hither whither yet shall will may might must let us one say said come go well like now good sir lord
know make made see hear give take tell speak
""".split())

WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")
SPEAKER_RE = re.compile(r"^[A-Z][A-Za-z' .,-]*:$")


def split_speeches(text: str) -> list[str]:
    """Speeches of a play text: a line `NAME:` starts one, the next blank line ends it (text before the first
    speaker line is dropped). Returns the speeches' text without the speaker lines."""
    speeches, current = [], None
    for line in text.split("\n"):
        if SPEAKER_RE.match(line.strip()):
            if current:
                speeches.append("\n".join(current))
            current = []
        elif not line.strip():
            if current:
                speeches.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    if current:
        speeches.append("\n".join(current))
    return speeches


def tokenize(text: str) -> list[str]:
    """Lower-cased words (`WORD_RE`) that are not stop words."""
    return [w for w in WORD_RE.findall(text.lower()) if w not in STOP_WORDS]


def encode_tokens(index: dict, tokens: list[str]) -> np.ndarray:
    """Word ids int32 of the in-vocabulary tokens (`index`: word -> id; others dropped)."""
    return np.asarray([index[w] for w in tokens if w in index], np.int32)


def speech_corpus(data_dir: str | None, heldout_every: int, min_count: int) -> dict:
    """The speeches of the tiny_shakespeare `train` split as an LDA corpus.

    Every `heldout_every`-th speech is held out, the others are training documents. The
    vocabulary is the words occurring at least `min_count` times in the training speeches,
    by decreasing count (ties alphabetical); other words are dropped. Training speeches with
    no vocabulary word left are dropped; held-out speeches need at least 2 vocabulary words.

    Returns:
      dict with `vocab` (list of words), `index` (word -> id), `train` and `heldout` (lists of
      documents, each int32 word ids), and `stats` (corpus sizes).
    """
    speeches = [tokenize(s) for s in split_speeches(load_text("train", data_dir))]
    every = heldout_every
    train_docs = [d for i, d in enumerate(speeches) if i % every != every - 1]
    test_docs = [d for i, d in enumerate(speeches) if i % every == every - 1]
    counts = collections.Counter(w for d in train_docs for w in d)
    vocab = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    index = {w: i for i, w in enumerate(vocab)}
    kept = [d for d in (encode_tokens(index, t) for t in train_docs) if len(d)]
    held = [d for d in (encode_tokens(index, t) for t in test_docs) if len(d) >= 2]
    return {"vocab": vocab, "index": index, "train": kept, "heldout": held,
            "stats": {"vocab_size": len(vocab), "train_speeches": len(train_docs), "train_docs": len(kept),
                      "train_tokens": int(sum(map(len, kept))), "heldout_speeches": len(test_docs),
                      "heldout_docs": len(held), "heldout_tokens": int(sum(map(len, held)))}}
