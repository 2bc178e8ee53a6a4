"""The README documents every setting, and .ci/run runs the README's test command."""

from __future__ import annotations

from pathlib import Path

from cdm.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"| `CDM_{name.upper()}` |" in readme, f"CDM_{name.upper()} is undocumented"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/test.sh" in readme
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
