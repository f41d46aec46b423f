"""gm_jax: a JAX/Flax reference implementation of the classic deep generative models.

Notebook API: `gm_jax.create(name, seed=0, **overrides)`, `gm_jax.load(workdir)`,
both returning a `gm_jax.Model` with `.sample(key, n)` and `.log_prob(x, key)`.
"""
from gm_jax import xla_cpu  # noqa: F401 - first: sets XLA_FLAGS before any JAX backend starts
from gm_jax.api import Model, build, create, experiment_names, get_config, load  # noqa: E402

__all__ = ["Model", "build", "create", "experiment_names", "get_config", "load"]
__version__ = "0.1.0"
