"""Check a downloaded model in a throwaway process: ``python -m ml.serving.canary DIR``.

Loads every ``<head>.txt`` booster of DIR (a model version as downloaded, with its
``manifest.json``) and checks it can serve what this service computes (:func:`verify`): the
heads the scorer calls are there, each reads exactly the service's inputs, by name, in order,
and it scores its known row (recorded at training) as it did then, or, for versions recorded
without one, scores rows of the service's width with finite numbers. Exit status 0 means it
may serve; otherwise the reason is the last line on stderr. Run apart from the server because
some corrupt LightGBM files abort the process that loads them.

``python -m ml.serving.canary --compile DIR`` then compiles each head to native code
(:mod:`ml.serving.heads`), kept only where it agrees with LightGBM; a head that cannot be
compiled stays served by LightGBM, which is said on stdout, not a failure. It runs apart from
the server too: a compiler can crash on a bad file just as a loader can.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ml.survival import HAZARD, STEP_FEATURE

if TYPE_CHECKING:
    import lightgbm as lgb

# The heads the scorer calls, per task (ml/serving/scoring.py); versions trained in the
# hazard form (ml/survival.py, tag ``method``) answer churn and next purchase with others.
HEADS: dict[str, tuple[str, ...]] = {
    "churn": ("churn",),
    "next_purchase": ("p30", "count", "days"),
    "upsell": ("ranker",),
}
HAZARD_HEADS: dict[str, tuple[str, ...]] = {
    "churn": ("hazard",),
    "next_purchase": ("hazard", "rate"),
}
# Bump when :func:`verify` checks something new: versions that passed before are checked again.
_CHECKS = 2
# A model file predicts its known row exactly as the booster it was saved from did; this only
# absorbs text round-trips of the recorded numbers.
_TOLERANCE = 1e-9


def expected_inputs(task: str, method: str = "direct") -> tuple[str, ...]:
    """The input columns this service computes for ``task``'s model, in order."""
    if task == "upsell":
        from ml.recommendations import CANDIDATE_FEATURES

        return CANDIDATE_FEATURES
    from ml.features import FEATURES

    if method == HAZARD:
        return (*FEATURES, STEP_FEATURE)
    return FEATURES


def expected_heads(task: str, method: str = "direct") -> tuple[str, ...]:
    """The heads scoring calls on a version of ``task`` trained by ``method``."""
    return HAZARD_HEADS[task] if method == HAZARD and task in HAZARD_HEADS else HEADS[task]


def expectation_key(task: str, method: str = "direct") -> str:
    """What a version was checked against: a passed check counts only while this is unchanged."""
    described = {
        "task": task,
        "inputs": expected_inputs(task, method),
        "heads": expected_heads(task, method),
        "v": _CHECKS,
    }
    if method != "direct":  # keeps the keys of direct versions that passed before
        described["method"] = method
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()


def verify(task: str, boosters: Mapping[str, lgb.Booster], tags: Mapping[str, str]) -> str | None:
    """None if ``boosters`` (a version's heads, with its registry ``tags``) can serve ``task``
    with the inputs this service computes; otherwise why not, in a sentence."""
    import numpy as np

    from ml.features import feature_list_hash

    method = tags.get("method", "direct")
    if method not in ("direct", HAZARD) or (method == HAZARD and task not in HAZARD_HEADS):
        return f"it was trained by the method {method!r}, which this service cannot serve"
    inputs = expected_inputs(task, method)
    retrain = f"retrain it with `cdm train {task.replace('_', '-')}`"
    missing = [head for head in expected_heads(task, method) if head not in boosters]
    if missing:
        return f"it has no {', '.join(missing)} head, which scoring needs"
    recorded = tags.get("feature_list_hash")
    if recorded is not None and recorded != feature_list_hash(inputs):
        count = len(json.loads(tags["features"])) if "features" in tags else "other"
        return f"it was trained on {count} features, this service computes {len(inputs)}; {retrain}"
    for head, booster in sorted(boosters.items()):
        names = tuple(booster.feature_name())
        if len(names) != len(inputs):
            return (
                f"its {head} head reads {len(names)} features, this service computes "
                f"{len(inputs)}; {retrain}"
            )
        for i, (theirs, ours) in enumerate(zip(names, inputs, strict=True)):
            if theirs != ours:
                return (
                    f"its {head} head reads {theirs!r} as feature {i + 1}, where this service "
                    f"computes {ours!r}; {retrain}"
                )

    known = json.loads(tags["canary"]) if "canary" in tags else None
    if known is not None:
        row = np.array([[math.nan if v is None else v for v in known["row"]]], dtype=np.float64)
        if row.shape[1] != len(inputs):
            return f"its known row has {row.shape[1]} values, this service computes {len(inputs)}"
        rows = row
    else:  # recorded before known rows were: at least rows of our width must score
        rows = np.vstack([np.full(len(inputs), np.nan), np.zeros(len(inputs))])
    for head, booster in sorted(boosters.items()):
        try:
            values = np.asarray(booster.predict(rows), dtype=np.float64)
        except Exception as exc:  # LightGBM refuses the shape, or the file is broken
            return f"its {head} head cannot score a row of this service's features: {exc}"
        if values.shape != (len(rows),) or not np.isfinite(values).all():
            return f"its {head} head does not score a row of this service's features with a number"
        expected = known["predictions"].get(head) if known is not None else None
        if expected is not None and not math.isclose(
            float(values[0]), float(expected), rel_tol=_TOLERANCE, abs_tol=_TOLERANCE
        ):
            return (
                f"its {head} head scores its known row {float(values[0]):.9g}, where it scored "
                f"{float(expected):.9g} when it was trained (not the file that was trained)"
            )
    return None


def check(directory: Path) -> str | None:
    """None if every head in ``directory`` loads and may serve; otherwise what went wrong."""
    from ml.serving.heads import serving_lightgbm

    lgb = serving_lightgbm()  # this process starts and ends with each check: the light way

    heads = sorted(directory.glob("*.txt"))
    if not heads:
        return f"no model files in {directory}"
    boosters = {}
    for path in heads:
        try:
            boosters[path.stem] = lgb.Booster(model_file=str(path))
        except Exception as exc:  # a broken file: say which, and why
            return f"{path.name}: {exc}"
    manifest = json.loads((directory / "manifest.json").read_text())
    return verify(manifest["task"], boosters, manifest["tags"])


def compile_all(directory: Path) -> list[str]:
    """Compile every head of ``directory``; why each one that was not compiled is not."""
    import lightgbm as lgb

    from ml.serving.heads import compile_head

    notes = []
    for path in sorted(directory.glob("*.txt")):
        unavailable = compile_head(path, lgb.Booster(model_file=str(path)))
        if unavailable:
            notes.append(f"{path.name}: served by LightGBM, {unavailable}")
    return notes


if __name__ == "__main__":
    if sys.argv[1] == "--compile":
        print("\n".join(compile_all(Path(sys.argv[2]))))
        sys.exit(0)
    problem = check(Path(sys.argv[1]))
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(1)
