"""The `cdm` command line."""
