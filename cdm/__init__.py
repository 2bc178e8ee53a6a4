"""CDM composition root: settings, logging and the `cdm` command line."""
