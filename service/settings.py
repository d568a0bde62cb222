"""Configuration from SEENBY_* environment variables, validated once at start-up."""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.notices.types import NOTICE_TYPES

MIN_SECRET_BYTES = 32
FRAME_SOURCE = re.compile(r"'self'|https?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?")
DAY_SECONDS = 86_400
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"})


class Settings(BaseSettings):
    # hide_input_in_errors: a refused secret must not be printed in the start-up error.
    model_config = SettingsConfigDict(env_prefix="SEENBY_", extra="ignore", hide_input_in_errors=True)

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path(".seenby")
    database_url: str = ""
    migration_database_url: str = ""
    # A PostgreSQL hot standby of database_url (CONTRACT "Reads from a standby"): histories, proofs,
    # tiles, checkpoints, exports and reports are read there. Out of rotation past the lag.
    read_database_url: str = ""
    read_max_lag_seconds: float = Field(30.0, gt=0)

    jwt_issuer: str = "seenby-dev"
    jwt_audience: str = "seenby"
    jwt_algorithms: Annotated[list[str], NoDecode] = ["HS256"]
    jwt_secret: str = ""
    jwks_file: Path | None = None
    jwks_url: str = ""
    jwks_cache_seconds: int = Field(300, ge=0)
    jwt_leeway_seconds: int = Field(30, ge=0, le=300)

    signing_key_file: Path | None = None
    pseudonym_secret: str = ""
    log_origin: str = "seenby.dev/log"

    ticket_key_file: Path | None = None
    # Keys rotated out: still listed in the JWKS until every ticket they signed has expired.
    ticket_retired_key_files: Annotated[list[Path], NoDecode] = []
    ticket_issuer: str = ""  # default: the log origin
    ticket_ttl_seconds: int = Field(300, ge=1, le=3600)
    tickets_enforce: bool = True  # false: monitor only, tickets issued with their flags

    # Witnesses (CONTRACT "Witnesses"): a C2SP tlog-policy file; without one, nothing changes.
    witness_policy_file: Path | None = None
    witness_timeout_seconds: float = Field(5.0, gt=0, le=60)
    # Rollout only: serve the newest signed checkpoint while none has met the quorum yet.
    witness_fail_open: bool = False

    # Notices (CONTRACT "Notices and objections"): webhooks to the operator's notification service.
    # Without a URL no notice is written.
    webhook_url: str = ""
    # whsec_<base64 of 24 to 64 bytes>; generated in development. Several, separated by whitespace
    # (the newest first), while receivers move from one to the next: each notice is signed with all.
    webhook_secret: str = ""
    webhook_types: Annotated[list[str], NoDecode] = list(NOTICE_TYPES)
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60)
    # A failing notice is retried this long after it was written, then dead-lettered.
    webhook_retry_seconds: int = Field(DAY_SECONDS, ge=1)
    # The first retry's delay; it doubles (with jitter) up to the maximum.
    webhook_backoff_seconds: float = Field(1.0, gt=0, le=3600)
    webhook_backoff_max_seconds: float = Field(300.0, gt=0, le=86_400)
    webhook_concurrency: int = Field(8, ge=1, le=64)  # customers delivered to at once
    # Live streams (GET /v1/me/events) a process serves at once, and one customer may hold.
    event_streams_per_process: int = Field(1000, ge=1)
    event_streams_per_customer: int = Field(5, ge=1)
    event_stream_keepalive_seconds: float = Field(15.0, gt=0, le=300)
    # A stream ends after this long (or at its token's expiry), and the client reconnects with
    # Last-Event-ID: connections are spread again across replicas, and none lives forever.
    event_stream_max_seconds: float = Field(3600.0, gt=0, le=86_400)
    # Exports and manifests a process streams at once (each holds a database connection for as long
    # as its client takes to read it; at most SEENBY_DB_POOL_SIZE); one more is a 429. A client
    # that takes nothing for the send timeout is cut off (`seenby export` resumes).
    export_streams_per_process: int = Field(8, ge=1, le=1000)
    export_send_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    # Objections a customer may file a minute, in each process (an objection writes to the
    # ledger: SECURITY.md); 0: no limit.
    objections_per_minute: int = Field(30, ge=0)

    deletion_services: Annotated[list[str], NoDecode] = []
    # Fractions allowed; 0 makes a request due as it is filed (overdue at once: tests, drills).
    deletion_due_days: float = Field(30, ge=0, le=36_500, allow_inf_nan=False)
    troubleshooting_grant_days: int = Field(30, ge=1)
    consent_default_human_review: bool = False
    consent_default_model_training: bool = False

    max_body_bytes: int = Field(1024 * 1024, ge=1)
    max_auth_header_bytes: int = Field(8 * 1024, ge=256)
    max_batch: int = Field(1000, ge=1)
    rate_limit_per_second: float = Field(2000.0, ge=0)  # per token subject and process; 0: off
    rate_limit_burst: float = Field(4000.0, ge=1)
    docs_enabled: bool = True
    # The customer page at /app/: off, or who may frame it (CSP frame-ancestors; empty: nobody).
    page_enabled: bool = True
    page_frame_ancestors: Annotated[list[str], NoDecode] = []
    db_pool_size: int = Field(10, ge=1)
    # How long a request waits for a pooled connection to come free before it answers 503.
    db_pool_timeout_seconds: float = Field(30.0, gt=0, le=300)

    @field_validator("jwt_algorithms", "deletion_services", "ticket_retired_key_files", "webhook_types",
                     "page_frame_ancestors", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _known_algorithms(cls, algorithms: list[str]) -> list[str]:
        if not algorithms:
            raise ValueError("at least one JWT algorithm is required")
        unknown = set(algorithms) - HMAC_ALGORITHMS - ASYMMETRIC_ALGORITHMS
        if unknown:
            raise ValueError(f"unsupported JWT algorithms: {sorted(unknown)}")
        # RFC 8725 §3.1 / the key-confusion trap: one key never serves HMAC and signatures.
        if set(algorithms) & HMAC_ALGORITHMS and set(algorithms) & ASYMMETRIC_ALGORITHMS:
            raise ValueError("HMAC and asymmetric JWT algorithms cannot both be allowed")
        return algorithms

    @field_validator("webhook_types")
    @classmethod
    def _known_notice_types(cls, types: list[str]) -> list[str]:
        unknown = set(types) - set(NOTICE_TYPES)
        if unknown:
            raise ValueError(f"unknown notice types {sorted(unknown)}; known: {', '.join(NOTICE_TYPES)}")
        return types

    @field_validator("page_frame_ancestors")
    @classmethod
    def _frame_sources(cls, sources: list[str]) -> list[str]:
        bad = [source for source in sources if not FRAME_SOURCE.fullmatch(source)]
        if bad:
            raise ValueError(f"SEENBY_PAGE_FRAME_ANCESTORS takes 'self' or origins such as "
                             f"https://app.example.com, comma-separated; not {bad}")
        return sources

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("SEENBY_WEBHOOK_URL must be an http:// or https:// URL")
        return url

    @field_validator("webhook_secret")
    @classmethod
    def _standard_webhooks_secrets(cls, value: str) -> str:
        secrets = value.split()
        for position, secret in enumerate(secrets, 1):
            check_webhook_secret(secret, f"secret {position} of {len(secrets)}" if len(secrets) > 1 else "")
        if len(set(secrets)) < len(secrets):
            raise ValueError("SEENBY_WEBHOOK_SECRET names the same secret twice")
        return " ".join(secrets)

    @model_validator(mode="after")
    def _exports_leave_connections_to_others(self) -> Settings:
        # Each export holds a pooled connection, and a manifest briefly a second one.
        if self.export_streams_per_process > self.db_pool_size:
            raise ValueError(f"SEENBY_EXPORT_STREAMS_PER_PROCESS ({self.export_streams_per_process}) "
                             f"must not exceed SEENBY_DB_POOL_SIZE ({self.db_pool_size})")
        return self

    @model_validator(mode="after")
    def _a_standby_is_postgresql(self) -> Settings:
        postgresql = "postgresql+asyncpg://"
        if self.read_database_url and not (self.read_database_url.startswith(postgresql)
                                           and self.database_url.startswith(postgresql)):
            raise ValueError("SEENBY_READ_DATABASE_URL names a PostgreSQL standby (postgresql+asyncpg://...) "
                             "of a PostgreSQL SEENBY_DATABASE_URL")
        return self

    @model_validator(mode="after")
    def _production_needs_explicit_secrets(self) -> Settings:
        if self.jwt_secret and len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"SEENBY_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if self.pseudonym_secret and len(self.pseudonym_secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"SEENBY_PSEUDONYM_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if self.env != "production":
            return self
        missing = []
        if not self.database_url:
            missing.append("SEENBY_DATABASE_URL")
        if self.uses_hmac and not self.jwt_secret:
            missing.append("SEENBY_JWT_SECRET")
        if not self.uses_hmac and not (self.jwks_file or self.jwks_url):
            missing.append("SEENBY_JWKS_FILE or SEENBY_JWKS_URL")
        if not self.signing_key_file:
            missing.append("SEENBY_SIGNING_KEY_FILE")
        if not self.ticket_key_file:
            missing.append("SEENBY_TICKET_KEY_FILE")
        if not self.pseudonym_secret:
            missing.append("SEENBY_PSEUDONYM_SECRET")
        if self.jwt_issuer == "seenby-dev":
            missing.append("SEENBY_JWT_ISSUER (not the development default)")
        if self.webhook_url and not self.webhook_secret:
            missing.append("SEENBY_WEBHOOK_SECRET (with SEENBY_WEBHOOK_URL)")
        if self.webhook_url and self.webhook_retry_seconds < DAY_SECONDS:
            missing.append(f"SEENBY_WEBHOOK_RETRY_SECONDS of at least {DAY_SECONDS} (24 hours)")
        if missing:
            raise ValueError("production refuses development defaults; set " + ", ".join(missing))
        return self

    @property
    def resolved_ticket_issuer(self) -> str:
        return self.ticket_issuer or self.log_origin

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        """The newest first: every notice is signed with each."""
        return tuple(self.webhook_secret.split())

    @property
    def uses_hmac(self) -> bool:
        return bool(set(self.jwt_algorithms) & HMAC_ALGORITHMS)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'seenby.db'}"

    @property
    def resolved_migration_database_url(self) -> str:
        return self.migration_database_url or self.resolved_database_url


def check_webhook_secret(secret: str, which: str = "") -> None:
    """A Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 random bytes. `which` names
    it among several (never its value: the message may be logged)."""
    name = f"SEENBY_WEBHOOK_SECRET ({which})" if which else "SEENBY_WEBHOOK_SECRET"
    if not secret.startswith("whsec_"):
        raise ValueError(f"{name} must start with whsec_ (several secrets are separated by spaces)")
    encoded = secret.removeprefix("whsec_")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{name} must be whsec_ followed by base64") from exc
    if not 24 <= len(raw) <= 64:
        raise ValueError(f"{name} must be whsec_ followed by the base64 of 24 to 64 bytes")


@lru_cache
def get_settings() -> Settings:
    return Settings()
