"""The champion models the service scores with, loaded safely and swapped atomically.

:class:`ModelStore` asks the registry which version holds each task's ``champion`` alias.
When it moved, the new version's files are downloaded into the local cache
(``<data dir>/models/<task>/v<version>``), checked in a separate process (checksums, then a
load and a canary prediction: a corrupt LightGBM file can abort the process that loads it),
checked against the feature definition the service computes, and only then loaded and
swapped in: one assignment of a new mapping, so a request sees the old models or the new
ones, never a mix, and never waits.

Whatever fails (registry down or slow, corrupt files, a feature mismatch) leaves the last
good version serving; with no registry at all, the newest valid cached version is used. The
reason is kept in :attr:`ModelStore.status` for ``/readyz`` and logged.

A new version serves through LightGBM at once; meanwhile its heads are compiled to native
code in another process (:mod:`ml.serving.heads`, once per version) and the model is swapped
for its compiled self, which predicts the same numbers several times faster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ml.features import feature_definition_hash
from ml.recommendations import candidate_definition_hash
from ml.serving.heads import Head, file_digest, load_head

_log = logging.getLogger("cdm.models")

TASKS: tuple[str, ...] = ("churn", "next_purchase", "upsell")
_CANARY_TIMEOUT = 60.0
_COMPILE_TIMEOUT = 600.0  # a large forest on a busy machine takes a while


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


@dataclass(frozen=True)
class ModelStatus:
    """``ok``, ``missing`` (never trained) or ``degraded`` (serving an older or no version)."""

    state: str
    version: int | None
    reason: str = ""


class RegistryLike(Protocol):
    """What the store needs of :class:`ml.registry.ModelRegistry`."""

    def alias_version(self, task: str) -> int | None: ...

    def download(self, task: str, version: int, destination: Path) -> dict[str, object]: ...


def expected_hashes() -> dict[str, str]:
    """The definitions this service computes inputs with, per task."""
    features = feature_definition_hash()
    return {"churn": features, "next_purchase": features, "upsell": candidate_definition_hash()}


class ModelStore:
    """The models in use; :meth:`refresh` checks the registry and swaps in new champions."""

    def __init__(self, registry: Callable[[], RegistryLike], cache_dir: Path) -> None:
        self._registry = registry  # built lazily: opening MLflow is slow and may fail
        self.cache_dir = cache_dir
        self.models: Mapping[str, ServedModel] = {}
        self.status: Mapping[str, ModelStatus] = {
            t: ModelStatus("missing", None, f"not loaded yet; run `cdm train {_cli(t)}`")
            for t in TASKS
        }
        self._lock = asyncio.Lock()
        self._expected = expected_hashes()
        self._compiling: asyncio.Task[None] | None = None
        self._compiler: subprocess.Popen[str] | None = None
        self._closed = False

    async def refresh(self, budget_seconds: float = 30.0) -> Mapping[str, ModelStatus]:
        """Check the registry and load what changed, off the event loop.

        Waits at most ``budget_seconds`` (the worker thread cannot be cancelled; a late
        answer still installs its models when it comes), so start-up is never held up long.
        """
        async with self._lock:
            try:
                await asyncio.wait_for(asyncio.to_thread(self.refresh_now), budget_seconds)
            except TimeoutError:
                self._degrade_all(f"the model registry did not answer within {budget_seconds:g} s")
                if not self.models:
                    await asyncio.to_thread(self.load_cached)
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
        compiler = self._compiler
        if compiler is not None and compiler.poll() is None:
            compiler.kill()

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
            if any(head.compiled for head in heads.values()) and self.models.get(task) is served:
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

    def refresh_now(self) -> None:
        """Blocking refresh (runs in a worker thread)."""
        try:
            registry = self._registry()
        except Exception as exc:
            self._degrade_all(f"the model registry is unavailable ({exc.__class__.__name__})")
            self.load_cached()
            return
        for task in TASKS:
            self._refresh_task(registry, task)

    def _refresh_task(self, registry: RegistryLike, task: str) -> None:
        current = self.models.get(task)
        try:
            version = registry.alias_version(task)
        except Exception as exc:
            self._set(task, "degraded", current, f"registry unavailable ({exc.__class__.__name__})")
            if current is None:
                self._load_cached_task(task)
            return
        if version is None:
            if current is None:
                self._set_status(
                    task,
                    ModelStatus(
                        "missing", None, f"model not trained: run `cdm train {_cli(task)}`"
                    ),
                )
            return
        if current is not None and current.version == version:
            self._set_status(task, ModelStatus("ok", version))
            return
        try:
            served = self._fetch(registry, task, version)
        except Exception as exc:
            _log.warning("cannot load %s v%s: %s", task, version, exc)
            self._set(task, "degraded", current, f"version {version} not loaded: {exc}")
            return
        self._install(served)

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
        if not _checksums_match(directory):
            raise ValueError("files do not match their checksums (truncated or altered)")
        manifest = json.loads((directory / "manifest.json").read_text())
        task = manifest["task"]
        tags = manifest["tags"]
        if tags.get("feature_hash") != self._expected[task]:
            raise ValueError(
                "it was trained on another feature definition than this service computes; "
                f"retrain it with `cdm train {_cli(task)}`"
            )
        passed = directory / ".canary-passed"  # these very files passed before (same checksums)
        if not passed.is_file():
            probe = subprocess.run(  # noqa: S603 (our own module, our own interpreter)
                [sys.executable, "-m", "ml.serving.canary", str(directory)],
                capture_output=True, text=True, timeout=_CANARY_TIMEOUT, check=False,
            )  # fmt: skip
            if probe.returncode != 0:
                reason = probe.stderr.strip().splitlines()[-1:] or [f"exit {probe.returncode}"]
                raise ValueError(f"failed its canary check: {reason[0]}")
            passed.touch()
        heads = {path.stem: load_head(path) for path in directory.glob("*.txt")}
        return ServedModel(
            task=task,
            name=manifest["name"],
            version=int(manifest["version"]),
            run_id=manifest["run_id"],
            heads=heads,
            tags=tags,
        )

    def _install(self, served: ServedModel) -> None:
        # One assignment: readers see the old mapping or the new one.
        self.models = {**self.models, served.task: served}
        self._set_status(served.task, ModelStatus("ok", served.version))
        _log.info("serving %s version %s", served.task, served.version)

    def load_cached(self) -> None:
        """Serve the newest valid cached version of every task that has none loaded."""
        for task in TASKS:
            if task not in self.models:
                self._load_cached_task(task)

    def _load_cached_task(self, task: str) -> None:
        folder = self.cache_dir / task
        candidates = sorted(
            (p for p in folder.glob("v*") if p.name[1:].isdigit()),
            key=lambda p: int(p.name[1:]),
            reverse=True,
        ) if folder.is_dir() else []  # fmt: skip
        for directory in candidates:
            try:
                served = self._verified(directory)
            except Exception as exc:
                _log.warning("cached %s %s unusable: %s", task, directory.name, exc)
                continue
            self.models = {**self.models, task: served}
            previous = self.status.get(task)
            reason = previous.reason if previous and previous.state == "degraded" else ""
            self._set_status(
                task,
                ModelStatus("degraded", served.version, f"serving the cached version; {reason}"),
            )
            return

    def _set(self, task: str, state: str, current: ServedModel | None, reason: str) -> None:
        _log.warning("%s model: %s", task, reason)
        self._set_status(task, ModelStatus(state, current.version if current else None, reason))

    def _set_status(self, task: str, status: ModelStatus) -> None:
        self.status = {**self.status, task: status}

    def _degrade_all(self, reason: str) -> None:
        for task in TASKS:
            current = self.models.get(task)
            self._set(task, "degraded", current, reason)


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
