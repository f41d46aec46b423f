"""Figures of generative classifiers: the generative-vs-discriminative learning curve (PNG)."""
from __future__ import annotations

from pathlib import Path

from gm_jax.viz import pyplot


def save_learning_curve(path, rows, title: str = "") -> Path:
    """Test error against training examples per class, generative vs discriminative (Ng & Jordan 2002, Fig. 1).

    Args:
      rows: dicts with `num_train` (total training examples; the x axis shows num_train / 10 per class),
        `generative_test_error` and `logistic_test_error` (fractions), as `ClassGMMExperiment.learning_curve`.
      title: the figure's title.
    """
    plt = pyplot()
    n = [r["num_train"] / 10 for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(n, [100 * r["generative_test_error"] for r in rows], "o-", label="generative: class GMM, Bayes' rule")
    ax.plot(n, [100 * r["logistic_test_error"] for r in rows], "s--", label="discriminative: logistic regression")
    ax.set_xscale("log")
    ax.set_xlabel("training examples per class")
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=100)
    plt.close(fig)
    return Path(path)
