"""Evaluation of deraining: image metrics, SGBM disparity scoring, baselines and reports."""
