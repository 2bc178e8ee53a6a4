"""Getting data in: synthetic data generation and bulk loading (``cdm seed``)."""
