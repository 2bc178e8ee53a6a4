"""`python -m cdm.cli` runs the command line."""

from cdm.cli.main import main

main()
