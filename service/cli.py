"""The `seenby` command: serve, migrate, token, audit, verify, export."""

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


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        typer.secho(f"configuration error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL only).")] = 1,
    access_log: Annotated[bool, typer.Option(
        "--access-log/--no-access-log",
        help="Log every request line. Off by default: paths carry customer ids, and such a log would "
             "be a second, unaudited record of whose history was read. /metrics counts requests by route.",
    )] = False,
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
        proxy_headers=False, server_header=False, log_level="info", access_log=access_log,
    )


@app.command()
def migrate() -> None:
    """Apply schema migrations (as SEENBY_MIGRATION_DATABASE_URL) and the app role's grants."""
    from service.migrate import upgrade

    # Migrating needs only the database URLs: the production checks of tokens and keys are the
    # server's, so a migration Job is not handed secrets it would never use.
    settings = _settings(env="development")
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


@app.command()
def audit(
    key: Annotated[str | None, typer.Option(
        help="Verifier key (text or file) to check checkpoints against; default: the configured key."
    )] = None,
) -> None:
    """Recompute every entry hash, chain link, tree node and the signed root from the database."""
    import asyncio

    from service.ledger.checkpoint import Verifier, raw_public_key

    settings = _settings()
    if key is not None:
        verifier = _verifier(key)
    else:
        from service.keys import load_keys

        verifier = Verifier.for_public_key(
            settings.log_origin, raw_public_key(load_keys(settings).signing_key)
        )
    findings = asyncio.run(_run_audit(settings.resolved_database_url, verifier))
    for finding in findings:
        typer.secho(str(finding), fg=typer.colors.RED)
    if findings:
        typer.secho(f"audit FAILED: {len(findings)} finding(s)", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.secho("audit passed: every entry, link, node and the signed root check out",
                fg=typer.colors.GREEN)


async def _run_audit(url: str, verifier: object) -> list[object]:
    from rich.progress import Progress

    from service.db import make_engine
    from service.ledger import audit as ledger_audit

    engine = make_engine(url)
    findings: list[object] = []
    try:
        async with engine.connect() as connection:
            total = await ledger_audit.count_work(connection)
            with Progress(transient=True, disable=total < 50_000) as progress:
                task = progress.add_task("auditing", total=total)
                async for finding in ledger_audit.audit(
                    connection, verifier, lambda n: progress.advance(task, n)  # type: ignore[arg-type]
                ):
                    findings.append(finding)
    finally:
        await engine.dispose()
    return findings


@app.command()
def export(
    token: Annotated[str, typer.Option(envvar="SEENBY_TOKEN", help="A regulator's bearer token.")],
    url: Annotated[str, typer.Option(envvar="SEENBY_URL", help="The seenby server.")]
    = "http://127.0.0.1:8000",
    out: Annotated[str | None, typer.Option(
        "--out", "-o", help="The data file (default seenby-export.<format>); the manifest is written "
        "beside it as <out>.manifest.json.")] = None,
    customer_id: Annotated[str | None, typer.Option(help="One customer's entries only.")] = None,
    since: Annotated[str | None, typer.Option(help="recorded_at >= since (RFC 3339).")] = None,
    until: Annotated[str | None, typer.Option(help="recorded_at < until (RFC 3339).")] = None,
    kind: Annotated[str, typer.Option(help="access, another kind of entry, or all.")] = "access",
    format: Annotated[str, typer.Option(help="jsonl or csv.")] = "jsonl",
    tree_size: Annotated[int | None, typer.Option(help="Cut at this signed tree size (default: latest).")]
    = None,
) -> None:
    """Download an export and its manifest side by side; run it again to resume an interrupted one."""
    import asyncio
    from pathlib import Path

    import httpx
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from service.exports.download import (
        Downloaded,
        DownloadError,
        ExportRequest,
        RichReporter,
        download,
    )

    if format not in ("jsonl", "csv"):
        raise typer.BadParameter("jsonl or csv", param_hint="--format")
    request = ExportRequest(customer_id=customer_id, since=since, until=until, kind=kind, format=format)
    data = Path(out or f"seenby-export.{format}")

    async def run() -> Downloaded:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                     timeout=httpx.Timeout(30.0, read=600.0)) as client:
            with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
                          transient=False) as progress:
                return await download(client, request, data, tree_size=tree_size,
                                      reporter=RichReporter(progress))

    try:
        result = asyncio.run(run())
    except DownloadError as exc:
        typer.secho(f"export failed: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    typer.secho(f"{'resumed and ' if result.resumed else ''}wrote {result.data} ({result.count} entries, "
                f"tree size {result.tree_size}) and {result.manifest}; check them with: seenby verify "
                f"export {result.data} --manifest {result.manifest} --key <the log's verifier key>",
                fg=typer.colors.GREEN)


verify_app = typer.Typer(help="Check the log offline, or against a server, with only the verifier key.",
                         no_args_is_help=True)
app.add_typer(verify_app, name="verify")

KeyOption = Annotated[str, typer.Option("--key", help="The note verifier key, as text or a file path.")]


def _read(text_or_path: str) -> str:
    from pathlib import Path

    path = Path(text_or_path)
    if len(text_or_path) < 4096 and path.is_file():
        return path.read_text()
    return text_or_path


def _verifier(key: str) -> object:
    from service import verify

    try:
        return verify.load_verifier(_read(key))
    except verify.VerificationError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


def _verdict(check: object) -> None:
    from service.verify import VerificationError

    try:
        message = check()  # type: ignore[operator]
    except (VerificationError, KeyError, ValueError, TypeError) as exc:
        typer.secho(f"FAILED: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    typer.secho(f"OK: {message}", fg=typer.colors.GREEN)


@verify_app.command("checkpoint")
def verify_checkpoint(note: Annotated[str, typer.Argument(help="Checkpoint file (or - for stdin).")],
                      key: KeyOption) -> None:
    """Check a checkpoint's signature."""
    import sys

    from service import verify

    verifier = _verifier(key)
    text = sys.stdin.read() if note == "-" else _read(note)

    def check() -> str:
        cp = verify.checkpoint(text, verifier)  # type: ignore[arg-type]
        return f"{cp.origin} at size {cp.size}, root {cp.root_hash.hex()}"

    _verdict(check)


@verify_app.command("entry")
def verify_entry(document: Annotated[str, typer.Argument(help="JSON of GET .../entries/{hash}.")],
                 key: KeyOption) -> None:
    """Check an entry's hash and its inclusion in the signed checkpoint it carries."""
    import json

    from service import verify

    verifier = _verifier(key)

    def check() -> str:
        body = json.loads(_read(document))
        cp = verify.entry(body, verifier)  # type: ignore[arg-type]
        return f"entry {body['entry_hash']} is leaf {body['log_index']} of the signed tree of {cp.size}"

    _verdict(check)


@verify_app.command("consistency")
def verify_consistency(
    old: Annotated[str, typer.Argument(help="The older checkpoint (file).")],
    new: Annotated[str | None, typer.Argument(help="The newer checkpoint (file); with --url, fetched.")]
    = None,
    key: KeyOption = "",
    proof: Annotated[str | None, typer.Option(help="JSON of /v1/log/proof/consistency.")] = None,
    url: Annotated[str | None, typer.Option(help="A seenby server to fetch the rest from.")] = None,
) -> None:
    """Check that a newer checkpoint extends an older one (append-only growth)."""
    import json

    import httpx

    from service import verify

    verifier = _verifier(key)

    def check() -> str:
        old_cp = verify.checkpoint(_read(old), verifier)  # type: ignore[arg-type]
        if url:
            new_text = httpx.get(f"{url}/v1/log/checkpoint", timeout=10).text if new is None else _read(new)
        elif new is not None:
            new_text = _read(new)
        else:
            raise verify.VerificationError("give the newer checkpoint, or --url")
        new_cp = verify.checkpoint(new_text, verifier)  # type: ignore[arg-type]
        if proof:
            hashes = json.loads(_read(proof))["hashes"]
        elif url and 0 < old_cp.size < new_cp.size:
            response = httpx.get(f"{url}/v1/log/proof/consistency",
                                 params={"first": old_cp.size, "second": new_cp.size}, timeout=10)
            response.raise_for_status()
            hashes = response.json()["hashes"]
        else:
            hashes = []
        verify.consistency(old_cp, new_cp, hashes)
        return f"checkpoint {new_cp.size} extends checkpoint {old_cp.size}"

    _verdict(check)


@verify_app.command("chain")
def verify_chain(history: Annotated[str, typer.Argument(
    help="JSON of a customer's whole chain: the items of /entries (a list, or {\"items\": [...]}).")]
) -> None:
    """Check a customer's saved chain: every hash, and every link from customer_seq 0."""
    import json

    from service import verify

    def check() -> str:
        body = json.loads(_read(history))
        items = body["items"] if isinstance(body, dict) else body
        return f"chain of {verify.chain(items)} entries is intact"

    _verdict(check)


@verify_app.command("export")
def verify_export(
    data: Annotated[str, typer.Argument(help="The data (JSONL or CSV), as `seenby export` saved it.")],
    key: KeyOption,
    manifest: Annotated[str | None, typer.Option(help="Its manifest (default: DATA.manifest.json).")]
    = None,
) -> None:
    """Check an export offline: signature, every entry's hash, fields and inclusion, count, digest, chain."""
    from pathlib import Path

    from rich.progress import Progress

    from service import verify

    verifier = _verifier(key)
    data_path = Path(data)
    manifest_path = Path(manifest or f"{data}.manifest.json")
    for path in (data_path, manifest_path):
        if not path.is_file():
            typer.secho(f"FAILED: {path} is not a file", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
    size = data_path.stat().st_size
    with Progress(transient=True, disable=size < 50_000_000) as progress:
        task = progress.add_task("verifying", total=size)
        _verdict(lambda: verify.export(data_path, manifest_path, verifier,  # type: ignore[arg-type]
                                       lambda n: progress.advance(task, n)))


if __name__ == "__main__":
    app()
