"""Benchmarks of django-cachekit; run ``python benchmarks/bench_core.py`` from the repository root."""
