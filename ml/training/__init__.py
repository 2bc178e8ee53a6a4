"""Model training: point-in-time datasets, LightGBM training, evaluation, promotion."""
