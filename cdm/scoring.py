"""The scorer of a running CDM, built from its settings (shared by the server and the CLI)."""

from __future__ import annotations

from cdm.settings import Settings
from ml.registry import ModelRegistry
from ml.serving.models import ModelStore
from ml.serving.scoring import Scorer


def build_scorer(settings: Settings) -> Scorer:
    """A scorer over the registry's champions, cached in ``<data dir>/models``; call
    ``scorer.store.refresh()`` to load them."""

    def registry() -> ModelRegistry:
        return ModelRegistry(
            settings.tracking_uri, settings.data_dir / "mlartifacts", fail_fast=True
        )

    return Scorer(ModelStore(registry, settings.data_dir / "models"), settings.risk_bands)
