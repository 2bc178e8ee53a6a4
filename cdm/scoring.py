"""The scorer of a running CDM, built from its settings (shared by the server and the CLI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdm.settings import Settings
from ml.serving.models import ModelStore, sqlite_stamp
from ml.serving.scoring import Scorer

if TYPE_CHECKING:
    # Imported when the registry is first asked: a server does so in the background, once
    # it answers (the module is large: ~6 ms of a worker's start).
    from ml.registry import ModelRegistry, RegistryProcess


def registry_for(settings: Settings, *, fail_fast: bool = False) -> ModelRegistry:
    """The MLflow registry the settings name (the local store in the data dir by default)."""
    from ml.registry import ModelRegistry

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return ModelRegistry(
        settings.tracking_uri, settings.data_dir / "mlartifacts", fail_fast=fail_fast
    )


def build_scorer(settings: Settings) -> Scorer:
    """A scorer over the registry's champions, cached in ``<data dir>/models``; call
    ``scorer.store.refresh()`` to load them. The registry is asked from a child process
    (:class:`ml.registry.RegistryProcess`): the serving process never imports MLflow."""

    def registry() -> RegistryProcess:
        from ml.registry import RegistryProcess

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return RegistryProcess(
            settings.tracking_uri, settings.data_dir / "mlartifacts", fail_fast=True
        )

    store = ModelStore(
        registry, settings.data_dir / "models", lambda: sqlite_stamp(settings.tracking_uri)
    )
    return Scorer(store, settings.risk_bands)
