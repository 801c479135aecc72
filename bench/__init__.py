"""Benchmarks: throughput and cost figures, each next to a baseline measured in the same run."""
