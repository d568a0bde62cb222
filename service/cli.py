"""The `seenby` command: serve, migrate, token."""

from __future__ import annotations

from typing import Annotated

import typer

from service.settings import Settings

app = typer.Typer(
    help="seenby: an append-only, verifiable record of every access to customers' camera clips.\n\n"
    "Configured by SEENBY_* environment variables; with none, it runs on SQLite in ./.seenby "
    "with development keys generated there on first use.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        typer.secho(f"configuration error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL only).")] = 1,
) -> None:
    """Run the HTTP API (in development, apply migrations first)."""
    import uvicorn

    from service.keys import KeyConfigurationError, load_keys
    from service.migrate import upgrade

    settings = _settings()
    try:
        load_keys(settings)
    except (KeyConfigurationError, OSError, ValueError) as exc:
        typer.secho(f"key error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    if settings.env == "development":
        upgrade(settings)
    uvicorn.run(
        "service.main:create_app", factory=True, host=host, port=port, workers=workers,
        proxy_headers=False, server_header=False, log_level="info",
    )


@app.command()
def migrate() -> None:
    """Apply schema migrations (as SEENBY_MIGRATION_DATABASE_URL) and the app role's grants."""
    from service.migrate import upgrade

    settings = _settings()
    upgrade(settings)
    typer.echo("schema is at head")


@app.command()
def token(
    role: Annotated[str, typer.Option(help="customer, service, regulator or admin.")],
    sub: Annotated[str, typer.Option(help="Customer id, service name, regulator or operator id.")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
    jurisdiction: Annotated[
        str | None, typer.Option(help="Regulators only: ISO 3166-1 alpha-2 country.")
    ] = None,
) -> None:
    """Mint a development token (HS256, from the configured or generated secret)."""
    from service.auth import Role, mint_token
    from service.keys import load_keys

    if role not in {r.value for r in Role}:
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role")
    settings = _settings()
    if not settings.uses_hmac:
        typer.secho("tokens can only be minted for HS256 configurations", fg="red", err=True)
        raise typer.Exit(2)
    keys = load_keys(settings)
    typer.echo(mint_token(settings, keys, role=role, subject=sub, ttl_seconds=ttl,
                          jurisdiction=jurisdiction))


if __name__ == "__main__":
    app()
