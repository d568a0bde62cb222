"""Secrets and keys: from settings in production, generated once into the data folder in development."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from service.settings import MIN_SECRET_BYTES, Settings

DEV_JWT_SECRET_FILE = "jwt-secret"
DEV_PSEUDONYM_SECRET_FILE = "pseudonym-secret"
DEV_SIGNING_KEY_FILE = "log-signing-key.pem"
DEV_TICKET_KEY_FILE = "ticket-key.pem"
DEV_WEBHOOK_SECRET_FILE = "webhook-secret"


class KeyConfigurationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Keys:
    jwt_secret: str
    pseudonym_key: bytes
    signing_key: Ed25519PrivateKey
    ticket_key: Ed25519PrivateKey
    retired_ticket_keys: tuple[Ed25519PublicKey, ...] = ()
    # With SEENBY_WEBHOOK_URL: sign notices (Standard Webhooks), each notice with every one, the
    # newest first (several while receivers move to a new secret).
    webhook_secrets: tuple[str, ...] = ()


def _create_once(path: Path, make: bytes) -> bytes:
    """Write `make` to `path` unless it exists; concurrent first starts agree on one value. The file
    appears whole or not at all (written aside, then linked into place), so a start interrupted
    while writing it never leaves an empty secret behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_bytes()
    aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    try:
        _write_synced(aside, make)
        os.link(aside, path)  # fails if another start got there first: its value stands
    except FileExistsError:
        return path.read_bytes()
    except OSError:  # a file system without hard links: created in place, as atomically as it allows
        try:
            _write_synced(path, make)
        except FileExistsError:
            return path.read_bytes()
    finally:
        aside.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the name too survives a power cut: no other key made after it
    finally:
        os.close(directory)
    return make


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _dev_secret(settings: Settings, name: str, make: bytes | None = None) -> str:
    """A development secret generated once into the data folder; one cut short by hand is refused."""
    path = settings.data_dir / name
    secret = _create_once(path, make or secrets.token_hex(32).encode()).decode().strip()
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise KeyConfigurationError(f"{path} holds a secret under {MIN_SECRET_BYTES} bytes: delete the "
                                    "file to have a new one made")
    return secret


def new_key_pem() -> bytes:
    """A fresh Ed25519 private key, PKCS#8 PEM: what SEENBY_SIGNING_KEY_FILE and SEENBY_TICKET_KEY_FILE
    hold."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_signing_key(pem: bytes, what: str = "the log signing key") -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigurationError(f"{what} must be an Ed25519 private key (PEM)")
    return key


def key_in_file(path: Path, what: str) -> Ed25519PrivateKey:
    """The Ed25519 private key in `path`, generated there (mode 0600) on first use."""
    return load_signing_key(_create_once(path, new_key_pem()), what)


def _private_key_pem(settings: Settings, path: Path | None, dev_file: str, setting: str, what: str) -> bytes:
    """The PEM at `path`; in development, one generated once into the data folder."""
    production = settings.env == "production"
    if path:
        if production and path.resolve() == (settings.data_dir / dev_file).resolve():
            raise KeyConfigurationError(f"production refuses the development {what}")
        return path.read_bytes()
    if production:
        raise KeyConfigurationError(f"production needs {setting}")
    return _create_once(settings.data_dir / dev_file, new_key_pem())


def _public_key(path: Path) -> Ed25519PublicKey:
    """A retired ticket key: its private PEM, or only its public one."""
    pem = path.read_bytes()
    if b"PRIVATE KEY" in pem:
        return load_signing_key(pem, f"{path}").public_key()
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise KeyConfigurationError(f"{path} must hold an Ed25519 key (PEM)")
    return key


def _development_public_keys(settings: Settings) -> set[bytes]:
    """The public keys of the development key files in the data folder, where there are any."""
    found = set()
    for name in (DEV_SIGNING_KEY_FILE, DEV_TICKET_KEY_FILE):
        with contextlib.suppress(OSError, ValueError, TypeError, UnsupportedAlgorithm, KeyConfigurationError):
            found.add(_raw(load_signing_key((settings.data_dir / name).read_bytes()).public_key()))
    return found


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_keys(settings: Settings) -> Keys:
    production = settings.env == "production"
    signing_pem = _private_key_pem(settings, settings.signing_key_file, DEV_SIGNING_KEY_FILE,
                                   "SEENBY_SIGNING_KEY_FILE", "log signing key")
    ticket_pem = _private_key_pem(settings, settings.ticket_key_file, DEV_TICKET_KEY_FILE,
                                  "SEENBY_TICKET_KEY_FILE", "ticket key")

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

    webhook_secrets = settings.webhook_secrets
    if settings.webhook_url and not webhook_secrets:
        if production:
            raise KeyConfigurationError("production needs SEENBY_WEBHOOK_SECRET")
        webhook_secrets = (dev_webhook_secret(settings),)

    if production:
        dev_files = [settings.data_dir / name for name in
                     (DEV_JWT_SECRET_FILE, DEV_PSEUDONYM_SECRET_FILE, DEV_WEBHOOK_SECRET_FILE)]
        dev_values = {p.read_text().strip() for p in dev_files if p.exists()}
        if {jwt_secret, pseudonym_secret, *webhook_secrets} & dev_values:
            raise KeyConfigurationError("production refuses development secrets")

    signing_key = load_signing_key(signing_pem)
    ticket_key = load_signing_key(ticket_pem, "the ticket key")
    retired_ticket_keys = tuple(_public_key(path) for path in settings.ticket_retired_key_files)
    if production:
        # A copy of a development key elsewhere is the development key still; a retired ticket key
        # is still published to clip stores.
        development = _development_public_keys(settings)
        published = [("log signing key", signing_key.public_key()), ("ticket key", ticket_key.public_key()),
                     *(("retired ticket key", retired) for retired in retired_ticket_keys)]
        for what, key in published:
            if _raw(key) in development:
                raise KeyConfigurationError(f"production refuses the development {what} (a copy of a key "
                                            f"generated into {settings.data_dir})")
    # Separate keys (SECURITY.md): a clip store trusting the ticket key must never trust a checkpoint.
    if _raw(ticket_key.public_key()) == _raw(signing_key.public_key()):
        raise KeyConfigurationError("the ticket key must not be the log signing key")
    return Keys(
        jwt_secret=jwt_secret,
        pseudonym_key=pseudonym_secret.encode(),
        signing_key=signing_key,
        ticket_key=ticket_key,
        retired_ticket_keys=retired_ticket_keys,
        webhook_secrets=webhook_secrets,
    )


def dev_webhook_secret(settings: Settings) -> str:
    """The development webhook secret, generated once into the data folder: give it to the receiver."""
    made = ("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()).encode()
    return _dev_secret(settings, DEV_WEBHOOK_SECRET_FILE, made)
