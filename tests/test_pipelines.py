"""The nightly pipelines the harness ships for its users (.github/workflows/nightly.yml,
.gitlab-ci.yml): valid by the platforms' own schemas (GitHub's workflow schema and GitLab's CI
schema, as check-jsonschema carries them), running the rigs that exist with the commands the
README gives, and keeping every report folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / ".github" / "workflows" / "nightly.yml"
GITLAB = ROOT / ".gitlab-ci.yml"
SCHEMAS = {GITHUB: "vendor.github-workflows", GITLAB: "vendor.gitlab-ci"}


def _check(path: Path, schema: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("pipeline", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_the_pipeline_is_valid_by_its_platforms_schema(pipeline, tmp_path):
    result = _check(pipeline, SCHEMAS[pipeline])
    assert result.returncode == 0, result.stdout + result.stderr
    # the check can fail: the same pipeline with a job that names no runner / a misspelt key
    broken = pipeline.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1) \
        if pipeline == GITHUB else pipeline.read_text().replace("  script:", "  scripts:", 1)
    (tmp_path / pipeline.name).write_text(broken)
    assert _check(tmp_path / pipeline.name, SCHEMAS[pipeline]).returncode != 0


@pytest.mark.parametrize("pipeline", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_the_pipeline_runs_the_emulated_rigs_and_keeps_every_report(pipeline):
    text = pipeline.read_text()
    data = yaml.safe_load(text)
    rigs = set(re.findall(r"\bemulated(?:-[a-z0-9]+)?\b", text))
    assert {"emulated", "emulated-ocpp16", "emulated-netns"} <= rigs
    assert all((ROOT / "rigs" / f"{rig}.yaml").exists() for rig in rigs), rigs
    assert "python3 -m venv .venv && .venv/bin/pip install -e ." in text  # the README's setup
    assert ".venv/bin/harness report interop" in text
    if pipeline == GITHUB:
        uploads = [step for job in data["jobs"].values() for step in job["steps"]
                   if str(step.get("uses", "")).startswith("actions/upload-artifact")]
        assert uploads and all(step.get("if") == "always()" for step in uploads if "report-" in step["with"]["name"])
        assert data["jobs"]["interop"]["if"] == "always()"
    else:
        runs = [job for name, job in data.items() if isinstance(job, dict) and name.startswith("nightly")]
        assert runs and all(job["artifacts"]["when"] == "always" for job in runs)


def test_the_readme_explains_the_nightly_pipelines():
    readme = (ROOT / "README.md").read_text()
    assert ".github/workflows/nightly.yml" in readme and ".gitlab-ci.yml" in readme
