"""Training of registry models on rainy/clean stereo pairs (single process or DDP)."""
