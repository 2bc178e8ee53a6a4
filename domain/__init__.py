"""The customer database's model and rules: pure Python, no I/O, imports none of our layers."""
