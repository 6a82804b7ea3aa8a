"""Benchmarks of the package's parts: building blocks shared by `stereo-derain bench`."""
