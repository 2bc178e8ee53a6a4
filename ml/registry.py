"""The one module that knows MLflow: record training runs, register models, gate champions.

Every task has one registered model (:data:`REGISTERED_MODELS`). A training run logs its
parameters, metrics (``<model>.<metric>`` for LightGBM and every baseline), the feature list
and definition hash, the data snapshot, the figures and each head in the LightGBM flavour
with a signature and an input example. The primary head is registered as a new version with
the alias ``challenger``; it takes the alias ``champion`` only when it beats the current
champion on the *same* evaluation rows (and its own best baseline), or when a person promotes
it with :meth:`ModelRegistry.promote`. Serving loads ``models:/<name>@champion``.

MLflow is imported lazily: it is slow to import and only training and model loading need it.
A server does not import it at all: :class:`RegistryProcess` asks the registry from a child
process (``python -m ml.registry``), which ends when the questions do, so a worker neither
spends the seconds MLflow takes to import next to its first requests nor keeps the ~190 MB
it holds afterwards.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ml.calibration import Calibration
from ml.features import feature_list_hash

if TYPE_CHECKING:
    import lightgbm as lgb

    from ml.training.outcome import TrainedTask

REGISTERED_MODELS: dict[str, str] = {
    "churn": "cdm-churn",
    "next_purchase": "cdm-next-purchase",
    "upsell": "cdm-upsell",
}
CHAMPION = "champion"
CHALLENGER = "challenger"


class RegistryError(Exception):
    """A registry request that cannot be met (unknown task or version, no champion, ...)."""


@dataclass(frozen=True)
class GateDecision:
    """Whether a new version became champion, and why."""

    version: int
    promoted: bool
    reason: str
    champion_version: int | None
    champion_metric: float | None


@dataclass(frozen=True)
class RecordedRun:
    run_id: str
    experiment: str
    decision: GateDecision


@dataclass(frozen=True)
class VersionSummary:
    task: str
    version: int
    aliases: tuple[str, ...]
    created: datetime
    run_id: str
    tags: dict[str, str]

    @property
    def primary_metric(self) -> tuple[str, float] | None:
        name = self.tags.get("primary_metric")
        value = self.tags.get(f"metric.{name}") if name else None
        return (name, float(value)) if name and value is not None else None


@dataclass(frozen=True)
class LoadedModel:
    """A registered version's boosters, ready to predict."""

    task: str
    name: str
    version: int
    run_id: str
    heads: dict[str, lgb.Booster]
    feature_hash: str
    tags: dict[str, str]

    def percentiles(self, head: str) -> list[float] | None:
        """The head's prediction percentiles over its evaluation customers, if recorded."""
        raw = self.tags.get(f"percentiles.{head}")
        return json.loads(raw) if raw else None

    def calibration(self, head: str) -> Calibration:
        """How the head's raw output becomes the probability served."""
        return Calibration.from_json(self.tags.get(f"calibration.{head}"))


def default_tracking_uri(data_dir: Path) -> str:
    """The local store in the data directory: works with no server."""
    return f"sqlite:///{(data_dir / 'mlflow.db').resolve()}"


def registered_name(task: str) -> str:
    try:
        return REGISTERED_MODELS[task]
    except KeyError:
        raise RegistryError(
            f"unknown task {task!r}; expected one of {', '.join(REGISTERED_MODELS)}"
        ) from None


def _import_mlflow():  # noqa: ANN202 (the mlflow module)
    # CDM holds customer data: MLflow's usage telemetry stays off unless a user turns it on.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    return mlflow


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the notices MLflow's internals raise (deprecations in pandas and SQLAlchemy,
    its own type-hint remarks): they are MLflow's to fix and only alarm whoever trains."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
        yield


class ModelRegistry:
    """MLflow tracking and registry at ``tracking_uri``; artifacts under ``artifact_root``
    (only used for experiments this creates; a tracking server keeps its own)."""

    def __init__(
        self, tracking_uri: str, artifact_root: Path | None = None, *, fail_fast: bool = False
    ) -> None:
        mlflow = _import_mlflow()
        if fail_fast:  # serving: an unreachable registry must not hold up start-up
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

        # MLflow narrates schema setup and registrations at INFO, and logs its failures with a
        # traceback before raising them; callers report what matters, in one line.
        logging.getLogger("mlflow").setLevel(logging.CRITICAL)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # A tracking server that is down should fail a command in seconds, not after minutes
        # of MLflow's default retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        self._client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # -- recording ---------------------------------------------------------------------

    def record(self, trained: TrainedTask, plan: dict[str, object]) -> RecordedRun:
        """Log a trained task as a run, register its primary head, apply the champion gate."""
        for head, booster in trained.heads.items():
            # What the version records about its inputs must be what its files read.
            if tuple(booster.feature_name()) != tuple(trained.feature_names):
                raise RegistryError(
                    f"the {trained.task} {head} head reads {booster.num_feature()} features "
                    f"that are not the {len(trained.feature_names)} the run names; not recorded"
                )
        with _quiet():
            return self._record(trained, plan)

    def _record(self, trained: TrainedTask, plan: dict[str, object]) -> RecordedRun:
        import mlflow
        import mlflow.lightgbm
        import pandas as pd
        from mlflow.models import infer_signature

        name = registered_name(trained.task)
        experiment_id = self._experiment(f"cdm-{trained.task.replace('_', '-')}")
        as_of = str(plan.get("as_of", ""))
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"{trained.task} as of {as_of[:10]}"
        ) as run:
            mlflow.log_params(_flat_params(plan, trained.params))
            mlflow.set_tags(
                {
                    "cdm.task": trained.task,
                    "cdm.feature_hash": trained.feature_hash,
                    "cdm.primary_metric": trained.primary_metric,
                }
            )
            mlflow.log_metrics(
                {
                    f"{model}.{metric}": value
                    for model, row in trained.comparison.items()
                    for metric, value in row.items()
                    if math.isfinite(value)
                }
            )
            mlflow.log_dict(
                {
                    "features": list(trained.feature_names),
                    "feature_hash": trained.feature_hash,
                },
                "features.json",
            )
            mlflow.log_dict(trained.data, "data_snapshot.json")
            mlflow.log_dict(trained.comparison, "evaluation.json")
            # The boosters judged on the held-out cutoff, beside the refitted ones served: the
            # gate compares a later challenger with these, which never saw its evaluation.
            evaluated: dict[str, str] = {}
            for head, booster in trained.evaluated_heads.items():
                path = f"evaluated/{head}.txt"
                mlflow.log_text(booster.model_to_string(), path)
                evaluated[head] = f"runs:/{run.info.run_id}/{path}"
                mlflow.log_metrics(
                    {
                        f"rounds.{head}": booster.current_iteration(),
                        f"rounds_served.{head}": trained.heads[head].current_iteration(),
                    }
                )
            mlflow.set_tags(
                {
                    **{f"cdm.calibration.{h}": c.kind for h, c in trained.calibrations.items()},
                    **{f"cdm.baseline.{b}": why for b, why in trained.baseline_status.items()},
                }
            )
            for filename, figure in trained.figures.items():
                mlflow.log_figure(figure, f"plots/{filename}")

            example = pd.DataFrame(trained.input_example, columns=list(trained.feature_names))
            uris: dict[str, str] = {}
            version = 0
            for head, booster in trained.heads.items():
                primary = head == trained.primary_head
                # Registration prints its progress to stderr; the CLI reports the outcome.
                with contextlib.redirect_stderr(io.StringIO()):
                    info = mlflow.lightgbm.log_model(
                        booster,
                        name=head,
                        signature=infer_signature(example, booster.predict(trained.input_example)),
                        input_example=example,
                        registered_model_name=name if primary else None,
                    )
                uris[head] = info.model_uri
                if primary:
                    version = int(info.registered_model_version)
            self._describe_version(name, version, trained, uris, evaluated, as_of)
            decision = self._gate(name, version, trained)
            mlflow.set_tags(
                {
                    "cdm.registered_version": str(version),
                    "cdm.gate": "promoted" if decision.promoted else "kept as challenger",
                    "cdm.gate_reason": decision.reason,
                }
            )
            if decision.champion_metric is not None:
                mlflow.log_metric("champion." + trained.primary_metric, decision.champion_metric)
            return RecordedRun(run_id=run.info.run_id, experiment=name, decision=decision)

    def _experiment(self, name: str) -> str:
        found = self._client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if self.artifact_root is not None:
            location = (self.artifact_root / name).resolve().as_uri()
        return self._client.create_experiment(name, artifact_location=location)

    def _describe_version(
        self,
        name: str,
        version: int,
        trained: TrainedTask,
        uris: dict[str, str],
        evaluated: dict[str, str],
        as_of: str,
    ) -> None:
        tags = {
            "task": trained.task,
            "feature_hash": trained.feature_hash,
            "features": json.dumps(list(trained.feature_names)),
            "feature_list_hash": feature_list_hash(trained.feature_names),
            "canary": json.dumps(_known_row(trained)),
            "primary_metric": trained.primary_metric,
            "as_of": as_of,
            "heads": json.dumps(uris),
            "evaluated_heads": json.dumps(evaluated),
            "horizon_days": repr(float(trained.horizon_days)),
            **trained.tags,
        }
        for head, fitted in trained.calibrations.items():
            tags[f"calibration.{head}"] = fitted.to_json()
        for head, values in trained.percentiles.items():
            tags[f"percentiles.{head}"] = json.dumps([round(v, 6) for v in values])
        for metric, value in trained.comparison["lightgbm"].items():
            tags[f"metric.{metric}"] = repr(float(value))
        for key, value in tags.items():
            self._client.set_model_version_tag(name, str(version), key, value)

    def _gate(self, name: str, version: int, trained: TrainedTask) -> GateDecision:
        self._client.set_registered_model_alias(name, CHALLENGER, str(version))
        mine = trained.metric
        baseline, baseline_value = trained.best_baseline()
        metric = trained.primary_metric
        champion = self._alias_version(name, CHAMPION)
        champion_metric = None
        if champion is not None and _same_inputs(champion.tags, trained):
            booster = self._judged_booster(champion.tags, trained.primary_head)
            if tuple(booster.feature_name()) == tuple(trained.feature_names):
                champion_metric = trained.score(booster)

        if not trained.better(mine, baseline_value):
            promoted = False
            reason = (
                f"{metric} {mine:.4f} does not beat the {baseline} baseline ({baseline_value:.4f})"
            )
        elif champion is None:
            promoted, reason = True, f"first version to beat the baselines ({metric} {mine:.4f})"
        elif champion_metric is None:
            promoted = True
            reason = (
                f"champion v{champion.version} was built on another feature definition or "
                "method and cannot be compared on this evaluation; the new version replaces it"
            )
        elif trained.better(mine, champion_metric):
            promoted = True
            reason = (
                f"{metric} {mine:.4f} beats champion v{champion.version} ({champion_metric:.4f}) "
                "on the same evaluation"
            )
        else:
            promoted = False
            reason = (
                f"{metric} {mine:.4f} does not beat champion v{champion.version} "
                f"({champion_metric:.4f}) on the same evaluation"
            )
        if promoted:
            self._client.set_registered_model_alias(name, CHAMPION, str(version))
            self._client.delete_registered_model_alias(name, CHALLENGER)
        self._client.set_model_version_tag(name, str(version), "gate", reason)
        return GateDecision(
            version=version,
            promoted=promoted,
            reason=reason,
            champion_version=int(champion.version) if champion is not None else None,
            champion_metric=champion_metric,
        )

    # -- reading -----------------------------------------------------------------------

    def versions(self, task: str) -> list[VersionSummary]:
        """Every registered version of ``task``'s model, newest first."""
        name = registered_name(task)
        found = self._client.search_model_versions(f"name = '{name}'")
        # Searches do not return aliases on every store: ask for each alias instead.
        aliases: dict[int, list[str]] = {}
        for alias in (CHAMPION, CHALLENGER):
            holder = self._alias_version(name, alias)
            if holder is not None:
                aliases.setdefault(int(holder.version), []).append(alias)
        return sorted(
            (
                VersionSummary(
                    task=task,
                    version=int(v.version),
                    aliases=tuple(aliases.get(int(v.version), ())),
                    created=datetime.fromtimestamp(v.creation_timestamp / 1000, UTC),
                    run_id=v.run_id or "",
                    tags=dict(v.tags or {}),
                )
                for v in found
            ),
            key=lambda v: v.version,
            reverse=True,
        )

    def promote(self, task: str, version: int) -> None:
        """Make ``version`` the champion of ``task`` by hand (the gate is skipped)."""
        name = registered_name(task)
        if version not in {v.version for v in self.versions(task)}:
            raise RegistryError(f"{task} has no version {version}; see `cdm models list`")
        self._client.set_registered_model_alias(name, CHAMPION, str(version))
        self._client.set_model_version_tag(name, str(version), "gate", "promoted by hand")
        challenger = self._alias_version(name, CHALLENGER)
        if challenger is not None and int(challenger.version) == version:
            self._client.delete_registered_model_alias(name, CHALLENGER)

    def load(self, task: str, alias: str = CHAMPION) -> LoadedModel:
        """The boosters of ``task``'s version holding ``alias``."""
        name = registered_name(task)
        found = self._alias_version(name, alias)
        if found is None:
            raise RegistryError(f"{task} has no {alias} model yet; run `cdm train {task}`")
        tags = dict(found.tags or {})
        heads = {head: self._load_booster(uri) for head, uri in json.loads(tags["heads"]).items()}
        return LoadedModel(
            task=task,
            name=name,
            version=int(found.version),
            run_id=found.run_id or "",
            heads=heads,
            feature_hash=tags.get("feature_hash", ""),
            tags=tags,
        )

    def alias_version(self, task: str, alias: str = CHAMPION) -> int | None:
        """The version holding ``alias`` (None when there is none): a cheap check for changes."""
        found = self._alias_version(registered_name(task), alias)
        return int(found.version) if found is not None else None

    def download(self, task: str, version: int, destination: Path) -> dict[str, object]:
        """Fetch a version's head files into ``destination`` without loading them.

        Returns its description (name, version, run id, tags) and writes each head's booster
        to ``destination/<head>.txt``. Loading is left to the caller, who can check the files
        in another process first: a corrupt LightGBM file can abort the process loading it.
        """
        import mlflow.artifacts

        name = registered_name(task)
        with _quiet():
            found = self._client.get_model_version(name, str(version))
            tags = dict(found.tags or {})
            destination.mkdir(parents=True, exist_ok=True)
            for head, uri in json.loads(tags["heads"]).items():
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=uri, dst_path=str(destination / f".{head}")
                    )
                )
                model_file = next(local.rglob("*.lgb"), None) or next(local.rglob("*.txt"))
                model_file.replace(destination / f"{head}.txt")
                shutil.rmtree(destination / f".{head}", ignore_errors=True)
        return {
            "task": task,
            "name": name,
            "version": int(found.version),
            "run_id": found.run_id or "",
            "tags": tags,
        }

    def _alias_version(self, name: str, alias: str):  # noqa: ANN202 (an MLflow ModelVersion)
        """The version holding ``alias``; None when the model or the alias does not exist.
        Any other failure (the registry unreachable) propagates: it is not "no model"."""
        from mlflow.exceptions import MlflowException

        try:
            return self._client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
                return None
            raise

    def _judged_booster(self, tags: dict[str, str], head: str) -> lgb.Booster:
        """A version's ``head`` as judged on its held-out cutoff (the served one for versions
        recorded before models were refitted): the served booster has learnt from labels up
        to its as-of, which may be the very window a challenger is evaluated on."""
        import lightgbm as lgb
        import mlflow.artifacts

        uri = json.loads(tags.get("evaluated_heads", "{}")).get(head)
        if uri is None:
            return self._load_booster(json.loads(tags["heads"])[head])
        with _quiet():
            text = mlflow.artifacts.load_text(uri)
        return lgb.Booster(model_str=text)

    @staticmethod
    def _load_booster(uri: str) -> lgb.Booster:
        import mlflow.lightgbm

        with _quiet():
            return mlflow.lightgbm.load_model(uri)


def _same_inputs(tags: dict[str, str], trained: TrainedTask) -> bool:
    """Whether a version (by its tags) reads the inputs ``trained`` does, so the two can be
    scored on the same evaluation rows."""
    if tags.get("feature_hash") != trained.feature_hash:
        return False
    recorded = tags.get("feature_list_hash")  # absent on versions recorded before it was
    return recorded is None or recorded == feature_list_hash(trained.feature_names)


def _known_row(trained: TrainedTask) -> dict[str, object]:
    """One input row and what every head predicts for it: serving checks a downloaded version
    scores it the same before it serves (:mod:`ml.serving.canary`)."""
    import numpy as np  # here: training has it loaded; a server asking the registry needs none

    row = np.asarray(trained.input_example[:1], dtype=np.float64)
    return {
        "row": [None if math.isnan(v) else v for v in row[0].tolist()],
        "predictions": {
            head: float(booster.predict(row)[0]) for head, booster in trained.heads.items()
        },
    }


class RemoteRegistryError(RegistryError):
    """A call that failed in the registry process; ``kind`` names the exception it raised
    there (``MlflowException``, ``ConnectionError``, ...), or what became of the process."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# The calls a RegistryProcess forwards: what a server asks of its registry.
_REMOTE_CALLS = ("alias_version", "download")
# Generous: the first answer includes importing MLflow (and creating an empty local store),
# which takes tens of seconds on a busy machine. A hung registry is bounded by MLflow's own
# HTTP timeout, and a caller with a budget stops waiting long before (and closes the process).
_REMOTE_TIMEOUT = 600.0
# Below the server's requests: loading models is background work.
_REMOTE_NICENESS = 5


class RegistryProcess:
    """What a server asks of :class:`ModelRegistry` (:meth:`alias_version`, :meth:`download`),
    asked from a child process that imports MLflow in its place.

    The child starts at the first call and serves calls one at a time (JSON lines on its stdin
    and stdout) until :meth:`close`: one MLflow import per refresh of the served models, none
    in the server. A call the registry fails raises :class:`RemoteRegistryError`.
    """

    def __init__(
        self,
        tracking_uri: str,
        artifact_root: Path | None = None,
        *,
        fail_fast: bool = False,
        timeout: float = _REMOTE_TIMEOUT,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.fail_fast = fail_fast
        self.timeout = timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._buffer = b""
        self._closed = False
        self._calling = threading.Lock()  # one call at a time; close() waits for none

    def alias_version(self, task: str, alias: str = CHAMPION) -> int | None:
        """See :meth:`ModelRegistry.alias_version`."""
        answer = self._call("alias_version", task, alias)
        return None if answer is None else int(answer)

    def download(self, task: str, version: int, destination: Path) -> dict[str, object]:
        """See :meth:`ModelRegistry.download` (the child writes the files)."""
        return self._call("download", task, version, str(destination))

    def close(self) -> None:
        """End the child process, at once (from any thread: a call waiting for it fails)."""
        self._closed = True
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
        if self._calling.acquire(blocking=False):  # else the call in progress releases
            try:
                self._release()
            finally:
                self._calling.release()

    def _release(self) -> None:
        """Reap the child and close its pipes (by the thread that may read them)."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _call(self, name: str, *args: object) -> Any:
        with self._calling:
            try:
                process = self._started()
                assert process.stdin is not None
                try:
                    process.stdin.write(json.dumps({"call": name, "args": args}).encode() + b"\n")
                    process.stdin.flush()
                    line = self._read_line(process)
                except OSError as exc:  # the child died (or was closed) before it took the call
                    raise self._ended(process, f"{exc.__class__.__name__}: {exc}") from None
            finally:
                if self._closed:
                    self._release()
        answer = json.loads(line)
        if "error" in answer:
            raise RemoteRegistryError(answer["error"], answer["message"])
        return answer["result"]

    def _started(self) -> subprocess.Popen[bytes]:
        if self._closed:
            raise RemoteRegistryError("Closed", "the registry process was closed")
        if self._process is None:
            command = [sys.executable, "-m", "ml.registry", "--serve", self.tracking_uri]
            if self.artifact_root is not None:
                command += ["--artifact-root", str(self.artifact_root)]
            if self.fail_fast:
                command.append("--fail-fast")
            # A file, not a pipe: nobody reads it unless the child fails, and a full pipe
            # would stall a child that narrates.
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            self._process = subprocess.Popen(  # noqa: S603 (our own module, our own interpreter)
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
            )
        return self._process

    def _read_line(self, process: subprocess.Popen[bytes]) -> bytes:
        """The child's next line on stdout, within the timeout."""
        assert process.stdout is not None
        fd = process.stdout.fileno()
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self._closed = True  # released on the way out of the call
                raise RemoteRegistryError(
                    "TimeoutError", f"the registry did not answer within {self.timeout:g} s"
                )
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise self._ended(process, "it exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _ended(self, process: subprocess.Popen[bytes], what: str) -> RemoteRegistryError:
        """The error for a child that stopped answering: closed by us, or its last words."""
        if self._closed:
            return RemoteRegistryError("Closed", "the registry process was closed")
        code = process.wait()
        last = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            lines = self._stderr.read().decode(errors="replace").strip().splitlines()
            last = f": {lines[-1]}" if lines else ""
        return RemoteRegistryError("RegistryProcessFailed", f"{what} (exit {code}){last}")


def _serve_calls(tracking_uri: str, artifact_root: Path | None, *, fail_fast: bool) -> None:
    """The child's side of :class:`RegistryProcess`: answer calls until stdin ends."""
    # Anything printed (by MLflow, its plugins) goes to stderr: stdout carries the answers.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    registry: ModelRegistry | None = None
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["call"] not in _REMOTE_CALLS:
                raise RegistryError(f"no such call: {request['call']!r}")
            if registry is None:  # in the try: a registry that cannot open fails each call
                registry = ModelRegistry(tracking_uri, artifact_root, fail_fast=fail_fast)
            args = list(request["args"])
            if request["call"] == "download":
                args[2] = Path(args[2])
            answer: dict[str, object] = {"result": getattr(registry, request["call"])(*args)}
        except Exception as exc:  # handed to the caller, who decides what it means
            answer = {"error": exc.__class__.__name__, "message": str(exc)}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def _flat_params(plan: dict[str, object], params: dict[str, object]) -> dict[str, str]:
    flat = {f"plan.{k}": _text(v) for k, v in plan.items()}
    for key, value in params.items():
        flat[f"lgbm.{key}"] = _text(value)
    return flat


def _text(value: object) -> str:
    import numpy as np

    if isinstance(value, str):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    return json.dumps(value, default=str)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Answer RegistryProcess calls on stdin.")
    parser.add_argument("--serve", metavar="TRACKING_URI", required=True)
    parser.add_argument("--artifact-root", type=Path)
    parser.add_argument("--fail-fast", action="store_true")
    options = parser.parse_args()
    os.nice(_REMOTE_NICENESS)
    _serve_calls(options.serve, options.artifact_root, fail_fast=options.fail_fast)
