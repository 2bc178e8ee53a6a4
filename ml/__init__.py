"""Predictive models over the customer database: features, training, serving, registry."""
