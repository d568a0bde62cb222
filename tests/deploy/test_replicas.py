"""The chart's migration Job and two Deployment pods, run as the chart runs them, on PostgreSQL.

Each process gets the command, arguments and environment of the rendered manifests: the
ConfigMap's settings as they are, secretKeyRef variables filled from a throwaway PostgreSQL and
fresh keys, and every volume "mounted" under a folder of its own pod. Only what cannot be the
same on one machine changes: the listening address and port, and absolute paths, which move
under the pod's folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import Settings
from tests.conftest import Tokens, _create_database
from tests.deploy.chart import RELEASE, Rendered, container
from tests.deploy.conftest import new_signing_key_pem
from tests.factories import access_event
from tests.pg import free_port
from tests.servers import serving

pytestmark = pytest.mark.postgres_only


class Pod:
    """One pod's filesystem (its volumes) and environment, from a rendered workload."""

    def __init__(self, rendered: Rendered, workload: dict[str, Any], secret_data: dict[str, str],
                 root: Path) -> None:
        self.root = root
        self.spec = workload["spec"]["template"]["spec"]
        self.container = container(workload)
        self.secret_data = secret_data
        self.secret_files: set[Path] = set()
        self.mounts = self._mount_volumes()
        self.env = self._environment(rendered)

    def _mount_volumes(self) -> dict[str, Path]:
        volumes = {volume["name"]: volume for volume in self.spec.get("volumes", [])}
        mounts = {}
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            where = self.root / mount["mountPath"].lstrip("/")
            where.mkdir(parents=True)
            if "secret" in volume:
                for item in volume["secret"]["items"]:
                    secret = self.secret_data[f"{volume['secret']['secretName']}/{item['key']}"]
                    (where / item["path"]).write_text(secret)
                    self.secret_files.add(where / item["path"])
            else:
                assert "emptyDir" in volume, f"unexpected volume {volume}"
            mounts[mount["mountPath"]] = where
        return mounts

    def _environment(self, rendered: Rendered) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in self.container.get("envFrom", []):
            env.update(rendered.one("ConfigMap", source["configMapRef"]["name"])["data"])
        for variable in self.container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = variable["value"]
            else:
                ref = variable["valueFrom"]["secretKeyRef"]
                env[variable["name"]] = self.secret_data[f"{ref['name']}/{ref['key']}"]
        return {name: self._in_pod(value) for name, value in env.items()}

    def _in_pod(self, value: str) -> str:
        for mount_path, where in self.mounts.items():
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(where) + value[len(mount_path):]
        return value

    def command(self, **overrides: str) -> list[str]:
        """The container's argv, `seenby` being this checkout's, with `--option value` overrides."""
        argv = [*self.container["command"], *self.container.get("args", [])]
        assert argv[0] == "seenby"
        argv[0] = str(Path(sys.executable).parent / "seenby")
        for option, value in overrides.items():
            flag = f"--{option}"
            assert flag in argv, f"the chart passes no {flag}"
            argv[argv.index(flag) + 1] = value
        return argv

    def process_env(self) -> dict[str, str]:
        outside = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
        return {**outside, **self.env}


@contextlib.contextmanager
def serving_pod(pod: Pod, *, timeout: float = 30.0) -> Iterator[str]:
    """The pod's container, listening on loopback; yields its URL once its readiness probe passes."""
    port = free_port()
    with serving(pod.command(host="127.0.0.1", port=str(port)), pod.process_env(), pod.root, port,
                 ready_path=pod.container["readinessProbe"]["httpGet"]["path"], timeout=timeout) as url:
        yield url


def wait_for(check, within: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_migration_job_and_two_pods_share_one_log(
    default_render: Rendered, postgres_admin_url: str, tmp_path: Path
) -> None:
    owner_url, app_url, _ = asyncio.run(_create_database(postgres_admin_url))
    secret_name = f"{RELEASE}-secrets"
    secret_data = {
        f"{secret_name}/database-url": app_url,
        f"{secret_name}/migration-database-url": owner_url,
        f"{secret_name}/jwt-secret": secrets.token_hex(32),
        f"{secret_name}/pseudonym-secret": secrets.token_hex(32),
        f"{secret_name}/signing-key.pem": new_signing_key_pem(),
        f"{secret_name}/ticket-key.pem": new_signing_key_pem(),
    }

    job = Pod(default_render, default_render.one("Job"), secret_data, tmp_path / "migrate")
    migration = subprocess.run(job.command(), env=job.process_env(), cwd=job.root,
                               capture_output=True, text=True, timeout=60, check=False)
    assert migration.returncode == 0, migration.stdout + migration.stderr

    deployment = default_render.one("Deployment")
    pods = [Pod(default_render, deployment, secret_data, tmp_path / name) for name in ("pod-a", "pod-b")]
    assert pods[0].env["SEENBY_ENV"] == "production"
    settings = Settings(**{k.removeprefix("SEENBY_").lower(): v for k, v in pods[0].env.items()})
    tokens = Tokens.for_settings(settings)
    customer = f"cust-{uuid.uuid4().hex[:12]}"

    with serving_pod(pods[0]) as first, serving_pod(pods[1]) as second:
        liveness = pods[0].container["livenessProbe"]["httpGet"]["path"]
        assert httpx.get(first + liveness).status_code == httpx.get(second + liveness).status_code == 200
        event = access_event(customer)
        receipt = httpx.post(f"{first}/v1/accesses", json=event, headers=tokens.service(), timeout=10)
        assert receipt.status_code == 201, receipt.text

        def seen_in_log_through_second() -> dict[str, Any] | None:
            items = httpx.get(f"{second}/v1/me/accesses", headers=tokens.customer(customer),
                              timeout=10).json()["items"]
            return items[0] if items and items[0]["log_index"] is not None else None

        entry = wait_for(seen_in_log_through_second)
        assert entry["event_id"] == event["event_id"]
        assert entry["entry_hash"] == receipt.json()["entry_hash"]

        def same_checkpoint() -> str | None:
            notes = {httpx.get(f"{url}/v1/log/checkpoint", timeout=10).text for url in (first, second)}
            (note,) = notes if len(notes) == 1 else (None,)
            return note if note and int(note.split("\n")[1]) > entry["log_index"] else None

        note = wait_for(same_checkpoint)
        assert note.startswith(settings.log_origin + "\n")
        keys = {httpx.get(f"{url}/v1/log/key", timeout=10).text for url in (first, second)}
        assert len(keys) == 1 and keys.pop().startswith(settings.log_origin + "+")

    # A read-only root filesystem is safe: production wrote nothing, not even to its emptyDirs.
    for pod in [job, *pods]:
        written = {p for p in pod.root.rglob("*") if p.is_file() and not p.name.startswith("serve-")}
        assert written == pod.secret_files, sorted(written - pod.secret_files)
