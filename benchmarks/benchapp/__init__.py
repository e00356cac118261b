"""A tiny app holding the models the benchmarks read and write."""
