"""Check a downloaded model in a throwaway process: ``python -m ml.serving.canary DIR``.

Loads every ``<head>.txt`` booster of DIR and predicts one row of NaNs of the width it
expects. Exit status 0 means every head loads and predicts finite numbers. Run apart from the
server because some corrupt LightGBM files abort the process that loads them.

``python -m ml.serving.canary --compile DIR`` then compiles each head to native code
(:mod:`ml.serving.heads`), kept only where it agrees with LightGBM; a head that cannot be
compiled stays served by LightGBM, which is said on stdout, not a failure. It runs apart from
the server too: a compiler can crash on a bad file just as a loader can.
"""

from __future__ import annotations

import sys
from pathlib import Path


def check(directory: Path) -> str | None:
    """None if every head in ``directory`` loads and predicts; otherwise what went wrong."""
    import lightgbm as lgb
    import numpy as np

    heads = sorted(directory.glob("*.txt"))
    if not heads:
        return f"no model files in {directory}"
    for path in heads:
        try:
            booster = lgb.Booster(model_file=str(path))
            value = booster.predict(np.full((1, booster.num_feature()), np.nan))
        except Exception as exc:  # a broken file: say which, and why
            return f"{path.name}: {exc}"
        if not np.isfinite(value).all():
            return f"{path.name}: the canary prediction is not a number"
    return None


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
