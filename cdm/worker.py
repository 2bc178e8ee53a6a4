"""The app a `cdm serve` server process builds: the API, imported with the collector paused.

With ``--workers N`` uvicorn starts each worker as a fresh interpreter that imports
:func:`app` by name and calls it; with one worker ``cdm serve`` builds the app itself. Either
way the API is imported here, inside :func:`collector_paused`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector paused, then freeze what it built.

    Importing the API and building the app makes ~130,000 objects that live as long as the
    process (the schema, the libraries' modules). Their allocation triggers collections
    that walk them again and again and find next to nothing to free (~700 objects): ~40 ms
    of a worker's start, before its first answer. Frozen afterwards, they stay out of every
    later collection's sight, as the app's lifespan does again for what start-up adds
    (``api.app._tune_garbage_collector``). Collection then resumes, if it was on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def app() -> Starlette:
    """uvicorn's app factory in every worker process (`cdm serve --workers N`): settings and
    the database URL from the environment, which ``cdm serve`` set."""
    with collector_paused():
        from api.app import app_from_environment

        return app_from_environment()
