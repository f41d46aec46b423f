"""Experiments: one module per experiment, each with `get_config()` and `Experiment`.

Run one as `python -m experiments.<name> --workdir DIR [--config.key=value ...]`,
or build it in a notebook with `gm_jax.create("<name>")`.
"""
