"""The chart rendered by Helm's own engine (helm-python-sdk), and the tools that check it."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import yaml

from tests.ci import unavailable

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "seenby"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
DOCKERFILE = ROOT / "Dockerfile"
RELEASE = "seenby"
NAMESPACE = "ledger"
# Where .ci/run installs tools whose dependencies would clash with the project's pins.
TOOLS_VENV = Path(os.environ.get("SEENBY_TOOLS_VENV", ROOT / "build" / "tools-venv"))
# Where .ci/run unpacks promtool from Debian's prometheus package (no server is installed).
PROMTOOL = Path(os.environ.get("SEENBY_PROMTOOL", ROOT / "build" / "prometheus" / "usr" / "bin" / "promtool"))


@dataclass(frozen=True)
class Rendered:
    """One `helm template`: every manifest by template path, and NOTES.txt."""

    files: dict[str, list[dict[str, Any]]]
    notes: str

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [doc for docs in self.files.values() for doc in docs]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.objects if doc["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [doc for doc in self.all(kind) if name is None or doc["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def has(self, kind: str) -> bool:
        return bool(self.all(kind))


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def render(values: dict[str, Any] | None = None) -> Rendered:
    with helm_python.Chart.load(CHART) as chart:
        out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    files: dict[str, list[dict[str, Any]]] = {}
    notes = ""
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            notes = text
        elif path.endswith((".yaml", ".yml")):
            docs = [doc for doc in yaml.safe_load_all(text) if doc]
            if docs:
                files[path] = docs
    return Rendered(files, notes)


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def require_tool(name: str, *places: Path, install_hint: str) -> str:
    """The tool's path; missing, it skips locally but fails CI, whose .ci/run must install it."""
    for place in places:
        if place.is_file() and os.access(place, os.X_OK):
            return str(place)
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    unavailable(f"{name} is not installed: {install_hint} (.ci/run installs it)")
