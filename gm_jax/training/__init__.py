"""Training: pure train steps (jit / pmap / sharded jit), checkpointing, the loop."""
from gm_jax.training.steps import PARALLEL_CHOICES, TrainStep, all_finite, loss_update, pmean

__all__ = ["PARALLEL_CHOICES", "TrainStep", "all_finite", "loss_update", "pmean"]
