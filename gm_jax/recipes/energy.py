"""The energy-based family: contrastive divergence with Langevin negatives, on 2-D toy data and on MNIST.

The negatives come from a replay buffer (`config.negatives = "replay"`, Du & Mordatch 2019, Algorithm 1)
or from short-run chains started afresh from the initial distribution p0 at every update
(`"short_run"`, Nijkamp et al. 2019), which is then also how `sample` draws.

* `EBMExperiment`: the train state `EBMState` (a TrainState plus the replay buffer) and the update;
* `ToyEBMExperiment`: an MLP energy on a ring of Gaussians or two moons; mode coverage and the
  energy normalised numerically on a grid (`gm_jax.evaluation.toy`);
* `ImageEBMExperiment`: a convolutional energy on MNIST in [0, 1]; MNIST-FID / MNIST-IS.

The model pieces (`langevin`, `cd_loss`, the energy networks) are in `gm_jax.models.ebm`.
"""
from __future__ import annotations

from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from gm_jax import viz
from gm_jax.config import Choice, Range
from gm_jax.data import load_split, toy, train_batches
from gm_jax.evaluation import classifier as classifier_lib
from gm_jax.evaluation import sample_quality
from gm_jax.evaluation import toy as toy_eval
from gm_jax.experiment import Experiment
from gm_jax.models import ebm, gmm
from gm_jax.recipes.toy import ToyData
from gm_jax.sampling import completion_mask
from gm_jax.training import checkpoint
from gm_jax.training.loop import run_keys
from gm_jax.nn import pmean
from gm_jax.viz import curves
from gm_jax.viz import toy as toy_viz


class EBMState(TrainState):
    """TrainState plus the replay buffer float32 [buffer_size, *data_shape] of past negative samples."""

    buffer: jax.Array = None


class EBMExperiment(Experiment):
    """Base of the EBM experiments: state `EBMState`, update = one step of Du & Mordatch Algorithm 1
    (`config.negatives = "replay"`, the default when the config has no `negatives`) or of Nijkamp et al.
    2019's short-run training (`"short_run"`).

    One update (see `gm_jax.models.ebm`): draw the negative chains' starting points from the replay
    buffer, each re-initialised from p0 (`noise`: uniform noise unless a subclass says otherwise) with
    probability `reinit_prob` ("replay"), or all from p0 ("short_run": "Learning Non-Convergent
    Non-Persistent Short-Run MCMC Toward Energy-Based Model", Sec. 3, Algorithm 1; the buffer is not
    read, and `sample` runs the same chains from p0, with `sample_steps` = `langevin_steps` to match), run
    `langevin_steps` Langevin steps from them (no gradient through the chain), descend the
    contrastive-divergence loss with the energy regulariser `alpha`, and write the negatives back
    at the slots they came from. Under pmap each device runs its share of the chains, gradients
    and metrics are averaged and the buffer writes are gathered, so every replica keeps the same
    buffer and the update equals the single-device one.

    Config fields used: `negatives`, `step_size`, `noise_scale`, `langevin_steps` (training
    chains), `sample_steps` (chains of `sample`, from p0),
    `buffer_size`, `reinit_prob`, `alpha` (energy regulariser),
    `learning_rate`, `beta1`, `beta2`, `grad_clip`.
    Subclasses set `self.net` (a Linen module x [B, ...] -> [B]), `self.box`
    ((low, high): uniform-noise range and Langevin clip) and define
    `positive(batch)` -> x+ float32 [B, *data_shape].
    `params_of(state)` is the energy network's parameters.
    """

    net: nn.Module
    box: tuple[float, float]
    schema = {"negatives": Choice("replay", "short_run"), "reinit_prob": Range(0.0, 1.0), "alpha": Range(0.0),
              "grad_clip": Range(0.0),
              "step_size": Range(0.0, lo_open=True), "noise_scale": Range(0.0),
              "langevin_steps": Range(1, integer=True), "sample_steps": Range(1, integer=True),
              "buffer_size": Range(1, integer=True), "beta1": Range(0.0, 1.0, hi_open=True),
              "beta2": Range(0.0, 1.0, hi_open=True), "num_eval_samples": Range(1, integer=True)}

    def __init__(self, config):
        super().__init__(config)
        self.negatives = config.get("negatives", "replay")
        ebm.check_langevin(config.step_size, config.noise_scale, config.langevin_steps)
        ebm.check_langevin(config.step_size, config.noise_scale, config.sample_steps)
        if config.buffer_size < config.batch_size:
            raise ValueError(f"config.buffer_size ({config.buffer_size}) must be >= batch_size ({config.batch_size})")

    # -- pure functions ---------------------------------------------------------------------------
    def energy(self, params, x: jax.Array) -> jax.Array:
        """E(x): float32 [B] for x float [B, *data_shape] (the model's own form)."""
        return self.net.apply({"params": params}, jnp.asarray(x, jnp.float32))

    def noise(self, key: jax.Array, n: int) -> jax.Array:
        """p0, the chains' starting distribution: uniform noise over the data box, float32 [n, *data_shape]."""
        return jax.random.uniform(key, (n, *self.data_shape), jnp.float32, *self.box)

    def optimizer(self) -> optax.GradientTransformation:
        c = self.config
        tx = optax.adam(c.learning_rate, b1=c.beta1, b2=c.beta2)
        return optax.chain(optax.clip_by_global_norm(c.grad_clip), tx) if c.grad_clip > 0 else tx

    def init_params(self, key: jax.Array):
        return self.net.init(key, jnp.zeros((1, *self.data_shape), jnp.float32))["params"]

    def init_state(self, key: jax.Array) -> EBMState:
        k_param, k_buf = jax.random.split(key)
        return EBMState.create(apply_fn=None, params=self.init_params(k_param), tx=self.optimizer(),
                               buffer=self.noise(k_buf, self.config.buffer_size))

    def chains(self, params, x0: jax.Array, key: jax.Array, num_steps: int, **kw):
        """Langevin chains from x0 with the config's step size, noise scale and box."""
        c = self.config
        return ebm.langevin(lambda x: self.energy(params, x), x0, key, c.step_size, num_steps, c.noise_scale,
                            self.box, **kw)

    def update(self, state: EBMState, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """One step of Du & Mordatch Algorithm 1 (see the class docstring)."""
        c = self.config
        b = keys.shape[0]
        k = jax.vmap(lambda kk: jax.random.split(kk, 4))(keys)  # per example: slot, reinit coin, noise, chain
        idx = jax.vmap(lambda kk: jax.random.randint(kk, (), 0, c.buffer_size))(k[:, 0])
        reinit = jax.vmap(lambda kk: jax.random.uniform(kk) < c.reinit_prob)(k[:, 1])
        fresh = jax.vmap(lambda kk: self.noise(kk, 1)[0])(k[:, 2])
        if self.negatives == "short_run":  # Nijkamp et al. 2019: every chain starts from p0
            x0 = fresh
        else:
            x0 = jnp.where(reinit.reshape((b,) + (1,) * len(self.data_shape)), fresh, state.buffer[idx])
        x_neg = jax.lax.stop_gradient(self.chains(state.params, x0, k[:, 3], c.langevin_steps))
        x_pos = self.positive(batch)
        (loss, metrics), grads = jax.value_and_grad(
            lambda p: ebm.cd_loss(lambda x: self.energy(p, x), x_pos, x_neg, c.alpha), has_aux=True)(state.params)
        grads, metrics = pmean((grads, {"loss": loss, **metrics}), axis_name)
        if axis_name:
            idx = jax.lax.all_gather(idx, axis_name, tiled=True)
            x_neg = jax.lax.all_gather(x_neg, axis_name, tiled=True)
        state = state.apply_gradients(grads=grads)
        return state.replace(buffer=state.buffer.at[idx].set(x_neg)), metrics

    def positive(self, batch: dict) -> jax.Array:
        raise NotImplementedError

    def sample(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """`sample_steps` Langevin steps from p0 (`noise`): float32 [num_samples, *data_shape]."""
        k0, k1 = jax.random.split(key)
        return self.chains(params, self.noise(k0, num_samples), k1, self.config.sample_steps)

    def log_prob(self, params, x, key=None):
        raise NotImplementedError(
            f"{self.name} is an energy-based model: p(x) = exp(-E(x)) / Z with an intractable normaliser Z, "
            "so log_prob is not available; use Experiment.energy(params, x) (unnormalised, nats up to log Z)")


class ToyEBMExperiment(ToyData, EBMExperiment):
    """An MLP energy on 2-D toy data: `config.problem` = "ring8" (a ring of Gaussians) or "moons".

    Config fields used besides the EBM's: `hidden`, `box` (data box [-box, box]^2), `ring_radius`,
    `ring_std`, `num_modes`, `moons_noise`, `num_eval_samples`, `min_mode_samples`.
    """

    data_shape = (2,)
    grid_size = 256  # cells per side of the grid the energy is normalised on

    def __init__(self, config):
        super().__init__(config)
        self.net = ebm.EnergyMLP(tuple(config.hidden))
        self.box = (-float(config.box), float(config.box))

    def draw_data(self, rng: np.random.Generator, n: int) -> np.ndarray:
        c = self.config
        if c.problem == "ring8":
            return toy.ring_of_gaussians(rng, n, c.num_modes, c.ring_radius, c.ring_std)
        return toy.two_moons(rng, n, c.moons_noise)

    def positive(self, batch: dict) -> jax.Array:
        return jnp.asarray(batch["x"], jnp.float32)

    def centers(self) -> np.ndarray:
        return toy.ring_centers(self.config.num_modes, self.config.ring_radius)

    def grid_log_density(self, params) -> tuple[np.ndarray, np.ndarray]:
        """(E(x) float32 [n*n], log exp(-E)/Z float64 [n*n]) on the cell centres of the grid over the box."""
        pts, area, _ = toy_eval.grid(*self.box, self.grid_size)
        e = np.asarray(jax.jit(self.energy)(params, pts))
        return e, toy_eval.normalise_on_grid(-np.asarray(e, np.float64), area)[0]

    def evaluate(self, params, key: jax.Array) -> dict:
        c = self.config
        x = np.asarray(self.jit_sample(params, key, c.num_eval_samples))
        test = self.draw_data(np.random.default_rng([c.seed, 10**9]), c.num_eval_samples)
        if c.problem == "ring8":
            out = toy_eval.ring_metrics(x, self.centers(), c.ring_std, c.min_mode_samples)
        else:
            out = toy_eval.moons_metrics(x, c.moons_noise)
        out["grid_test_log_likelihood_nats"] = toy_eval.grid_log_likelihood(
            self.grid_log_density(params)[1], test, *self.box, self.grid_size)
        if c.problem == "ring8":
            k = c.num_modes
            true = gmm.make_params(np.full(k, 1 / k), self.centers(), np.tile(np.eye(2) * c.ring_std**2, (k, 1, 1)))
            out["true_test_log_likelihood_nats"] = float(np.mean(np.asarray(gmm.log_prob(true, test))))
        e_data = np.asarray(jax.jit(self.energy)(params, test))
        e_samp = np.asarray(jax.jit(self.energy)(params, x))
        return {**out, "mean_energy_data": float(e_data.mean()), "mean_energy_samples": float(e_samp.mean()),
                "problem": c.problem, "num_eval_samples": int(c.num_eval_samples),
                "sample_steps": int(c.sample_steps), "step_size": float(c.step_size),
                "noise_scale": float(c.noise_scale), "figures": ["energy.png", "chains.png", "losses.png"]}

    def validate(self, params, key: jax.Array) -> dict:
        """`evaluate`'s metrics at `config.num_validation_examples` Langevin samples and test points (from
        `default_rng([seed, 10**9])`): ring8 `val_modes_covered`, `val_high_quality_fraction`; moons
        `val_within_3sigma_fraction`; both `val_grid_test_log_likelihood_nats` (exp(-E) normalised on the grid)."""
        c = self.config
        x = np.asarray(self.jit_sample(params, key, c.num_validation_examples))
        if c.problem == "ring8":
            m = toy_eval.ring_metrics(x, self.centers(), c.ring_std, c.min_mode_samples)
            out = {"val_modes_covered": m["modes_covered"], "val_high_quality_fraction": m["high_quality_fraction"]}
        else:
            out = {"val_within_3sigma_fraction": toy_eval.moons_metrics(x, c.moons_noise)["within_3sigma_fraction"]}
        test = self.draw_data(np.random.default_rng([c.seed, 10**9]), c.num_validation_examples)
        out["val_grid_test_log_likelihood_nats"] = toy_eval.grid_log_likelihood(
            self.grid_log_density(params)[1], test, *self.box, self.grid_size)
        return out

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        workdir = Path(workdir)
        c, n = self.config, self.grid_size
        e, logp = self.grid_log_density(params)
        x = np.asarray(self.jit_sample(params, key, c.num_eval_samples))
        data = self.draw_data(np.random.default_rng([c.seed, 10**9]), c.num_eval_samples)
        toy_viz.save_energy_landscape(workdir / "energy.png", data, e.reshape(n, n), np.exp(logp).reshape(n, n), x,
                                      self.box, f"data ({c.problem})",
                                      f"exp(-E)/Z on the grid + {c.num_eval_samples} Langevin samples "
                                      f"({c.sample_steps} steps)")
        k0, k1 = jax.random.split(key)
        _, traj = jax.jit(lambda p, x0: self.chains(p, x0, k1, c.sample_steps, return_trajectory=True))(
            params, self.noise(k0, 1000))
        s = c.sample_steps
        toy_viz.save_chains(workdir / "chains.png", np.asarray(traj), [0, s // 20, s // 5, s // 2, s - 1], self.box)
        curves.save_ebm_curves(workdir / "metrics.jsonl", workdir / "losses.png", title=f"{self.name} ({c.problem})")


class ImageEBMExperiment(EBMExperiment):
    """A convolutional energy (`ebm.EnergyCNN(config.channels)`) on MNIST scaled to [0, 1]; samples uint8.

    p0 (`noise`, `config.init`): `"uniform"` noise on [0, 1], or `"pca_gmm"`: a full-covariance GMM of the
    training images' PCA coordinates (`compute_data_setup`, stored with the run), decoded and clipped to
    [0, 1] -- a fixed base distribution that short-run chains start from (Nijkamp et al. 2019 allow any
    fixed p0; a fitted one is the base model of cooperative learning, Xie et al. 2018).

    Config fields used besides the EBM's: `channels`, `num_eval_samples`, `classifier_dir`, `init`
    (default "uniform" when absent), `init_pca_dim`, `init_components`, `init_em_iters`.
    """

    data_kind = "uint8"
    data_shape = (28, 28, 1)

    def __init__(self, config):
        super().__init__(config)
        self.net = ebm.EnergyCNN(tuple(config.channels))
        self.box = (0.0, 1.0)
        self.init = config.get("init", "uniform")
        if self.init == "pca_gmm":  # the fitted PCA and mixture are the data setup (`Experiment.data_setup`)
            self.setup_fields = ("data_dir", "seed", "init_pca_dim", "init_components", "init_em_iters")
            self.setup_arrays = ("pca_mean", "pca_basis", "gmm_logits", "gmm_means", "gmm_covs")

    def compute_data_setup(self) -> dict[str, np.ndarray]:
        """For `init = "pca_gmm"`: the PCA of the training images in [0, 1] (`pca_mean` float32 [784],
        `pca_basis` float32 [init_pca_dim, 784], scikit-learn's PCA) and a full-covariance GMM of their
        coordinates fitted by EM (`gm_jax.models.gmm.fit`, `init_components` components, `init_em_iters`
        iterations from k-means++, covariance floor 1e-4): `gmm_logits` [K], `gmm_means` [K, D],
        `gmm_covs` [K, D, D]."""
        from sklearn.decomposition import PCA

        c = self.config
        x = self._split("train")["image"].reshape(-1, 784).astype(np.float32) / 255.0
        pca = PCA(int(c.init_pca_dim), svd_solver="randomized", random_state=int(c.seed)).fit(x)
        z = pca.transform(x).astype(np.float32)
        with jax.ensure_compile_time_eval():  # first needed inside a jitted function (p0 of init_state)
            params, _ = gmm.fit(z, int(c.init_components), jax.random.key(c.seed),
                                num_iters=int(c.init_em_iters), reg_covar=1e-4)
        return {"pca_mean": pca.mean_.astype(np.float32), "pca_basis": pca.components_.astype(np.float32),
                **{f"gmm_{k}": np.asarray(v, np.float32) for k, v in params.items()}}

    def noise(self, key: jax.Array, n: int) -> jax.Array:
        """The chains' starting distribution p0, float32 [n, 28, 28, 1] in [0, 1]: `init = "uniform"` uniform
        noise; `"pca_gmm"` a draw of the fitted mixture decoded through the PCA, clipped to [0, 1]."""
        if self.init == "uniform":
            return super().noise(key, n)
        s = self.data_setup
        z = gmm.sample({k: jnp.asarray(s[f"gmm_{k}"]) for k in ("logits", "means", "covs")}, key, n)
        x = jnp.asarray(s["pca_mean"]) + z @ jnp.asarray(s["pca_basis"])
        return jnp.clip(x, 0.0, 1.0).reshape(n, *self.data_shape)

    def _split(self, split: str) -> dict:
        return {"image": load_split("mnist", split, self.config.data_dir or None)["image"]}

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        return train_batches(self._split("train"), self.config.batch_size, self.config.seed, start_step, rows)

    def positive(self, batch: dict) -> jax.Array:
        return jnp.asarray(batch["image"], jnp.float32) / 255.0

    def sample(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """uint8 [num_samples, 28, 28, 1]: `sample_steps` Langevin steps from uniform noise, scaled to 0..255."""
        return self.to_uint8(super().sample(params, key, num_samples))

    @staticmethod
    def to_uint8(x: jax.Array) -> jax.Array:
        """Images float in [0, 1] (clipped) -> uint8 0..255, the data's own form (rounded)."""
        return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)

    def complete(self, params, key: jax.Array, x, mask, num_steps: int | None = None) -> jax.Array:
        """Inpainting: Langevin on the missing pixels only, the observed ones clamped (issue 22, item 2).

        The chains start from `noise` (the sampler's p0) with the observed pixels set to `x`, and run
        `num_steps` steps of `langevin` (the config's step size, noise scale and box) on
        y -> E(where(observed, x, y)): the observed entries of the chain never reach the energy (their
        gradient is zero) and the output takes them from `x`, so only the missing pixels move, along the
        conditional exp(-E(x_obs, y_miss)) (image completion, Du & Mordatch 2019, Sec. 4). With
        `negatives = "short_run"` this is the trained short-run process with the observed pixels held fixed.

        Args:
          params: the energy network's parameters.
          key: a PRNG key.
          x: images [N, 28, 28, 1], uint8 0..255 or float in [0, 1] (N >= 1).
          mask: bool, or integers / floats in {0, 1}, True / 1 = observed: [N, 28, 28, 1], or [28, 28, 1] /
            [28, 28] for the same mask on every image (`gm_jax.sampling.completion_mask`).
          num_steps: Langevin steps (default `config.sample_steps`).

        Returns:
          uint8 [N, 28, 28, 1] (0..255, as `sample`), equal to round(255 x) where `mask` is observed.

        Raises:
          ValueError: `x` not [N, 28, 28, 1] uint8 or float in [0, 1]; a mask of another shape, dtype or
            values; an image with no observed pixel (use `sample`) or with every pixel observed; bad num_steps.
        """
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1:] != self.data_shape or x.shape[0] < 1:
            raise ValueError(f"complete expects images [N >= 1, 28, 28, 1], got shape {list(x.shape)}")
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / 255.0
        elif not np.issubdtype(x.dtype, np.floating) or not np.all((x >= 0) & (x <= 1)):
            raise ValueError(f"complete expects uint8 images or floats in [0, 1], got dtype {x.dtype}")
        observed = jnp.asarray(completion_mask(mask, x.shape))
        c = self.config
        steps = c.sample_steps if num_steps is None else num_steps
        ebm.check_langevin(c.step_size, c.noise_scale, steps)
        x = jnp.asarray(x, jnp.float32)

        @jax.jit
        def run(params, key):
            clamp = lambda y: jnp.where(observed, x, y)  # noqa: E731
            k0, k1 = jax.random.split(key)
            y = ebm.langevin(lambda y: self.energy(params, clamp(y)), clamp(self.noise(k0, x.shape[0])), k1,
                             c.step_size, steps, c.noise_scale, self.box)
            return self.to_uint8(clamp(y))

        return run(params, key)

    def energy(self, params, x: jax.Array) -> jax.Array:
        """E(x) float32 [B] of images float in [0, 1] [B, 28, 28, 1] (uint8 images are scaled by 1/255)."""
        x = jnp.asarray(x)
        if x.dtype == jnp.uint8:
            x = x.astype(jnp.float32) / 255.0
        return super().energy(params, x)

    def _samples(self, params, key, n: int) -> np.ndarray:
        bs = self.config.eval_batch_size
        return np.concatenate([np.asarray(self.jit_sample(params, jax.random.fold_in(key, i), bs))
                               for i in range((n + bs - 1) // bs)])[:n]

    def evaluate(self, params, key: jax.Array) -> dict:
        """`mnist_fid` / `mnist_is` of `num_eval_samples` samples; `class_shares` (the classifier's argmax
        over the samples, [10] summing to 1), `min_class_share`, `class_kl_nats` (KL of the shares from the
        test labels'); `initial_mnist_fid`: the chains' starting points alone (p0, no Langevin step), so
        the energy's part shows; `real_test_mnist_fid_same_n`: as many real test images (the FID's
        small-sample floor); mean energies of test images and samples."""
        c = self.config
        clf, reference = classifier_lib.classifier_and_reference(c.classifier_dir or None, c.data_dir or None)
        n = int(c.num_eval_samples)
        x = self._samples(params, key, n)
        test_split = load_split("mnist", "test", c.data_dir or None)
        test = test_split["image"][:1000]
        fid, score, logits = sample_quality.mnist_fid_and_is(clf, x, reference)
        shares, class_kl = sample_quality.class_share_kl(np.argmax(logits, 1), test_split["label"], logits.shape[1])
        x0 = np.asarray(jax.jit(lambda k: self.to_uint8(self.noise(k, n)))(jax.random.fold_in(key, 10**6)))
        out = {"mnist_fid": fid, "mnist_is": score,
               "class_shares": [round(float(v), 4) for v in shares], "class_kl_nats": class_kl,
               "min_class_share": float(shares.min()), "negatives": self.negatives, "init": self.init,
               "initial_mnist_fid": sample_quality.mnist_fid(clf, x0, reference),
               "real_test_mnist_fid_same_n": sample_quality.mnist_fid(clf, test_split["image"][:n], reference),
               "real_test_vs_train_mnist_fid": clf.info.get("real_test_vs_train_mnist_fid"),
               "real_test_mnist_is": clf.info.get("real_test_mnist_is"),
               "num_eval_samples": int(c.num_eval_samples), "sample_steps": int(c.sample_steps),
               "mean_energy_test": float(np.mean(np.asarray(jax.jit(self.energy)(params, test)))),
               "mean_energy_samples": float(np.mean(np.asarray(jax.jit(self.energy)(params, x[:1000])))),
               "metric_note": "MNIST-FID / MNIST-IS use the project's MNIST classifier, not Inception-v3",
               "figures": ["samples.png", "buffer.png", "losses.png"]}
        if "smoke_test" in clf.info:
            out["classifier_smoke_test"] = clf.info["smoke_test"]
        return out

    def validate(self, params, key: jax.Array) -> dict:
        """`val_mnist_fid` and `val_mnist_is` of `config.num_validation_examples` Langevin samples, scored as
        `evaluate` scores `num_eval_samples` (FID is biased upwards at small sizes: compare equal sizes only)."""
        c = self.config
        clf, reference = classifier_lib.classifier_and_reference(c.classifier_dir or None, c.data_dir or None)
        x = self._samples(params, key, c.num_validation_examples)
        return {"val_mnist_fid": sample_quality.mnist_fid(clf, x, reference),
                "val_mnist_is": sample_quality.mnist_is(clf, x)}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        workdir = Path(workdir)
        x = np.asarray(self.jit_sample(params, key, 64))
        viz.save_image_grid(workdir / "samples.png", x, cols=8, max_value=255)
        with checkpoint.Checkpointer(workdir, read_only=True) as ckpt:
            state = ckpt.restore(jax.eval_shape(self.init_state, run_keys(self.config.seed)["init"]))
        viz.save_image_grid(workdir / "buffer.png", np.asarray(state.buffer[:64]), cols=8, max_value=1.0)
        curves.save_ebm_curves(workdir / "metrics.jsonl", workdir / "losses.png", title=self.name)
