"""A refresh asks the registry (a child process importing MLflow: seconds of CPU) only when
the registry's SQLite store changed since every task's answer was handled; a restart knows it
too, and `reloadModels` (force) always asks."""

from __future__ import annotations

from ml.registry import ModelRegistry, default_tracking_uri
from ml.serving.models import TASKS, ModelStore, sqlite_stamp
from tests.ml.conftest import copy_store


def counted(data_dir, asked: list[int]):
    """A registry factory that counts how often the store opens the registry."""
    uri = default_tracking_uri(data_dir)

    def factory() -> ModelRegistry:
        asked.append(1)
        return ModelRegistry(uri, data_dir / "mlartifacts")

    return factory, (lambda: sqlite_stamp(uri))


def served(store: ModelStore) -> dict[str, tuple[str, int | None]]:
    return {t: (store.status[t].state, store.status[t].version) for t in TASKS}


async def test_the_registry_is_asked_only_when_its_store_changed(
    champions_dir, trained, plan, tmp_path
):
    data_dir = copy_store(champions_dir, tmp_path / "data")
    asked: list[int] = []
    factory, stamp = counted(data_dir, asked)
    champions = {t: ("ok", 1) for t in TASKS}

    store = ModelStore(factory, data_dir / "models", stamp)
    try:
        await store.refresh(600)  # however busy the machine: no test of timing
        assert (len(asked), served(store)) == (1, champions)
        await store.refresh(600)
        await store.refresh(600)
        assert (len(asked), served(store)) == (1, champions)  # nothing changed: nobody asked

        registry = ModelRegistry(default_tracking_uri(data_dir), data_dir / "mlartifacts")
        second = registry.record(trained["churn"], plan.describe()).decision.version
        registry.promote("churn", second)
        await store.refresh(600)
        assert (len(asked), served(store)["churn"]) == (2, ("ok", second))
        assert store.models["churn"].version == second
        await store.refresh(600, force=True)  # reloadModels: asked whatever the stamp says
        assert len(asked) == 3
    finally:
        store.close()

    # A restart serves the remembered champions from the cache, and the stamp the last
    # complete refresh recorded says they are current: the registry is not asked.
    restarted = ModelStore(factory, data_dir / "models", stamp)
    try:
        await restarted.refresh(600)
        assert (len(asked), served(restarted)) == (3, {**champions, "churn": ("ok", second)})
        assert restarted.models["churn"].version == second
    finally:
        restarted.close()

    # A cached version's files gone: the cache cannot serve it, so the stamp confirms nothing
    # and the registry is asked (the damaged version stays refused, as without a stamp).
    for stale in (data_dir / "models" / "upsell" / "v1").iterdir():
        stale.unlink()
    again = ModelStore(factory, data_dir / "models", stamp)
    try:
        await again.refresh(600)
        assert (len(asked), served(again)["upsell"]) == (4, ("degraded", None))
        assert "do not match their checksums" in again.status["upsell"].reason
        assert served(again)["churn"] == ("ok", second)
    finally:
        again.close()


def test_the_stamp_moves_with_every_write_and_only_for_sqlite(tmp_path):
    import sqlite3

    path = tmp_path / "store.db"
    uri = f"sqlite:///{path}"
    assert sqlite_stamp(uri) == "- -"  # no store yet: a stamp all the same (it will move)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    stamps = [sqlite_stamp(uri)]
    for value in range(3):  # same size, same second: the header's change counter moves
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM t")
            db.execute("INSERT INTO t VALUES (?)", (value,))
        stamps.append(sqlite_stamp(uri))
    assert len(set(stamps)) == len(stamps)
    assert sqlite_stamp(uri) == stamps[-1]  # reading changes nothing
    assert sqlite_stamp("postgresql://mlflow@db/mlflow") is None  # other stores: always asked
    assert sqlite_stamp(f"{uri}?timeout=5") is None
