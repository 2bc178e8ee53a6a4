"""Which model version serves: a champion that cannot score this service's features is refused
(the previous version keeps serving, /readyz says why), and a start without the registry
serves exactly the champion the registry last named, for every task, from the first request."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import threading

import lightgbm as lgb
import numpy as np
import pytest

from ml.features import FEATURES, feature_list_hash
from ml.registry import ModelRegistry, default_tracking_uri
from ml.serving.models import ModelStore
from tests.api.test_lazy_imports import LOAD_MODELS, ROOT
from tests.factories import add_customer
from tests.http_client import data, error_codes, gql
from tests.ml.conftest import copy_store, serving, serving_settings
from tests.ml.test_scores_api import AT, buyer_ids

CHURN = """query($id: ID!, $at: DateTime) { customer(id: $id) {
  churnRisk(asOf: $at) { probability provenance { version } } } }"""
EVERY_TASK = """query($id: ID!, $at: DateTime) { customer(id: $id) {
  churnRisk(asOf: $at) { provenance { version } }
  nextPurchase(asOf: $at) { provenance { version } }
  recommendations(first: 3, asOf: $at) { provenance { version } } } }"""
RELOAD = "mutation { reloadModels { task state version } }"


def narrow_churn(trained):
    """The incident's model: churn learned from 3 of the features, registered with the
    current feature definition's hash (nothing in its tags gives it away)."""
    churn = trained["churn"]
    x = np.vstack([np.nan_to_num(churn.input_example[:, :3])] * 40)
    x = x + np.random.default_rng(0).random(x.shape)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 5, "num_threads": 1},
        lgb.Dataset(x, np.tile([0, 1], len(x) // 2), feature_name=list(FEATURES[:3])),
        num_boost_round=3,
    )
    best = {**churn.comparison["lightgbm"], churn.primary_metric: 0.999}  # the gate lets it in
    return dataclasses.replace(
        churn,
        heads={"churn": booster},
        feature_names=FEATURES[:3],
        input_example=x[:5],
        comparison={**churn.comparison, "lightgbm": best},
    )


def register_narrow_champion(registry: ModelRegistry, trained, plan) -> int:
    """Register the 3-feature churn model as champion, its recorded feature list hash forged
    to the current one as well: only the model file itself can tell."""
    version = registry.record(narrow_churn(trained), plan.describe()).decision.version
    registry.promote("churn", version)
    registry._client.set_model_version_tag(
        "cdm-churn", str(version), "feature_list_hash", feature_list_hash(FEATURES)
    )
    return version


async def test_a_champion_on_other_features_is_refused_and_the_previous_one_keeps_serving(
    seeded_url, champions_dir, trained, plan, tmp_path
):
    data_dir = copy_store(champions_dir, tmp_path / "data")
    registry = ModelRegistry(default_tracking_uri(data_dir), data_dir / "mlartifacts")
    (cid,) = await buyer_ids(seeded_url, 1)
    asked = {"id": str(cid), "at": AT}
    async with serving(seeded_url, serving_settings(data_dir)) as http:
        before = data(await gql(http, CHURN, asked))["customer"]["churnRisk"]
        refused = register_narrow_champion(registry, trained, plan)
        reloaded = data(await gql(http, RELOAD))["reloadModels"]
        after = data(await gql(http, CHURN, asked))["customer"]["churnRisk"]
        ready = await http.get("/readyz")
    assert before["provenance"]["version"] == 1
    # The previous version still answers, with the same number (to the last bits: its native
    # compilation may have been swapped in between the two requests).
    assert after["provenance"] == before["provenance"]
    assert after["probability"] == pytest.approx(before["probability"], rel=1e-9)
    assert {"task": "churn", "state": "degraded", "version": 1} in reloaded
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    churn = body["models"]["churn"]
    assert (churn["state"], churn["version"], churn["refusedVersion"]) == ("degraded", 1, refused)
    assert f"version {refused} refused" in churn["reason"]
    assert f"3 features, this service computes {len(FEATURES)}" in churn["reason"]
    assert body["models"]["next_purchase"]["state"] == "ok"


async def test_a_refused_champion_with_nothing_before_it_is_unavailable_never_a_500(
    seeded_url, trained, plan, tmp_path
):
    data_dir = tmp_path / "data"
    registry = ModelRegistry(default_tracking_uri(data_dir), data_dir / "mlartifacts")
    refused = register_narrow_champion(registry, trained, plan)
    (cid,) = await buyer_ids(seeded_url, 1)
    async with serving(seeded_url, serving_settings(data_dir)) as http:
        body = await gql(http, CHURN, {"id": str(cid), "at": AT})
        again = await gql(http, CHURN, {"id": str(cid), "at": AT})
        ready = (await http.get("/readyz")).json()
    assert body["data"]["customer"] == {"churnRisk": None}
    assert error_codes(body) == ["MODEL_UNAVAILABLE"]
    message = body["errors"][0]["message"]
    assert f"version {refused} refused" in message
    assert "3 features" in message
    assert error_codes(again) == ["MODEL_UNAVAILABLE"]
    churn = ready["models"]["churn"]
    assert (churn["state"], churn["version"], churn["refusedVersion"]) == (
        "degraded", None, refused
    )  # fmt: skip


async def test_a_model_must_score_its_known_row_as_it_did_when_trained(trained, plan, tmp_path):
    registry = ModelRegistry(default_tracking_uri(tmp_path), tmp_path / "mlartifacts")
    registry.record(trained["churn"], plan.describe())
    version = registry.versions("churn")[0]
    known = json.loads(version.tags["canary"])
    x = trained["churn"].input_example[:1]
    assert known["predictions"]["churn"] == trained["churn"].heads["churn"].predict(x)[0]
    assert version.tags["feature_list_hash"] == feature_list_hash(FEATURES)

    # A second version whose file answers its known row differently from training (here its
    # record is altered; an artifact replaced after registration looks the same).
    second = registry.record(trained["churn"], plan.describe()).decision.version
    registry.promote("churn", second)
    forged = {**known, "predictions": {"churn": known["predictions"]["churn"] + 0.25}}
    registry._client.set_model_version_tag("cdm-churn", str(second), "canary", json.dumps(forged))
    store = ModelStore(lambda: registry, tmp_path / "models")
    try:
        await store.refresh(600)  # however busy the machine: this is no test of timing
    finally:
        store.close()
    status = store.status["churn"]
    assert "churn" not in store.models  # nothing served before it in this process
    assert (status.state, status.version, status.refused_version) == ("degraded", None, second)
    assert "known row" in status.reason


async def test_a_start_without_the_registry_serves_the_champion_it_last_named(
    seeded_url, champions_dir, trained, plan, tmp_path
):
    data_dir = copy_store(champions_dir, tmp_path / "data")
    registry = ModelRegistry(default_tracking_uri(data_dir), data_dir / "mlartifacts")
    newer = registry.record(trained["churn"], plan.describe()).decision.version  # a challenger
    (cid,) = await buyer_ids(seeded_url, 1)
    asked = {"id": str(cid), "at": AT}

    def served(body: dict) -> int:
        return data(body)["customer"]["churnRisk"]["provenance"]["version"]

    async with serving(seeded_url, serving_settings(data_dir)) as http:
        assert served(await gql(http, CHURN, asked)) == 1
        registry.promote("churn", newer)  # both versions end up in the local cache
        await gql(http, RELOAD)
        assert served(await gql(http, CHURN, asked)) == newer
        registry.promote("churn", 1)  # rolled back; this start sees it
        await gql(http, RELOAD)
        assert served(await gql(http, CHURN, asked)) == 1
    assert {p.name for p in (data_dir / "models" / "churn").glob("v*")} == {"v1", f"v{newer}"}

    down = serving_settings(data_dir, mlflow_tracking_uri="http://127.0.0.1:9")
    async with serving(seeded_url, down) as http:
        body = await gql(http, EVERY_TASK, asked)
        ready = (await http.get("/readyz")).json()
    assert served(body) == 1  # not the newer version the alias left
    customer = body["data"]["customer"]
    assert customer["nextPurchase"]["provenance"]["version"] == 1
    assert customer["recommendations"][0]["provenance"]["version"] == 1
    assert ready["models"]["churn"]["state"] == "degraded"
    assert "cached" in ready["models"]["churn"]["reason"]


class HungRegistry:
    """A tracking server that drops the churn request at once and never answers the others,
    like a registry behind a proxy that hangs (closed when the test ends, so the requests
    left waiting fail then)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                request = conn.recv(65536)
            except OSError:
                request = b""
            if b"cdm-churn" in request:
                conn.close()
            else:
                self._held.append(conn)

    def close(self) -> None:
        self._closing.set()
        self._thread.join()
        self._listener.close()
        for conn in self._held:
            conn.close()


async def test_every_cached_champion_serves_from_the_first_request(
    seeded_url, champions_dir, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    data_dir = copy_store(champions_dir, tmp_path / "data")
    (cid,) = await buyer_ids(seeded_url, 1)
    asked = {"id": str(cid), "at": AT}
    async with serving(seeded_url, serving_settings(data_dir)) as http:  # fills the cache
        first = data(await gql(http, EVERY_TASK, asked))["customer"]

    # One request per registry call, each waiting as long as the registry lets it.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "600")
    hung = HungRegistry()
    try:
        settings = serving_settings(
            data_dir, mlflow_tracking_uri=hung.uri, model_load_timeout_seconds=5
        )
        async with serving(seeded_url, settings) as http:
            body = await gql(http, EVERY_TASK, asked)
            ready = (await http.get("/readyz")).json()
    finally:
        hung.close()
    assert data(body)["customer"] == first
    assert {t: m["version"] for t, m in ready["models"].items()} == {
        "churn": 1, "next_purchase": 1, "upsell": 1
    }  # fmt: skip
    assert all("cached" in m["reason"] for m in ready["models"].values()), ready


class SilentRegistry:
    """A tracking server that accepts every request and answers none until closed."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                self._held.append(self._listener.accept()[0])
            except TimeoutError:
                continue

    def close(self) -> None:
        self._closing.set()
        self._thread.join()
        self._listener.close()
        for conn in self._held:
            conn.close()


async def test_the_server_answers_while_its_models_load(
    db, database_url, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    cid = await add_customer(db)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "600")
    silent = SilentRegistry()  # the first load cannot end while it holds the registry's answer
    query = f'{{ customer(id: "{cid}") {{ id churnRisk {{ probability }} }} }}'
    try:
        settings = serving_settings(tmp_path, mlflow_tracking_uri=silent.uri)
        async with serving(database_url, settings, models_loaded=False) as http:
            body = await gql(http, query)
            ready = await http.get("/readyz")
    finally:
        silent.close()
    assert body["data"]["customer"] == {"id": str(cid), "churnRisk": None}
    assert error_codes(body) == ["MODEL_UNAVAILABLE"]
    assert "still loading its models" in body["errors"][0]["message"]
    assert ready.status_code == 200
    assert ready.json()["status"] == "loading"
    assert {t: (m["state"], m["version"]) for t, m in ready.json()["models"].items()} == {
        "churn": ("loading", None), "next_purchase": ("loading", None),
        "upsell": ("loading", None),
    }  # fmt: skip


def test_a_server_loads_its_champions_without_importing_mlflow(champions_dir, tmp_path):
    # A fresh interpreter, as a worker: the registry is asked (and the files downloaded) by a
    # child process; the worker imports LightGBM to serve (without the pandas and
    # scikit-learn it would bring), never MLflow.
    data_dir = copy_store(champions_dir, tmp_path / "data")
    statement = LOAD_MODELS.format(data_dir=str(data_dir))
    probe = subprocess.run(
        [sys.executable, "-c", f"{statement}\nprint(sorted({{m.split('.')[0] for m in "
         "sys.modules} & {'mlflow', 'lightgbm', 'pandas', 'sklearn'}))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    statuses = json.loads(probe.stderr.strip().splitlines()[-1])
    assert statuses == {t: ["ok", 1] for t in ("churn", "next_purchase", "upsell")}
    assert probe.stdout.strip() == "['lightgbm']"
    assert (data_dir / "models" / "churn" / "v1" / "churn.txt").is_file()
