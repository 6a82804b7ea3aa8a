"""Benchmarks: model speed and memory, node throughput and latency, offline bag throughput."""
