"""The `cdm` command line."""

from __future__ import annotations


def main() -> None:
    """The `cdm` console script's entry point: the command line of :mod:`cdm.cli.main`.

    Kept apart from the commands, which import typer, rich and settings (~0.1 s): server
    worker processes start as fresh interpreters that first re-run the script that started
    their parent (multiprocessing's "spawn"), so with `cdm serve --workers N` each worker
    imports this module, which must cost nothing, before it imports the API.
    """
    from cdm.cli.main import main as run

    run()
