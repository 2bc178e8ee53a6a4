"""Model serving: scoring customers with the registered champion models."""
