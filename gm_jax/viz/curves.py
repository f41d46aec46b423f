"""Training curves of the adversarial, energy-based and classical families (from a run's metrics.jsonl)."""
from __future__ import annotations

from gm_jax.viz import pyplot, save_metric_curves


def save_gan_losses(metrics_path, path, keys=("d_loss", "g_loss"), title: str = "") -> None:
    """The named GAN metrics (nats) against the generator step (PNG at `path`)."""
    save_metric_curves(metrics_path, path, [(k, k) for k in keys], "generator step", "nats", title)


def save_ebm_curves(metrics_path, path, title: str = "") -> None:
    """The CD loss and the mean energies of data and negatives against the update."""
    save_metric_curves(metrics_path, path, (("loss", "loss"), ("energy_pos", "mean E(data)"),
                                            ("energy_neg", "mean E(negatives)")),
                       "update", "energy (nats, up to log Z)", title)


def save_em_curve(metrics_path, path, title: str = "") -> None:
    """`train_log_likelihood` (nats per example) against the EM iteration."""
    from gm_jax.training.metrics import read_metrics

    plt = pyplot()
    records = read_metrics(metrics_path)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot([r["step"] - 1 for r in records], [r["train_log_likelihood"] for r in records], ".-")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("train log-likelihood (nats / example)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save_lda_curves(path, gibbs_records, vi_records, gibbs_sweeps: int, gibbs_title: str, vi_title: str) -> None:
    """LDA training: log p(w | z) per token against Gibbs sweeps, ELBO per token against VI iterations.

    Args:
      gibbs_records, vi_records: metrics.jsonl records (`step`, `log_lik_per_token`) of each phase.
      gibbs_sweeps: the step where the VI phase starts.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot([r["step"] for r in gibbs_records], [r["log_lik_per_token"] for r in gibbs_records])
    axes[0].set_xlabel("Gibbs sweep")
    axes[0].set_ylabel("log p(w | z) / N (nats)")
    axes[0].set_title(gibbs_title, fontsize=9)
    axes[1].plot([r["step"] - gibbs_sweeps for r in vi_records], [r["log_lik_per_token"] for r in vi_records])
    axes[1].set_xlabel("VI iteration")
    axes[1].set_ylabel("ELBO / N (nats)")
    axes[1].set_title(vi_title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
