"""Training: task detection, preprocessing, model families, evaluation and plots."""
