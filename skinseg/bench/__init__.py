"""Benchmarks that print tables: `python -m skinseg.bench.train`."""
