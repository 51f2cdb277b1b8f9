"""Benchmarks, each measured side by side with the reference tool in the same run."""
