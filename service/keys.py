"""Secrets and keys: from settings in production, generated once into the data folder in development."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.settings import Settings

DEV_JWT_SECRET_FILE = "jwt-secret"
DEV_PSEUDONYM_SECRET_FILE = "pseudonym-secret"
DEV_SIGNING_KEY_FILE = "log-signing-key.pem"


class KeyConfigurationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Keys:
    jwt_secret: str
    pseudonym_key: bytes
    signing_key: Ed25519PrivateKey


def _create_once(path: Path, make: bytes) -> bytes:
    """Write `make` to `path` unless it exists; concurrent first starts agree on one value."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as out:
        out.write(make)
        out.flush()
        os.fsync(out.fileno())
    return make


def _dev_secret(settings: Settings, name: str) -> str:
    return _create_once(settings.data_dir / name, secrets.token_hex(32).encode()).decode().strip()


def _new_signing_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_signing_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigurationError("the log signing key must be an Ed25519 private key (PEM)")
    return key


def _is_dev_key_file(settings: Settings, path: Path) -> bool:
    return path.resolve() == (settings.data_dir / DEV_SIGNING_KEY_FILE).resolve()


def load_keys(settings: Settings) -> Keys:
    production = settings.env == "production"
    if settings.signing_key_file:
        if production and _is_dev_key_file(settings, settings.signing_key_file):
            raise KeyConfigurationError("production refuses the development log signing key")
        signing_pem = settings.signing_key_file.read_bytes()
    elif production:
        raise KeyConfigurationError("production needs SEENBY_SIGNING_KEY_FILE")
    else:
        signing_pem = _create_once(settings.data_dir / DEV_SIGNING_KEY_FILE, _new_signing_key_pem())

    jwt_secret = settings.jwt_secret
    if not jwt_secret and settings.uses_hmac:
        if production:
            raise KeyConfigurationError("production needs SEENBY_JWT_SECRET")
        jwt_secret = _dev_secret(settings, DEV_JWT_SECRET_FILE)

    pseudonym_secret = settings.pseudonym_secret
    if not pseudonym_secret:
        if production:
            raise KeyConfigurationError("production needs SEENBY_PSEUDONYM_SECRET")
        pseudonym_secret = _dev_secret(settings, DEV_PSEUDONYM_SECRET_FILE)

    if production:
        dev_files = [settings.data_dir / DEV_JWT_SECRET_FILE, settings.data_dir / DEV_PSEUDONYM_SECRET_FILE]
        dev_values = {p.read_text().strip() for p in dev_files if p.exists()}
        if {jwt_secret, pseudonym_secret} & dev_values:
            raise KeyConfigurationError("production refuses development secrets")

    return Keys(
        jwt_secret=jwt_secret,
        pseudonym_key=pseudonym_secret.encode(),
        signing_key=load_signing_key(signing_pem),
    )
