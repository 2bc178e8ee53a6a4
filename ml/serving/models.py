"""The champion models the service scores with, loaded safely and swapped atomically.

:class:`ModelStore` asks the registry which version holds each task's ``champion`` alias.
When it moved, the new version's files are downloaded into the local cache
(``<data dir>/models/<task>/v<version>``), checked in a separate process (checksums, then a
load and a canary prediction: a corrupt LightGBM file can abort the process that loads it),
checked against the feature definition the service computes, and only then loaded and
swapped in: one assignment of a new mapping, so a request sees the old models or the new
ones, never a mix, and never waits.

Whatever fails (registry down or slow, corrupt files, a model that does not read the features
this service computes) leaves the last good version serving, or none; a refused version is
remembered, with why, until the registry names another. The reason is kept in
:attr:`ModelStore.status` for ``/readyz`` and logged.

Every time the registry answers, the version its ``champion`` alias names is written to
``<task>/champion.json`` in the cache (atomically). That record is all the cache may serve
from: at start-up the remembered champion of every task is loaded before anything is served
(then the registry is asked, within the start-up budget), and without a registry the cache
serves that version or nothing, never merely the newest it holds (which may be one the
alias was rolled back from).

Asking the registry means a child process that imports MLflow (seconds of CPU), so a refresh
first reads the registry's *stamp* (:func:`sqlite_stamp`: the local SQLite store's size,
modification time and change counter): when it is the one a complete refresh confirmed
(kept in ``<cache>/registry-stamp``, so that a restart knows it too), nothing can have moved
and nobody is asked. ``refresh(force=True)`` (the ``reloadModels`` mutation) always asks.

A server starts that first load in the background (:meth:`ModelStore.load_in_background`)
and answers meanwhile: a task whose model is not loaded yet reports the state ``loading``,
and its scores answer a ``MODEL_UNAVAILABLE`` error that says so.

A new version serves through LightGBM at once; meanwhile its heads are compiled to native
code in another process (:mod:`ml.serving.heads`, once per version) and the model is swapped
for its compiled self, which predicts the same numbers several times faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ml.calibration import Calibration
from ml.features import feature_definition_hash
from ml.serving.canary import expectation_key, verify
from ml.serving.heads import Head, file_digest, load_head

if TYPE_CHECKING:
    import numpy as np

    from ml.survival import Outlook

_log = logging.getLogger("cdm.models")

TASKS: tuple[str, ...] = ("churn", "next_purchase", "upsell")
# What versions recorded before the horizon was tagged were all trained on.
DEFAULT_HORIZON_DAYS = 90.0
_CANARY_TIMEOUT = 60.0
_COMPILE_TIMEOUT = 600.0  # a large forest on a busy machine takes a while
_CHAMPION_RECORD = "champion.json"  # per task: the version the champion alias last named
_STAMP_RECORD = "registry-stamp"  # the registry's stamp when a refresh last confirmed every task
LOADING = "loading"
_LOADING_REASON = "the server started moments ago and is still loading its models; retry shortly"


@dataclass(frozen=True)
class ServedModel:
    """One task's model as served: its boosters and where they came from."""

    task: str
    name: str
    version: int
    run_id: str
    heads: Mapping[str, Head]
    tags: Mapping[str, str]

    def percentiles(self, head: str) -> list[float] | None:
        raw = self.tags.get(f"percentiles.{head}")
        return json.loads(raw) if raw else None

    @functools.cached_property
    def calibrations(self) -> dict[str, Calibration]:
        """How each head's raw output becomes the probability (or count) served (versions
        recorded before calibration existed serve their raw output)."""
        prefix = "calibration."
        return {
            key.removeprefix(prefix): Calibration.from_json(value)
            for key, value in self.tags.items()
            if key.startswith(prefix)
        }

    def calibrated(self, head: str, raw: np.ndarray) -> np.ndarray:
        """``head``'s raw output ``raw`` as the probability served."""
        found = self.calibrations.get(head)
        return raw if found is None else found.apply(raw)

    @property
    def horizon_days(self) -> float:
        """The label window the version was trained on (90 days before it was recorded)."""
        return float(self.tags.get("horizon_days", DEFAULT_HORIZON_DAYS))

    @property
    def method(self) -> str:
        """How the version learnt its horizon: ``direct`` or ``hazard`` (:mod:`ml.survival`)."""
        return self.tags.get("method", "direct")

    def outlook(self, x: np.ndarray) -> Outlook:
        """A hazard-form version's outlook over its horizon for rows of features ``x``."""
        from ml.survival import outlook

        hazard = self.heads["hazard"]
        rate = self.heads.get("rate")
        return outlook(
            lambda rows: self.calibrated("hazard", hazard.predict(rows)),
            x,
            self.horizon_days,
            steps_seen=int(self.tags["steps_seen"]),
            rate=None if rate is None else lambda rows: self.calibrated("rate", rate.predict(rows)),
        )


@dataclass(frozen=True)
class ModelStatus:
    """``ok``, ``missing`` (never trained), ``degraded`` (serving an older or no version) or
    ``loading`` (the first load, in the background, has not reached this task yet).

    ``version`` is the version serving (None: none); ``refused_version`` the champion this
    service will not serve (it cannot score the features computed here, or its files are
    broken), ``reason`` says why.
    """

    state: str
    version: int | None
    reason: str = ""
    refused_version: int | None = None


class Refused(ValueError):
    """A version that must not serve here (checksums, feature definition, canary check)."""


class RegistryLike(Protocol):
    """What the store needs of :class:`ml.registry.ModelRegistry` (or of
    :class:`ml.registry.RegistryProcess`, which asks it from a child process and has a
    ``close()``, called when a refresh is done with it)."""

    def alias_version(self, task: str) -> int | None: ...

    def download(self, task: str, version: int, destination: Path) -> dict[str, object]: ...


def expected_hashes() -> dict[str, str]:
    """The definitions this service computes inputs with, per task."""
    # Here: the candidate code brings NumPy, which a server needs once it loads a model.
    from ml.recommendations import candidate_definition_hash

    features = feature_definition_hash()
    return {"churn": features, "next_purchase": features, "upsell": candidate_definition_hash()}


class ModelStore:
    """The models in use; :meth:`refresh` checks the registry and swaps in new champions."""

    def __init__(
        self, registry: Callable[[], RegistryLike], cache_dir: Path,
        stamp: Callable[[], str | None] = lambda: None,
    ) -> None:  # fmt: skip
        self._registry = registry  # built per refresh: opening the registry is slow, may fail
        self._stamp = stamp  # None: the registry cannot tell cheaply whether it changed
        self._confirmed: str | None = None  # the stamp every task's answer was handled at
        self.cache_dir = cache_dir
        self.models: Mapping[str, ServedModel] = {}
        self.status: Mapping[str, ModelStatus] = {
            t: ModelStatus("missing", None, f"not loaded yet; run `cdm train {_cli(t)}`")
            for t in TASKS
        }
        self._lock = asyncio.Lock()
        # Refreshes run in worker threads that outlive a start-up budget; one at a time, and
        # every change of `models` (refresh, compiled swap) under one lock, so none is lost.
        self._refreshing = threading.Lock()
        self._swap = threading.Lock()
        self._preloaded = False
        self._from_cache: set[str] = set()  # served from the cache, not confirmed by the registry
        self._refused: dict[str, ModelStatus] = {}  # per task: the refused champion, until it moves
        self._compiling: asyncio.Task[None] | None = None
        self._compiler: subprocess.Popen[str] | None = None
        self._loading: asyncio.Task[None] | None = None
        self._asking: RegistryLike | None = None  # the registry a refresh is asking now
        self._closed = False

    def load_in_background(self, budget_seconds: float) -> asyncio.Task[None]:
        """Start the first :meth:`refresh` and return at once: a server answers while its
        models load (asking the registry from a child process, importing LightGBM: seconds).
        Until a task's model is settled its state is ``loading``; :meth:`loaded` waits for
        the end."""
        self.status = {t: ModelStatus(LOADING, None, _LOADING_REASON) for t in TASKS}

        async def first_load() -> None:
            try:
                await self.refresh(budget_seconds)
            except Exception as exc:  # never left "loading" for ever: say why it stopped
                _log.exception("loading the models failed")
                for task, status in self.status.items():
                    if status.state == LOADING:
                        reason = f"loading failed ({exc.__class__.__name__}); see the server log"
                        self._set_status(task, ModelStatus("degraded", None, reason))

        self._loading = asyncio.get_running_loop().create_task(first_load(), name="model-load")
        return self._loading

    async def loaded(self) -> None:
        """Wait until the load :meth:`load_in_background` started has ended (at once if none)."""
        if self._loading is not None:
            await asyncio.shield(self._loading)

    async def refresh(
        self, budget_seconds: float = 30.0, *, force: bool = False
    ) -> Mapping[str, ModelStatus]:
        """Check the registry and load what changed, off the event loop.

        Unless ``force``, the registry is not asked when its stamp shows that it has not
        changed since a refresh handled every task's answer.

        The first call serves every task's remembered champion from the cache before it asks
        the registry, so a slow or unreachable registry never leaves a task without its
        model. The registry is waited for at most ``budget_seconds`` (the worker thread
        cannot be cancelled; a late answer still installs its models when it comes).
        """
        async with self._lock:
            if not self._preloaded:
                self._preloaded = True
                await _in_daemon_thread(self.load_cached)
            checked: set[str] = set()
            try:
                await asyncio.wait_for(
                    _in_daemon_thread(lambda: self.refresh_now(checked, force=force)),
                    budget_seconds,
                )
            except TimeoutError:
                reason = f"the model registry did not answer within {budget_seconds:g} s"
                for task in TASKS:
                    if task not in checked:  # the others have their answer already
                        self._degrade(task, reason)
        self._compile_soon()
        return self.status

    async def compile(self) -> None:
        """Wait until every served model runs on compiled heads where it can (see the module
        docstring); :meth:`refresh` starts this in the background by itself."""
        self._compile_soon()
        if self._compiling is not None:
            await asyncio.shield(self._compiling)

    def compiled(self, task: str) -> bool:
        """Whether ``task``'s served model predicts through native code (every head)."""
        served = self.models.get(task)
        return served is not None and all(head.compiled for head in served.heads.values())

    def close(self) -> None:
        """Stop a compilation in progress (at shutdown): the next start compiles again."""
        self._closed = True
        if self._loading is not None:
            self._loading.cancel()  # a thread it waits for finishes by itself; nothing waits
        compiler = self._compiler
        if compiler is not None and compiler.poll() is None:
            compiler.kill()
        _close(self._asking)  # a registry process still asking (a hung registry): ended

    def _compile_soon(self) -> None:
        if self._closed or (self._compiling is not None and not self._compiling.done()):
            return
        self._compiling = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self._compile_served), name="model-compile"
        )

    def _compile_served(self) -> None:
        for task, served in list(self.models.items()):
            if self._closed:
                return
            if self.compiled(task):
                continue
            directory = self.cache_dir / task / f"v{served.version}"
            tried = directory / ".compile-tried"  # once per version: a refusal stays refused
            if not tried.is_file():
                try:
                    notes = self._run_compiler(directory)
                except Exception as exc:
                    if not self._closed:  # stopped at shutdown: compiled at the next start
                        _log.warning("%s v%s not compiled: %s", task, served.version, exc)
                    continue
                for note in notes:
                    _log.warning("%s v%s: %s", task, served.version, note)
                tried.touch()
            heads = {path.stem: load_head(path) for path in directory.glob("*.txt")}
            if not any(head.compiled for head in heads.values()):
                continue
            with self._swap:
                if self.models.get(task) is served:
                    # Same version, same numbers, same status: only faster.
                    self.models = {**self.models, task: dataclasses.replace(served, heads=heads)}
                    _log.info("%s version %s runs compiled", task, served.version)

    def _run_compiler(self, directory: Path) -> list[str]:
        self._compiler = subprocess.Popen(  # noqa: S603 (our own module, our own interpreter)
            [sys.executable, "-m", "ml.serving.canary", "--compile", str(directory)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            out, err = self._compiler.communicate(timeout=_COMPILE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._compiler.kill()
            self._compiler.communicate()
            raise RuntimeError(f"compilation took over {_COMPILE_TIMEOUT:g} s") from None
        finally:
            code = self._compiler.returncode
            self._compiler = None
        if code != 0:
            last = err.strip().splitlines()[-1:] or [f"exit {code}"]
            raise RuntimeError(f"the compiler process failed: {last[0]}")
        return [line for line in out.splitlines() if line.strip()]

    def refresh_now(self, checked: set[str] | None = None, *, force: bool = False) -> None:
        """Blocking refresh (runs in a worker thread); adds each task whose registry answer
        was handled to ``checked``. Returns at once while an earlier refresh still waits for
        the registry: that one installs what it finds."""
        if not self._refreshing.acquire(blocking=False):
            return
        try:
            # Read before asking: a change made while the registry is asked moves the stamp
            # again, so the next refresh asks too.
            stamp = self._stamp()
            if not force and stamp is not None and self._unchanged(stamp):
                if checked is not None:
                    checked.update(TASKS)
                return
            try:
                registry = self._registry()
            except Exception as exc:
                reason = f"the model registry is unavailable ({_kind(exc)})"
                for task in TASKS:
                    self._registry_failed(task, reason)
                return
            self._asking = registry
            try:
                settled = True
                for task in TASKS:
                    if self._closed:  # shutting down: what is left is not asked
                        return
                    settled = self._refresh_task(registry, task) and settled
                    if checked is not None:
                        checked.add(task)
                if settled and stamp is not None:
                    self._confirm(stamp)
            finally:
                self._asking = None
                _close(registry)  # a registry process ends here: nothing of it stays
        finally:
            self._refreshing.release()

    def _refresh_task(self, registry: RegistryLike, task: str) -> bool:
        """Handle the registry's answer for ``task``; False when it must be asked again (the
        registry or a download failed)."""
        current = self.models.get(task)
        try:
            version = registry.alias_version(task)
        except Exception as exc:
            if self._closed:  # the registry process was ended at shutdown: nothing failed
                return False
            self._registry_failed(task, f"registry unavailable ({_kind(exc)})")
            return False
        self._remember(task, version)
        if version is None:
            if current is not None:  # the alias was removed: no champion, nothing serves
                self._uninstall(task)
            self._serving_answer(task, None)
            return True
        if current is not None and current.version == version:
            self._serving_answer(task, version)
            return True
        refused = self._refused.get(task)
        if refused is not None and refused.refused_version == version:
            self._set_status(task, dataclasses.replace(refused, version=_version(current)))
            return True
        try:
            served = self._fetch(registry, task, version)
        except Refused as exc:
            self._refuse(task, version, current, str(exc))
            return True
        except Exception as exc:  # a download that failed: tried again at the next refresh
            if self._closed:
                return False
            _log.warning("cannot load %s v%s: %s", task, version, exc)
            self._degrade(task, f"version {version} not loaded: {exc}")
            return False
        self._install(served)
        return True

    def _unchanged(self, stamp: str) -> bool:
        """Whether the registry's answers are known for ``stamp``: this process handled them,
        or (at start-up) an earlier one did and the cache now serves what they named."""
        if self._confirmed is not None:
            return stamp == self._confirmed
        try:
            if (self.cache_dir / _STAMP_RECORD).read_text() != stamp:
                return False
        except OSError:
            return False
        records = {task: self._remembered(task) for task in TASKS}
        for task, record in records.items():
            if record is None:
                return False
            version = record["version"]
            if version is not None and _version(self.models.get(task)) != int(version):
                return False  # remembered but not served from the cache: ask the registry
        for task, record in records.items():  # as the registry's answer would have left them
            version = record["version"]
            self._serving_answer(task, None if version is None else int(version))
        self._confirmed = stamp
        return True

    def _serving_answer(self, task: str, version: int | None) -> None:
        """The status of ``task`` when what serves is what the registry names: ``version``
        (None: no champion, nothing serves)."""
        if version is None:
            reason = f"model not trained: run `cdm train {_cli(task)}`"
            self._set_status(task, ModelStatus("missing", None, reason))
        else:
            self._from_cache.discard(task)
            self._set_status(task, ModelStatus("ok", version))

    def _confirm(self, stamp: str) -> None:
        self._confirmed = stamp
        try:
            _write_atomically(self.cache_dir / _STAMP_RECORD, stamp)
        except OSError as exc:  # a read-only cache: a restart asks the registry once more
            _log.warning("cannot record the registry's stamp in the cache: %s", exc)

    def _registry_failed(self, task: str, reason: str) -> None:
        if task in self.models:
            self._degrade(task, reason)
        else:
            self._load_cached_task(task, reason)

    def _fetch(self, registry: RegistryLike, task: str, version: int) -> ServedModel:
        directory = self.cache_dir / task / f"v{version}"
        if not _checksums_match(directory):
            (directory / ".canary-passed").unlink(missing_ok=True)
            (directory / ".compile-tried").unlink(missing_ok=True)
            for stale in directory.glob("*.so*"):  # compiled from the files being replaced
                stale.unlink()
            description = registry.download(task, version, directory)
            _write_manifest(directory, description)
        return self._verified(directory)

    def _verified(self, directory: Path) -> ServedModel:
        """The version in ``directory``, loaded, or :class:`Refused` saying why it may not serve."""
        if not _checksums_match(directory):
            raise Refused("files do not match their checksums (truncated or altered)")
        manifest = json.loads((directory / "manifest.json").read_text())
        task = manifest["task"]
        tags = manifest["tags"]
        if tags.get("feature_hash") != expected_hashes()[task]:
            raise Refused(
                "it was trained on another feature definition than this service computes; "
                f"retrain it with `cdm train {_cli(task)}`"
            )
        # These very files passed the checks of this code before (same checksums, same key).
        passed = directory / ".canary-passed"
        key = expectation_key(task, tags.get("method", "direct"))
        if not (passed.is_file() and passed.read_text() == key):
            probe = subprocess.run(  # noqa: S603 (our own module, our own interpreter)
                [sys.executable, "-m", "ml.serving.canary", str(directory)],
                capture_output=True, text=True, timeout=_CANARY_TIMEOUT, check=False,
            )  # fmt: skip
            if probe.returncode != 0:
                reason = probe.stderr.strip().splitlines()[-1:] or [f"exit {probe.returncode}"]
                raise Refused(f"failed its canary check: {reason[0]}")
            passed.write_text(key)
        heads = {path.stem: load_head(path) for path in directory.glob("*.txt")}
        # Loading is safe now; checking here too covers a marker written by other code.
        problem = verify(task, {name: head.booster for name, head in heads.items()}, tags)
        if problem:
            raise Refused(f"failed its canary check: {problem}")
        return ServedModel(
            task=task,
            name=manifest["name"],
            version=int(manifest["version"]),
            run_id=manifest["run_id"],
            heads=heads,
            tags=tags,
        )

    def _install(self, served: ServedModel, status: ModelStatus | None = None) -> None:
        # One assignment: readers see the old mapping or the new one.
        with self._swap:
            self.models = {**self.models, served.task: served}
        if status is None:
            self._from_cache.discard(served.task)
        self._refused.pop(served.task, None)
        self._set_status(served.task, status or ModelStatus("ok", served.version))
        _log.info("serving %s version %s", served.task, served.version)

    def _uninstall(self, task: str) -> None:
        with self._swap:
            self.models = {t: m for t, m in self.models.items() if t != task}
        self._from_cache.discard(task)
        _log.warning("%s: the registry names no champion any more; none serves", task)

    def _refuse(self, task: str, version: int, current: ServedModel | None, why: str) -> None:
        status = ModelStatus(
            "degraded",
            _version(current),
            f"version {version} refused: {why}{self._serving_note(task)}",
            refused_version=version,
        )
        self._refused[task] = status
        _log.warning("%s model: %s", task, status.reason)
        self._set_status(task, status)

    def load_cached(self) -> None:
        """Serve the remembered champion (:meth:`_remember`) of every task that has none
        loaded, from the cache."""
        for task in TASKS:
            if task not in self.models:
                self._load_cached_task(task, None)

    def _load_cached_task(self, task: str, why: str | None) -> None:
        """Serve the cached version the registry's champion alias last named, if it passes
        the checks. ``why`` the registry was not asked (None: at start-up, before asking)."""
        record = self._remembered(task)
        if record is None or record.get("version") is None:
            if why is not None:
                known = "named no champion" if record else "has not been read"
                self._set_status(
                    task,
                    ModelStatus(
                        "degraded" if record is None else "missing",
                        None,
                        f"{why}; nothing cached to serve (the registry {known} before)",
                    ),
                )
            return
        version = int(record["version"])
        try:
            served = self._verified(self.cache_dir / task / f"v{version}")
        except Refused as exc:  # remembered, so the registry's answer need not check it again
            self._refuse(task, version, None, f"{exc} (the cached champion){_after(why)}")
            return
        except Exception as exc:
            _log.warning("%s model: cached champion v%s unusable: %s", task, version, exc)
            if why is not None:
                reason = f"{why}; the cached champion v{version} is unusable: {exc}"
                self._set_status(task, ModelStatus("degraded", None, reason))
            return
        self._from_cache.add(task)
        note = f"serving the cached champion v{version} (the registry's as of {record['read_at']})"
        self._install(
            served, ModelStatus("degraded", version, f"{why or 'registry not asked yet'}; {note}")
        )

    def _remember(self, task: str, version: int | None) -> None:
        """Record, beside the cached files, which version the champion alias names now."""
        folder = self.cache_dir / task
        record = {"alias": "champion", "version": version, "read_at": datetime.now(UTC).isoformat()}
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomically(folder / _CHAMPION_RECORD, json.dumps(record))
        except OSError as exc:  # a read-only cache: serving goes on, a restart knows less
            _log.warning("cannot record the %s champion in the cache: %s", task, exc)

    def _remembered(self, task: str) -> dict[str, object] | None:
        """The last champion record of ``task`` (None: the registry was never read here)."""
        try:
            record = json.loads((self.cache_dir / task / _CHAMPION_RECORD).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and "version" in record else None

    def _serving_note(self, task: str) -> str:
        current = self.models.get(task)
        if current is None:
            return ""
        if task in self._from_cache:
            return f"; serving the cached champion v{current.version}"
        return f"; still serving version {current.version}"

    def _degrade(self, task: str, reason: str) -> None:
        previous = self.status.get(task)
        refused = previous.refused_version if previous is not None else None
        current = self.models.get(task)
        status = ModelStatus(
            "degraded", _version(current), reason + self._serving_note(task), refused
        )
        _log.warning("%s model: %s", task, status.reason)
        self._set_status(task, status)

    def _set_status(self, task: str, status: ModelStatus) -> None:
        self.status = {**self.status, task: status}


async def _in_daemon_thread(work: Callable[[], None]) -> None:
    """Run ``work`` in a daemon thread and wait for it.

    Unlike :func:`asyncio.to_thread`, whose threads a process joins before it exits, nothing
    waits for this one at shutdown: a server stopped while its models load (importing
    LightGBM, waiting for the registry process), or while the registry hangs, exits within
    its grace period. What it writes is safe to cut short: records are replaced atomically,
    downloads are checked against their checksums before use.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():  # cancelled meanwhile
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            work()
        except BaseException as exc:  # handed to the waiting coroutine, which decides
            error = exc
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name="model-load", daemon=True).start()
    await done


def _kind(exc: Exception) -> str:
    """What failed, in a word: the exception's class, or the one a registry process names."""
    return getattr(exc, "kind", None) or exc.__class__.__name__


def _close(registry: RegistryLike | None) -> None:
    close = getattr(registry, "close", None)
    if close is not None:
        close()


def _after(why: str | None) -> str:
    return f"; {why}" if why else ""


def _version(served: ServedModel | None) -> int | None:
    return served.version if served is not None else None


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader (another worker, the next start) sees the old
    content or the new, never a part, even if this process dies while writing."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    with partial.open("w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def _cli(task: str) -> str:
    return task.replace("_", "-")


def _write_manifest(directory: Path, description: dict[str, object]) -> None:
    checksums = {p.name: file_digest(p) for p in sorted(directory.glob("*.txt"))}
    manifest = {**description, "checksums": checksums}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _checksums_match(directory: Path) -> bool:
    manifest_file = directory / "manifest.json"
    if not manifest_file.is_file():
        return False
    try:
        checksums = json.loads(manifest_file.read_text())["checksums"]
    except (ValueError, KeyError):
        return False
    return bool(checksums) and all(
        (directory / name).is_file() and file_digest(directory / name) == digest
        for name, digest in checksums.items()
    )


def sqlite_stamp(tracking_uri: str) -> str | None:
    """A value that changes whenever a local SQLite tracking store is written (its size,
    modification time and the change counter SQLite keeps in its header, and its write-ahead
    log's), read without opening it as a database; None for any other store (always asked)."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or "?" in tracking_uri:
        return None
    path = Path(tracking_uri.removeprefix(prefix))
    parts = []
    for file in (path, path.with_name(path.name + "-wal")):
        try:
            with file.open("rb") as f:
                info = os.fstat(f.fileno())
                header = f.read(28)[24:28] if file is path else b""
        except FileNotFoundError:
            parts.append("-")
            continue
        except OSError:
            return None
        parts.append(f"{info.st_size}:{info.st_mtime_ns}:{header.hex()}")
    return " ".join(parts)
