"""Paired image-to-image GANs on MNIST: the generator as a translator (SRGAN, pix2pix).

The target x is an MNIST image, the input y = `make_input(x)` a degraded view of it (a 7x7
area average, an edge map, the top half). The generator maps y (and noise, if any) to an image,
trained by a content loss against x plus an adversarial term (`gm_jax.models.gan.GAN` with
`content_loss`): Ledig et al. 2017, Eq. 3 (content + 1e-3 adversarial) and Isola et al. 2017,
Eq. 4 (cGAN + lambda L1). With `config.baseline` a second generator of the same architecture
and initialisation is trained on the same batches by the content loss alone, so one command
gives the "traditional loss" model beside the adversarial one.

Subclasses (the experiment modules) set `name`, `input_shape`, `input_note`, `method_names`
and define `make_input(images)`, `players()` and optionally `reference_outputs(images, inputs)`.

Evaluation (`evaluate`, on the first `config.num_eval_images` test images): for the adversarial
generator, the baseline and every reference output (bicubic upsampling, ...): PSNR, SSIM and L1
against the targets (`gm_jax.evaluation.paired`, scikit-image), MNIST-FID against the real test
images (the project's classifier features), MNIST-IS and the classifier's accuracy against the
targets' labels. Figures: `comparison.png` (input / references / baseline / adversarial /
target) and `losses.png`.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gm_jax import config as config_lib
from gm_jax import sampling
from gm_jax.config import Choice, Range
from gm_jax.data import load_split, train_batches
from gm_jax.evaluation import classifier as classifier_lib
from gm_jax.evaluation import paired, sample_quality
from gm_jax.models import gan
from gm_jax.recipes.adversarial import GANExperiment
from gm_jax.viz import curves
from gm_jax.viz import images as viz_images

# content losses on images in [-1, 1], means over the batch and the pixels
CONTENT_LOSSES = {
    "mse": lambda fake, real: jnp.mean(optax.squared_error(fake, real)),  # Ledig et al. 2017, Eq. 4 (pixel-wise MSE)
    "l1": lambda fake, real: jnp.mean(jnp.abs(fake - real)),  # Isola et al. 2017, Eq. 3
}
GENERATORS = ("adversarial", "baseline")


def translation_config() -> ml_collections.ConfigDict:
    """The fields every translation experiment has, with DCGAN's optimiser (Adam 2e-4, beta1 0.5, the setting
    of both papers' GAN phases); the experiment sets the sizes, the content loss and the weights."""
    c = config_lib.base_config()
    c.content_loss = "mse"  # mse | l1
    c.content_weight = 1.0  # the content loss's weight (pix2pix's lambda)
    c.adversarial_weight = 1e-3  # the adversarial term's weight (SRGAN: 1e-3)
    c.generator_loss = "non_saturating"
    c.baseline = True  # also train the content-loss-only generator on the same batches
    c.k = 1
    c.learning_rate = 2e-4
    c.beta1 = 0.5
    c.batch_size = 64
    c.num_steps = 3000
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 500
    c.num_eval_images = 10_000  # test images translated and scored
    c.classifier_dir = ""  # "" = $GM_JAX_CLASSIFIER_DIR or <project>/runs/mnist_classifier
    return c


class TranslationExperiment(GANExperiment):
    """A paired translator on MNIST: x = the image, y = `make_input(x)`; `sample` translates given inputs.

    Config fields: `content_loss`, `content_weight`, `adversarial_weight`, `generator_loss`, `baseline`,
    `k`, `learning_rate`, `beta1`, `num_eval_images`, `classifier_dir` (see `translation_config`).
    """

    data_kind = "uint8"
    data_shape = (28, 28, 1)
    input_shape: tuple = (28, 28, 1)  # one input image (uint8)
    input_note: str = "input image"  # what an input is, for error messages
    method_names: tuple[str, str] = ("adversarial", "baseline")  # results / figure names of the two generators
    conditioning = ("inputs", "generator")
    figure_rows = 10
    schema = {**GANExperiment.schema, "content_loss": Choice(*CONTENT_LOSSES), "content_weight": Range(0.0, lo_open=True),
              "adversarial_weight": Range(0.0), "baseline": Choice(True, False),
              "num_eval_images": Range(2, integer=True)}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        generator, discriminator, z_dim = self.players()
        weight, content = float(config.content_weight), CONTENT_LOSSES[config.content_loss]
        self.gan = gan.GAN(generator, discriminator, gan.dcgan_optimizer(config.learning_rate, config.beta1),
                           gan.dcgan_optimizer(config.learning_rate, config.beta1),
                           lambda k: jax.random.uniform(k, (int(z_dim),)), k=config.k, loss=config.generator_loss,
                           content_loss=lambda fake, real: weight * content(fake, real),
                           adversarial_weight=config.adversarial_weight, baseline=bool(config.baseline))
        self._classifier = None

    # -- what a subclass defines ---------------------------------------------------------------------
    def make_input(self, images: np.ndarray) -> np.ndarray:
        """The input of each target image (host side, NumPy / scikit-image): uint8 [B, 28, 28, 1] ->
        uint8 [B, *input_shape]."""
        raise NotImplementedError

    def players(self):
        """(generator `G(z, y, train)`, discriminator `D(x, y, train)`, z_dim): y the input in [-1, 1]; z
        uniform on [0, 1)^z_dim per example (0 for a deterministic generator; pix2pix's dropout masks)."""
        raise NotImplementedError

    def reference_outputs(self, images: np.ndarray, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs of fixed (not learned) methods to score beside the generators, e.g. {"bicubic": uint8 [B, 28,
        28, 1]}; default none."""
        return {}

    # -- data ------------------------------------------------------------------------------------------
    def _split(self, split: str) -> dict:
        return load_split("mnist", split, self.config.data_dir or None)

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        """MNIST training batches {"image", "label", "input" = make_input(image)} (the input computed per batch)."""
        data = self._split("train")
        for batch in train_batches({"image": data["image"], "label": data["label"]}, self.config.batch_size,
                                   self.config.seed, start_step, rows):
            yield {**batch, "input": self.make_input(batch["image"])}

    def real_inputs(self, batch):
        return gan.from_uint8(batch["image"]), gan.from_uint8(batch["input"])

    def example_inputs(self):
        return jnp.zeros((1, *self.data_shape), jnp.float32), jnp.zeros((1, *self.input_shape), jnp.float32)

    def params_of(self, state: gan.GANState) -> dict:
        """{"params", "batch_stats"} of the adversarial generator and, with a baseline, {"baseline": the same of
        the content-loss-only generator}."""
        out = {"params": state.g_params, "batch_stats": state.g_batch_stats}
        if self.config.baseline:
            out["baseline"] = {"params": state.baseline_params, "batch_stats": state.baseline_batch_stats}
        return out

    # -- sampling --------------------------------------------------------------------------------------
    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """Check `sample`'s `inputs` and `generator` on concrete values, before the jitted sampler.

        Args:
          num_samples: the number of outputs asked for.
          inputs: uint8-valued integer array [num_samples, *input_shape] in 0..255 (required).
          generator: "adversarial" (default) or "baseline" (the content-loss-only generator, when trained).

        Returns:
          {"inputs": uint8 [num_samples, *input_shape], "generator": a static name}.

        Raises:
          ValueError: an unknown keyword; missing inputs; inputs of another shape, a non-integer dtype or
            values outside 0..255; an unknown generator, or "baseline" without one.
        """
        conditioning = super().check_conditioning(num_samples, **conditioning)
        inputs = conditioning.get("inputs")
        expected = f"uint8 [num_samples, {', '.join(map(str, self.input_shape))}] = [{num_samples}, " \
                   f"{', '.join(map(str, self.input_shape))}] ({self.input_note}, values 0..255)"
        if inputs is None:
            raise ValueError(f"{self.name} translates inputs: give inputs={expected}, e.g. "
                             "experiment.make_input(test images)")
        x = np.asarray(inputs)
        if x.shape != (num_samples, *self.input_shape):
            raise ValueError(f"{self.name}: inputs must be {expected}; got shape {x.shape}")
        if not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
            raise ValueError(f"{self.name}: inputs must be {expected}; got dtype {x.dtype}")
        if x.size and (x.min() < 0 or x.max() > 255):
            raise ValueError(f"{self.name}: inputs must be {expected}; got values in [{x.min()}, {x.max()}]")
        generator = sampling.static_value(conditioning.get("generator", "adversarial"))
        if generator not in GENERATORS or (generator == "baseline" and not self.config.baseline):
            valid = list(GENERATORS) if self.config.baseline else ["adversarial"]
            raise ValueError(f"{self.name}: generator={generator!r}; valid choices: {valid}")
        return {"inputs": x.astype(np.uint8), "generator": sampling.Static(generator)}

    def sample(self, params, key: jax.Array, num_samples: int, inputs=None, generator="adversarial") -> jax.Array:
        """x = G(z, y): the translation of each input, uint8 [num_samples, 28, 28, 1] (eval-mode batch norm).

        Args:
          params: `params_of(state)`.
          key: PRNG key, draws z (one per output; pix2pix's dropout masks; unused by a deterministic G).
          num_samples: static int, the number of inputs.
          inputs: uint8 [num_samples, *input_shape], 0..255 (checked as in `check_conditioning` when concrete).
          generator: "adversarial" | "baseline" (static).

        Raises:
          ValueError: bad inputs or generator (`check_conditioning`).
        """
        generator = sampling.static_value(generator)
        if not isinstance(inputs, jax.core.Tracer):
            self.check_conditioning(num_samples, inputs=inputs, generator=generator)
        elif tuple(inputs.shape) != (num_samples, *self.input_shape):
            raise ValueError(f"{self.name}: inputs must have shape {(num_samples, *self.input_shape)}, "
                             f"got {tuple(inputs.shape)}")
        variables = params["baseline"] if generator == "baseline" else params
        return gan.to_uint8(self.gan.generate(variables["params"], variables["batch_stats"], key, num_samples,
                                              gan.from_uint8(inputs)))

    def translate(self, params, key: jax.Array, inputs: np.ndarray, generator: str = "adversarial") -> np.ndarray:
        """`sample` over many inputs (uint8 [N, *input_shape]) in jitted chunks of `eval_batch_size`, chunk i with
        `fold_in(key, i)`: uint8 [N, 28, 28, 1] on the host."""
        bs = int(self.config.eval_batch_size)
        inputs = self.check_conditioning(len(inputs), inputs=inputs, generator=generator)["inputs"]
        which = sampling.Static(generator)
        out = [np.asarray(self.jit_sample(params, jax.random.fold_in(key, i // bs), len(inputs[i:i + bs]),
                                          inputs=inputs[i:i + bs], generator=which))
               for i in range(0, len(inputs), bs)]
        return np.concatenate(out)

    # -- evaluation ------------------------------------------------------------------------------------
    def classifier(self):
        """The project's MNIST classifier (`classifier.get_classifier`; the smoke-test one on synthetic data)."""
        if self._classifier is None:
            self._classifier = classifier_lib.classifier_and_reference(self.config.classifier_dir or None,
                                                                       self.config.data_dir or None)[0]
        return self._classifier

    def _outputs(self, params, key: jax.Array, images: np.ndarray, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """{method name: uint8 outputs [N, 28, 28, 1]}: the references, the baseline, the adversarial generator."""
        out = dict(self.reference_outputs(images, inputs))
        adversarial, baseline = self.method_names
        if self.config.baseline:
            out[baseline] = self.translate(params, key, inputs, "baseline")
        out[adversarial] = self.translate(params, key, inputs, "adversarial")
        return out

    def evaluate(self, params, key: jax.Array) -> dict:
        """Scores of every method on the first `num_eval_images` test images, keys `<method>_<metric>`:
        `psnr_db`, `ssim`, `l1` (against the targets), `mnist_fid` (against the same real test images),
        `mnist_is`, `classifier_accuracy` (against the targets' labels); and the real images' accuracy."""
        test = self._split("test")
        n = min(int(self.config.num_eval_images), len(test["image"]))
        images, labels = np.asarray(test["image"][:n]), np.asarray(test["label"][:n])
        inputs = self.make_input(images)
        clf = self.classifier()
        real_logits, real_features = clf.outputs(images)
        reference = sample_quality.feature_stats(real_features)
        out = {"num_eval_images": n, "methods": [], "real_classifier_accuracy":
               float(np.mean(np.argmax(real_logits, 1) == labels)),
               "metric_note": "MNIST-FID / MNIST-IS use the project's MNIST classifier (not Inception-v3); FID is "
                              "against the same real test images; PSNR (dB) is the mean over images with a finite "
                              "value; L1 in [0, 1] units",
               "figures": ["comparison.png", "losses.png"]}
        for method, x in self._outputs(params, key, images, inputs).items():
            fid, score, logits = sample_quality.mnist_fid_and_is(clf, x, reference)
            scores = {**paired.paired_metrics(images, x), "mnist_fid": fid, "mnist_is": score,
                      "classifier_accuracy": float(np.mean(np.argmax(logits, 1) == labels))}
            out["methods"].append(method)
            out.update({f"{method}_{k}": v for k, v in scores.items()})
        return out

    def progress_samples(self, params, key: jax.Array) -> jax.Array:
        """Translations of the first `num_progress_samples` test inputs (evaluation during training)."""
        images = np.asarray(self._split("test")["image"][:self.num_progress_samples])
        return self.jit_sample(params, key, len(images), inputs=self.make_input(images),
                               generator=sampling.Static("adversarial"))

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        workdir = Path(workdir)
        images = np.asarray(self._split("test")["image"][:self.figure_rows])
        inputs = self.make_input(images)
        columns = [("input", inputs), *self._outputs(params, key, images, inputs).items(), ("target", images)]
        viz_images.save_comparison(workdir / "comparison.png", columns, title=f"{self.name}: test images")
        curves.save_gan_losses(workdir / "metrics.jsonl", workdir / "losses.png", title=self.name)
