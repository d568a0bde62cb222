"""Benchmarks: seenby side by side with the physical limit on the same machine, in one run."""
