"""Automatic hyperparameter tuning: search spaces, Optuna studies, pruning, parallel trials."""
