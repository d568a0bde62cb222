"""The Helm chart, rendered and linted by Helm's engine: what it installs and what it refuses."""

from __future__ import annotations

import base64
import copy
import itertools
import re
import shlex
from typing import Any

import helm_python
import pytest

from service.settings import Settings
from tests.deploy.chart import (
    CHART,
    PRODUCTION_VALUES,
    RELEASE,
    ROOT,
    Rendered,
    container,
    load_values,
    render,
)
from tests.deploy.conftest import inline_secret_values, new_signing_key_pem

ERROR = 3


@pytest.mark.parametrize("which", ["default", "production", "witnessed"])
def test_helm_lint_reports_no_errors(which: str) -> None:
    values = {"default": None, "production": load_values(PRODUCTION_VALUES),
              "witnessed": {"witnesses": {"policy": WITNESS_POLICY}}}[which]
    report = helm_python.lint(CHART, values, strict=True, namespace="ledger")
    errors = [m for m in report["messages"] if m["severity"] >= ERROR] + report["errors"]
    assert report["total_charts_linted"] == 1
    assert not errors, errors


def test_default_install_is_two_hardened_replicas(default_render: Rendered) -> None:
    deployment = default_render.one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    api = container(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert not default_render.has("HorizontalPodAutoscaler")
    assert api["command"] == ["seenby"] and api["args"][0] == "serve"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(api["resources"]["requests"]) == set(api["resources"]["limits"]) == {"cpu", "memory"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    hardened = api["securityContext"]
    assert hardened["readOnlyRootFilesystem"] is True
    assert hardened["allowPrivilegeEscalation"] is False
    assert hardened["capabilities"] == {"drop": ["ALL"]}
    assert hardened["seccompProfile"] == {"type": "RuntimeDefault"}
    assert default_render.one("ServiceAccount", RELEASE)["automountServiceAccountToken"] is False


def test_service_points_at_the_api_port(default_render: Rendered) -> None:
    service = default_render.one("Service")
    port = container(default_render.one("Deployment"))["ports"][0]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"] == "http"
    assert service["spec"]["selector"] == default_render.one("Deployment")["spec"]["selector"]["matchLabels"]


def test_migrations_run_as_a_hook_before_pods_start(default_render: Rendered) -> None:
    job = default_render.one("Job")
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert sorted(hooks) == ["pre-install", "pre-upgrade"]
    migrate = container(job)
    assert [*migrate["command"], *migrate["args"]] == ["seenby", "migrate"]
    names = {env["name"] for env in migrate["env"]}
    assert {"SEENBY_MIGRATION_DATABASE_URL", "SEENBY_DATABASE_URL"} <= names
    # Only what a migration needs: never the signing or ticket key, the token and pseudonym secrets.
    assert not names & {"SEENBY_JWT_SECRET", "SEENBY_PSEUDONYM_SECRET", "SEENBY_SIGNING_KEY_FILE",
                        "SEENBY_TICKET_KEY_FILE"}
    assert not [v for v in job["spec"]["template"]["spec"].get("volumes", []) if "secret" in v]
    assert migrate["securityContext"]["readOnlyRootFilesystem"] is True
    # What the Job uses must exist before it runs: a hook itself, created first (lower weight).
    account = default_render.one("ServiceAccount", job["spec"]["template"]["spec"]["serviceAccountName"])
    assert int(account["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"])


def test_secrets_from_existing_secrets_by_default(default_render: Rendered) -> None:
    assert not default_render.has("Secret"), "no secret value lives in the default values"
    api = container(default_render.one("Deployment"))
    refs = {env["name"]: env["valueFrom"]["secretKeyRef"] for env in api["env"] if "valueFrom" in env}
    assert set(refs) == {"SEENBY_DATABASE_URL", "SEENBY_PSEUDONYM_SECRET", "SEENBY_JWT_SECRET"}
    assert {ref["name"] for ref in refs.values()} == {f"{RELEASE}-secrets"}
    assert f"kubectl -n ledger create secret generic {RELEASE}-secrets" in default_render.notes
    assert "openssl genpkey -algorithm ed25519 -out ticket-key.pem" in default_render.notes
    assert "--from-file=ticket-key.pem=ticket-key.pem" in default_render.notes
    assert "never the signing key" in default_render.notes


def test_secrets_given_as_values_are_kept_in_secrets(inline_render: Rendered) -> None:
    values = inline_secret_values()
    app_secret = inline_render.one("Secret", RELEASE)
    assert set(app_secret["data"]) == {
        "jwt-secret", "pseudonym-secret", "signing-key.pem", "ticket-key.pem", "database-url"}
    kept = {key: base64.b64decode(value).decode() for key, value in app_secret["data"].items()}
    assert kept["ticket-key.pem"].startswith("-----BEGIN PRIVATE KEY-----")
    assert kept["ticket-key.pem"] != kept["signing-key.pem"], "the ticket key is a key of its own"
    # The owner's URL only reaches the migration, through a hook Secret deleted once it succeeded.
    hook_secret = inline_render.one("Secret", f"{RELEASE}-migration")
    assert "migration-database-url" in hook_secret["data"]
    assert "hook-succeeded" in hook_secret["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    job_refs = {env["valueFrom"]["secretKeyRef"]["name"]
                for env in container(inline_render.one("Job"))["env"] if "valueFrom" in env}
    assert job_refs == {f"{RELEASE}-migration"}
    rendered = str(inline_render.one("ConfigMap", RELEASE)) + str(inline_render.one("Deployment"))
    for secret in values["secrets"].values():  # type: ignore[union-attr]
        assert secret["value"].split("\n")[0][:40] not in rendered


def test_asymmetric_tokens_use_the_jwks_not_a_shared_secret(production_render: Rendered) -> None:
    config = production_render.one("ConfigMap", RELEASE)["data"]
    assert config["SEENBY_JWKS_URL"].startswith("https://")
    names = {env["name"] for env in container(production_render.one("Deployment"))["env"]}
    assert "SEENBY_JWT_SECRET" not in names


def test_jwks_document_from_a_secret_is_mounted_as_a_file() -> None:
    values: dict[str, Any] = {"config": {"jwtAlgorithms": "EdDSA"}}
    rendered = render(values)
    config = rendered.one("ConfigMap", RELEASE)["data"]
    api = container(rendered.one("Deployment"))
    mounts = {m["name"]: m["mountPath"] for m in api["volumeMounts"]}
    assert config["SEENBY_JWKS_FILE"] == mounts["jwks"] + "/jwks.json"
    assert config["SEENBY_SIGNING_KEY_FILE"] == mounts["signing-key"] + "/signing-key.pem"


@pytest.mark.parametrize("which", ["default", "production", "inline"])
def test_ticket_key_is_mounted_read_only_in_a_folder_of_its_own(
    which: str, default_render: Rendered, production_render: Rendered, inline_render: Rendered
) -> None:
    rendered = {"default": default_render, "production": production_render, "inline": inline_render}[which]
    config = rendered.one("ConfigMap", RELEASE)["data"]
    deployment = rendered.one("Deployment")
    mounts = {m["name"]: m for m in container(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    ticket, signing = mounts["ticket-key"], mounts["signing-key"]
    assert ticket["readOnly"] is True
    assert ticket["mountPath"] == "/etc/seenby/ticket-key" != signing["mountPath"]
    assert config["SEENBY_TICKET_KEY_FILE"] == ticket["mountPath"] + "/ticket-key.pem"
    assert config["SEENBY_TICKET_KEY_FILE"] != config["SEENBY_SIGNING_KEY_FILE"]
    secret = volumes["ticket-key"]["secret"]
    assert secret["items"] == [{"key": "ticket-key.pem", "path": "ticket-key.pem"}]
    assert secret["defaultMode"] == 0o440
    expected = {"default": f"{RELEASE}-secrets", "production": "seenby-ticket-key", "inline": RELEASE}[which]
    assert secret["secretName"] == expected
    # Never the signing key's Secret entry.
    signing_secret = volumes["signing-key"]["secret"]
    assert (secret["secretName"], secret["items"][0]["key"]) != (
        signing_secret["secretName"], signing_secret["items"][0]["key"])


def test_ticket_settings_are_rendered(default_render: Rendered, production_render: Rendered) -> None:
    config = default_render.one("ConfigMap", RELEASE)["data"]
    assert config["SEENBY_TICKET_TTL_SECONDS"] == "300"
    assert config["SEENBY_TICKETS_ENFORCE"] == "true"
    monitor_only = render({"config": {"ticketTtlSeconds": 3600, "ticketsEnforce": False}})
    config = monitor_only.one("ConfigMap", RELEASE)["data"]
    assert config["SEENBY_TICKET_TTL_SECONDS"] == "3600"
    assert config["SEENBY_TICKETS_ENFORCE"] == "false"
    # As the service parses them (the ConfigMap alone is not a production configuration).
    pod_settings = Settings(env="development", ticket_ttl_seconds=config["SEENBY_TICKET_TTL_SECONDS"],
                            tickets_enforce=config["SEENBY_TICKETS_ENFORCE"])
    assert pod_settings.ticket_ttl_seconds == 3600 and pod_settings.tickets_enforce is False
    production = production_render.one("ConfigMap", RELEASE)["data"]
    assert production["SEENBY_TICKETS_ENFORCE"] == "true"


WITNESS_POLICY = (
    "log seenby.example.com/log+01234567+AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghi=\n"
    "witness W1 w1.example/witness+89abcdef+AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghi= "
    "https://w1.example\n"
    "quorum W1\n"
)


def test_a_witness_policy_is_mounted_as_a_file_and_reached_through_the_network_policy(
    default_render: Rendered,
) -> None:
    assert "SEENBY_WITNESS_POLICY_FILE" not in default_render.one("ConfigMap", RELEASE)["data"]
    rendered = render({"witnesses": {"policy": WITNESS_POLICY, "timeoutSeconds": 2, "failOpen": True}})
    config = rendered.one("ConfigMap", RELEASE)["data"]
    deployment = rendered.one("Deployment")
    mount = {m["name"]: m for m in container(deployment)["volumeMounts"]}["witness-policy"]
    assert mount["readOnly"] is True
    assert config["SEENBY_WITNESS_POLICY_FILE"] == mount["mountPath"] + "/policy.txt"
    volume = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}["witness-policy"]
    policy_map = rendered.one("ConfigMap", volume["configMap"]["name"])
    assert policy_map["data"]["policy.txt"] == WITNESS_POLICY
    # As the service parses them.
    pod_settings = Settings(env="development",
                            witness_timeout_seconds=config["SEENBY_WITNESS_TIMEOUT_SECONDS"],
                            witness_fail_open=config["SEENBY_WITNESS_FAIL_OPEN"])
    assert pod_settings.witness_timeout_seconds == 2 and pod_settings.witness_fail_open is True
    # A new policy rolls the pods.
    def checksum(deployment: dict[str, Any]) -> str:
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum(deployment) != checksum(default_render.one("Deployment"))
    egress = rendered.one("NetworkPolicy", RELEASE)["spec"]["egress"]
    assert {"port": 443, "protocol": "TCP"} in [p for rule in egress for p in rule["ports"]]


def test_notices_are_configured_signed_with_a_secret_and_reached_through_the_network_policy(
    default_render: Rendered,
) -> None:
    assert "SEENBY_WEBHOOK_URL" not in default_render.one("ConfigMap", RELEASE)["data"]
    default_env = {e["name"] for e in container(default_render.one("Deployment"))["env"]}
    assert "SEENBY_WEBHOOK_SECRET" not in default_env
    # While it is rotated: the new secret and the old one (README, "Rotating the secret").
    secret = " ".join("whsec_" + base64.b64encode(key * 32).decode() for key in (b"n", b"o"))
    rendered = render({"notices": {"webhookUrl": "https://notify.example/hooks", "types": "access.human",
                                   "retrySeconds": 172800},
                       "secrets": {"webhookSecret": {"value": secret}},
                       "networkPolicy": {"enabled": True, "egress": {"notices": {"ports": [8443]}}}})
    config = rendered.one("ConfigMap", RELEASE)["data"]
    env = {e["name"]: e for e in container(rendered.one("Deployment"))["env"]}
    reference = env["SEENBY_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]
    stored = rendered.one("Secret", reference["name"])["data"][reference["key"]]
    assert base64.b64decode(stored).decode() == secret
    # As the service parses them.
    pod_settings = Settings(env="development", webhook_url=config["SEENBY_WEBHOOK_URL"],
                            webhook_secret=secret,
                            webhook_types=config["SEENBY_WEBHOOK_TYPES"],
                            webhook_retry_seconds=config["SEENBY_WEBHOOK_RETRY_SECONDS"],
                            webhook_timeout_seconds=config["SEENBY_WEBHOOK_TIMEOUT_SECONDS"],
                            webhook_concurrency=config["SEENBY_WEBHOOK_CONCURRENCY"])
    assert pod_settings.webhook_types == ["access.human"] and pod_settings.webhook_retry_seconds == 172800
    assert pod_settings.webhook_secrets == tuple(secret.split(" "))
    egress = rendered.one("NetworkPolicy", RELEASE)["spec"]["egress"]
    assert {"port": 8443, "protocol": "TCP"} in [p for rule in egress for p in rule["ports"]]


def test_a_read_database_is_a_second_url_from_a_secret_with_its_lag_limit(default_render: Rendered) -> None:
    assert "SEENBY_READ_MAX_LAG_SECONDS" not in default_render.one("ConfigMap", RELEASE)["data"]
    default_env = {e["name"] for e in container(default_render.one("Deployment"))["env"]}
    assert "SEENBY_READ_DATABASE_URL" not in default_env
    primary = "postgresql+asyncpg://seenby_app:pw@db:5432/seenby"
    standby = "postgresql+asyncpg://seenby_app:pw@standby:5432/seenby"
    rendered = render({"readDatabase": {"enabled": True, "maxLagSeconds": 12.5},
                       "secrets": {"databaseUrl": {"value": primary}, "readDatabaseUrl": {"value": standby}}})
    config = rendered.one("ConfigMap", RELEASE)["data"]
    env = {e["name"]: e for e in container(rendered.one("Deployment"))["env"]}
    reference = env["SEENBY_READ_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert reference["key"] == "read-database-url"
    stored = rendered.one("Secret", reference["name"])["data"][reference["key"]]
    pod_settings = Settings(env="development", database_url=primary,
                            read_database_url=base64.b64decode(stored).decode(),
                            read_max_lag_seconds=config["SEENBY_READ_MAX_LAG_SECONDS"])
    assert pod_settings.read_database_url == standby and pod_settings.read_max_lag_seconds == 12.5


def test_the_migration_job_grants_the_read_databases_role_when_there_is_one(default_render: Rendered) -> None:
    """`seenby migrate` grants SELECT to the role the read URL names: the Job is given that URL, from
    a Secret that exists before it runs (the hook Secret, for a value), and only with a read database."""
    assert "SEENBY_READ_DATABASE_URL" not in {e["name"] for e in container(default_render.one("Job"))["env"]}
    standby = "postgresql+asyncpg://seenby_reader:pw@standby:5432/seenby"
    rendered = render({"readDatabase": {"enabled": True},
                       "secrets": {"databaseUrl": {"value": "postgresql+asyncpg://seenby_app:pw@db/seenby"},
                                   "migrationDatabaseUrl": {"value": "postgresql+asyncpg://owner:pw@db/seenby"},
                                   "readDatabaseUrl": {"value": standby}}})
    job = rendered.one("Job")
    env = {e["name"]: e for e in container(job)["env"]}
    reference = env["SEENBY_READ_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    hook_secret = rendered.one("Secret", reference["name"])
    assert "pre-install" in hook_secret["metadata"]["annotations"]["helm.sh/hook"]
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert base64.b64decode(hook_secret["data"][reference["key"]]).decode() == standby
    disabled = render({"secrets": {"readDatabaseUrl": {"value": standby}}})
    assert "SEENBY_READ_DATABASE_URL" not in {e["name"] for e in container(disabled.one("Job"))["env"]}
    assert not disabled.has("Secret"), "a read URL for no read database is kept nowhere"
    # The other URLs from an existing Secret, the read URL as a value: the hook Secret holds it alone.
    read_only = render({"readDatabase": {"enabled": True},
                        "secrets": {"readDatabaseUrl": {"value": standby}}})
    job_env = {e["name"]: e for e in container(read_only.one("Job"))["env"]}
    reference = job_env["SEENBY_READ_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert set(read_only.one("Secret", reference["name"])["data"]) == {reference["key"]}


SAME_KEY = {
    "the signing key's value": lambda pem: {
        "secrets": {"signingKey": {"value": pem}, "ticketKey": {"value": pem}}},
    "the signing key's Secret entry": lambda pem: {"secrets": {"ticketKey": {"key": "signing-key.pem"}}},
}


@pytest.mark.parametrize("values", SAME_KEY.values(), ids=SAME_KEY.keys())
def test_chart_refuses_the_signing_key_as_ticket_key(values) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(helm_python.HelmRenderError, match=r"not be the log signing key|a key of its own"):
        render(values(new_signing_key_pem()))


def test_every_setting_the_chart_sets_is_one_the_service_reads(
    default_render: Rendered, production_render: Rendered
) -> None:
    known = {f"SEENBY_{name.upper()}" for name in Settings.model_fields}
    for rendered in (default_render, production_render):
        names = set(rendered.one("ConfigMap", RELEASE)["data"])
        for workload in (rendered.one("Deployment"), rendered.one("Job")):
            names |= {env["name"] for env in container(workload).get("env", [])}
        assert names <= known, names - known


def test_production_values_autoscale_and_pin_the_image(production_render: Rendered) -> None:
    deployment = production_render.one("Deployment")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    hpa = production_render.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert re.fullmatch(r".+@sha256:[0-9a-f]{64}", container(deployment)["image"])
    assert production_render.has("ServiceMonitor") and production_render.has("PrometheusRule")


def test_disruption_budget_keeps_a_replica(default_render: Rendered) -> None:
    pdb = default_render.one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == default_render.one("Deployment")["spec"]["selector"]


def test_network_policy_admits_the_api_port_and_reaches_only_postgres_and_dns(
    production_render: Rendered,
) -> None:
    policy = production_render.one("NetworkPolicy", RELEASE)
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    egress_ports = sorted((p["port"], p["protocol"]) for rule in policy["spec"]["egress"]
                          for p in rule["ports"])
    # PostgreSQL, DNS, and the JWKS URL and the notification service that the production values
    # configure (both on 443).
    assert egress_ports == [(53, "TCP"), (53, "UDP"), (443, "TCP"), (443, "TCP"), (5432, "TCP")]
    migration = production_render.one("NetworkPolicy", f"{RELEASE}-migration")
    assert "pre-install" in migration["metadata"]["annotations"]["helm.sh/hook"]
    assert not migration["spec"].get("ingress")


def test_default_values_leave_prometheus_operator_objects_out(default_render: Rendered) -> None:
    assert not default_render.has("ServiceMonitor") and not default_render.has("PrometheusRule")


def test_dashboard_configmap_carries_the_sidecar_label(default_render: Rendered) -> None:
    dashboard = default_render.one("ConfigMap", f"{RELEASE}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(dashboard["data"]) == {"seenby.json"}


def test_notes_tell_how_to_fetch_the_verifier_key_and_first_checkpoint(default_render: Rendered) -> None:
    assert "/v1/log/key" in default_render.notes
    assert "/v1/log/checkpoint" in default_render.notes
    assert "seenby verify checkpoint" in default_render.notes


BAD_VALUES = {  # values, and the path Helm's schema check names
    "replicaCount as text": ({"replicaCount": "two"}, "/replicaCount"),
    "no replicas": ({"replicaCount": 0}, "/replicaCount"),
    "an origin with a space": ({"config": {"logOrigin": "my log"}}, "/config/logOrigin"),
    "the development issuer": ({"config": {"jwtIssuer": "seenby-dev"}}, "/config/jwtIssuer"),
    "HMAC mixed with signatures": ({"config": {"jwtAlgorithms": "HS256,RS256"}}, "/config/jwtAlgorithms"),
    "a short JWT secret": ({"secrets": {"jwtSecret": {"value": "too-short"}}}, "/secrets/jwtSecret/value"),
    "a database URL for another driver": (
        {"secrets": {"databaseUrl": {"value": "mysql://db/seenby"}}}, "/secrets/databaseUrl/value"),
    "a writable root filesystem": (
        {"securityContext": {"readOnlyRootFilesystem": False}}, "/securityContext/readOnlyRootFilesystem"),
    "root": ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
    "the latest tag": ({"image": {"tag": "latest"}}, "/image/tag"),
    "a misspelt key": ({"replicas": 3}, "replicas"),
    "no ticket key": ({"secrets": {"ticketKey": None}}, "ticketKey"),
    "a ticket key that is not a PEM private key": (
        {"secrets": {"ticketKey": {"value": "not a key"}}}, "/secrets/ticketKey/value"),
    "a ticket lifetime of 0": ({"config": {"ticketTtlSeconds": 0}}, "/config/ticketTtlSeconds"),
    "a ticket lifetime over an hour": ({"config": {"ticketTtlSeconds": 3601}}, "/config/ticketTtlSeconds"),
    "ticket enforcement as text": ({"config": {"ticketsEnforce": "no"}}, "/config/ticketsEnforce"),
    "a witness timeout of 0": ({"witnesses": {"timeoutSeconds": 0}}, "/witnesses/timeoutSeconds"),
    "fail-open as text": ({"witnesses": {"failOpen": "yes"}}, "/witnesses/failOpen"),
    "a webhook URL that is not HTTP": ({"notices": {"webhookUrl": "ftp://x"}}, "/notices/webhookUrl"),
    "an unknown notice type": ({"notices": {"types": "access.human,access.seen"}}, "/notices/types"),
    "notices retried less than a day": ({"notices": {"retrySeconds": 3600}}, "/notices/retrySeconds"),
    "a webhook secret without whsec_": (
        {"secrets": {"webhookSecret": {"value": "x" * 40}}}, "/secrets/webhookSecret/value"),
    "two webhook secrets, one without whsec_": (
        {"secrets": {"webhookSecret": {"value": "whsec_" + "a" * 44 + " " + "b" * 44}}},
        "/secrets/webhookSecret/value"),
    "two webhook secrets separated by a comma": (
        {"secrets": {"webhookSecret": {"value": "whsec_" + "a" * 44 + ",whsec_" + "b" * 44}}},
        "/secrets/webhookSecret/value"),
    "a secret in extraEnv": ({"config": {"extraEnv": {"SEENBY_JWT_SECRET": "x" * 40}}}, "SEENBY_JWT_SECRET"),
}


@pytest.mark.parametrize(("values", "path"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_refuses_bad_values(values: dict[str, Any], path: str) -> None:
    with helm_python.Chart.load(CHART) as chart:
        with pytest.raises(helm_python.HelmValuesError, match=re.escape(path)):
            chart.validate_schema(values)
        with pytest.raises(helm_python.HelmValuesError, match=re.escape(path)):
            chart.render(values, name=RELEASE, namespace="ledger")


def test_schema_accepts_the_shipped_values() -> None:
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(None)
        chart.validate_schema({"replicaCount": 3})
        chart.validate_schema(load_values(PRODUCTION_VALUES))
        chart.validate_schema(copy.deepcopy(inline_secret_values()))


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def readme_helm_commands() -> list[list[str]]:
    section = (ROOT / "README.md").read_text().split("## Deploy on Kubernetes", 1)[1].split("\n## ", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", section)
    return [shlex.split(line.strip()) for line in joined.splitlines() if line.strip().startswith("helm ")]


def test_the_readme_helm_commands_render() -> None:
    commands = readme_helm_commands()
    assert [c[1] for c in commands] == ["install", "upgrade", "upgrade", "upgrade"]
    installed: dict[str, Any] = {}
    for command in commands:
        values = copy.deepcopy(installed) if "--reuse-values" in command else {}
        for flag, argument in itertools.pairwise(command):
            if flag == "--set":
                argument = argument.replace("sha256:...", "sha256:" + "0" * 64)
                values = merged(values, helm_python.parse_set_string(argument))
            elif flag == "--set-file":  # the README's policy.txt, as a file of that form
                name, _ = argument.split("=", 1)
                values = merged(values, helm_python.parse_set_string(f"{name}=x"))
                values["witnesses"]["policy"] = WITNESS_POLICY
        if "witnesses" in values:
            policy = render(values).one("ConfigMap", f"{RELEASE}-witness-policy")
            assert policy["data"]["policy.txt"] == WITNESS_POLICY
        rendered = render(values)
        if command[1] == "install":
            installed = values
            assert rendered.has("ServiceMonitor") and rendered.has("PrometheusRule")
        assert rendered.one("Deployment")
