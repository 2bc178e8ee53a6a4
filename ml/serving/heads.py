"""One booster as served: native code for predictions, LightGBM for explanations.

LightGBM walks its trees through generic code; the same forest compiled to machine code by
LLVM (`lleaves`) predicts the same numbers 5-10 times faster, which is most of a batch score's
cost. Each head of a model version is compiled once, in the canary process (a broken file can
crash the compiler too), into ``<head>.<host>.so`` beside its ``<head>.txt``, and only kept if
it agrees with LightGBM on probe rows. ``<host>`` names the CPU the code was generated for,
so a data directory copied to another machine compiles afresh instead of running foreign
code, and its checksum is kept beside it: native code that changed on disk is never loaded.
Where there is no usable compiled file (compilation unavailable, refused or altered),
LightGBM predicts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Both imported where a model is loaded or run (NumPy comes with LightGBM then): a
    # server that has no model yet answers without them.
    import lightgbm as lgb
    import numpy as np

_log = logging.getLogger("cdm.models")

# Below this many rows one thread is faster than starting a pool.
_PARALLEL_ROWS = 5_000
# Compiled and LightGBM predictions agree to rounding; anything larger means a wrong compile.
_TOLERANCE = 1e-9


class Head:
    """A booster with its fastest available predictor."""

    def __init__(self, booster: lgb.Booster, compiled: object | None = None) -> None:
        self.booster = booster
        self._compiled = compiled

    @property
    def compiled(self) -> bool:
        """Whether predictions run as native code."""
        return self._compiled is not None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The model's output per row of ``x`` (probability, count or score, as trained)."""
        if self._compiled is None:
            return self.booster.predict(x)
        import numpy as np

        jobs = 1 if len(x) < _PARALLEL_ROWS else (os.cpu_count() or 1)
        data = np.ascontiguousarray(x, dtype=np.float64)
        return self._compiled.predict(data, n_jobs=jobs)  # type: ignore[attr-defined]

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-feature contributions (exact TreeSHAP) and the base value, last column."""
        return self.booster.predict(x, pred_contrib=True)


# What LightGBM imports when it can, for its scikit-learn estimators and DataFrame inputs:
# serving uses neither (Booster.predict on NumPy arrays).
_NOT_FOR_SERVING = ("pandas", "sklearn")


def serving_lightgbm() -> ModuleType:
    """LightGBM, imported without pandas and scikit-learn if it is not imported yet.

    Its module checks at import whether they are installed and imports them if so: ~140 MB
    and seconds of a server worker's memory and start, for nothing serving calls. Hidden
    only while LightGBM imports (they import normally afterwards); LightGBM then works on
    NumPy arrays, all serving gives it. A process that imported LightGBM before (training,
    tests) keeps the one it has.
    """
    if "lightgbm" in sys.modules:
        return sys.modules["lightgbm"]
    hidden = [name for name in _NOT_FOR_SERVING if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` fails: absent
    try:
        import lightgbm
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
    return lightgbm


def load_head(model_file: Path) -> Head:
    """The head in ``model_file``, with its compiled predictor when one was built here."""
    # Imported here: LightGBM (with the SciPy it pulls in) costs a second and tens of MB,
    # which a server that has no model to load never pays.
    lgb = serving_lightgbm()

    booster = lgb.Booster(model_file=str(model_file))
    native = compiled_file(model_file)
    if native is None or not native.is_file():
        return Head(booster)
    digest = native.with_name(native.name + ".sha256")
    if not digest.is_file() or digest.read_text().strip() != file_digest(native):
        _log.warning("%s does not match its checksum; using LightGBM", native.name)
        return Head(booster)
    try:
        return Head(booster, _load_compiled(model_file, native))
    except Exception as exc:  # an unreadable cache: LightGBM still answers correctly
        _log.warning("%s: compiled predictor unusable (%s); using LightGBM", native.name, exc)
        return Head(booster)


def compile_head(model_file: Path, booster: lgb.Booster) -> str | None:
    """Compile ``model_file`` beside itself and check it against ``booster``; None when the
    compiled file is ready, otherwise why there is none (predictions then use LightGBM)."""
    import numpy as np

    native = compiled_file(model_file)
    if native is None:
        return "compilation is not available here (lleaves is not installed)"
    digest = native.with_name(native.name + ".sha256")
    digest.unlink(missing_ok=True)
    native.unlink(missing_ok=True)
    partial = native.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    try:
        model = _load_compiled(model_file, partial)
        probe = _probe_rows(booster.num_feature())
        difference = np.abs(model.predict(probe, n_jobs=1) - booster.predict(probe)).max()
    except Exception as exc:
        partial.unlink(missing_ok=True)
        return f"compilation failed: {exc}"
    if not difference <= _TOLERANCE:
        partial.unlink(missing_ok=True)
        return f"the compiled predictor differs from LightGBM by {difference:.3g}"
    digest.write_text(file_digest(partial))
    partial.rename(native)
    return None


def compiled_file(model_file: Path) -> Path | None:
    """Where ``model_file``'s native code for this CPU lives (None without lleaves)."""
    host = _host()
    return model_file.with_name(f"{model_file.stem}.{host}.so") if host else None


@cache
def _host() -> str | None:
    """A short name for this CPU and its features (None without LLVM)."""
    try:
        import llvmlite.binding as llvm
    except ImportError:
        return None
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # LLVM cannot tell: compile for the CPU name alone
        features = ""
    return hashlib.sha256(f"{llvm.get_host_cpu_name()}|{features}".encode()).hexdigest()[:12]


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_compiled(model_file: Path, native: Path) -> object:
    import lleaves

    model = lleaves.Model(model_file=str(model_file))
    model.compile(cache=str(native))  # compiles and saves, or loads what was saved
    return model


def _probe_rows(width: int) -> np.ndarray:
    """Rows that reach many leaves: missing values, zeros, and seeded values of every scale."""
    import numpy as np

    rng = np.random.default_rng(0)
    spread = rng.standard_normal((256, width)) * rng.choice([1, 10, 100, 1000], (256, width))
    return np.vstack([np.full((1, width), np.nan), np.zeros((1, width)), spread])
