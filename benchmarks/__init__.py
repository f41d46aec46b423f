"""Throughput benchmarks of the train steps and samplers of `gm_jax` experiments.

    python -m benchmarks.run [--only NAME ...] [--out DIR] [--repeats N] [--quick]

See `benchmarks.harness` for the timing method and `benchmarks.run.ENTRIES`
for what is benchmarked.
"""
