"""The `seenby` command: serve, migrate, token, audit, verify, export."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from service.settings import Settings

if TYPE_CHECKING:
    import httpx
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from service.ledger.checkpoint import Checkpoint, Verifier
    from service.witness.policy import Policy

app = typer.Typer(
    help="seenby: an append-only, verifiable record of every access to customers' camera clips.\n\n"
    "Configured by SEENBY_* environment variables; with none, it runs on SQLite in ./.seenby "
    "with development keys generated there on first use.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings(**overrides: object) -> Settings:
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            setting = f"SEENBY_{str(error['loc'][0]).upper()}: " if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            typer.secho(f"configuration error: {setting}{message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
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
    """Run the HTTP API. In development (SEENBY_ENV unset) it first applies the migrations, on SQLite in
    the data folder (SEENBY_DATA_DIR, default ./.seenby, where development keys and secrets are
    generated too) unless SEENBY_DATABASE_URL says otherwise; in production (SEENBY_ENV=production)
    run `seenby migrate` first. Every setting is a SEENBY_* environment variable, such as
    SEENBY_DELETION_SERVICES (the services that carry out deletions): README.md "Configuration"
    lists them all."""
    import uvicorn

    from service.db import is_sqlite
    from service.keys import KeyConfigurationError, load_keys
    from service.migrate import upgrade
    from service.witness.policy import PolicyError, load_policy

    settings = _settings()
    if workers > 1 and is_sqlite(settings.resolved_database_url):
        _usage_error("--workers above 1 needs PostgreSQL: SQLite has one writer per file, and each "
                     "worker would integrate the log on its own")
    try:
        load_keys(settings)
    except (KeyConfigurationError, OSError, ValueError) as exc:
        typer.secho(f"key error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    try:
        load_policy(settings.witness_policy_file)
    except PolicyError as exc:
        typer.secho(f"witness policy error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    if settings.env == "development":
        upgrade(settings)
    uvicorn.run(
        "service.main:create_app", factory=True, host=host, port=port, workers=workers,
        proxy_headers=False, server_header=False, log_level="info", access_log=access_log,
        http="service.slow_clients:HeaderDeadline",
    )


@app.command()
def migrate() -> None:
    """Apply schema migrations (as SEENBY_MIGRATION_DATABASE_URL, the owner role) and the app role's
    grants; run it once per deploy, before `seenby serve`. Safe to run again."""
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
    open_page: Annotated[bool, typer.Option(
        "--open", help="Customers only: print the customer page's URL with the token and the log's "
                       "verifier key in its fragment, as a host app would open it.")] = False,
    url: Annotated[str, typer.Option(envvar="SEENBY_URL", help="With --open: where seenby serves.")]
    = "http://127.0.0.1:8000",
    lang: Annotated[str | None, typer.Option(help="With --open: the page's language (en, de).")] = None,
) -> None:
    """Mint a development token (HS256, signed with SEENBY_JWT_SECRET, else with the secret generated
    into the data folder, SEENBY_DATA_DIR or ./.seenby: run it where `seenby serve` runs) and print
    it; send it as `Authorization: Bearer <token>`."""
    import base64
    from urllib.parse import urlencode

    from service.auth import Role, mint_token
    from service.keys import DEV_JWT_SECRET_FILE, KeyConfigurationError, load_keys
    from service.ledger.checkpoint import raw_public_key, verifier_key

    if role not in {r.value for r in Role}:
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role")
    settings = _settings()
    if not settings.uses_hmac:
        typer.secho("tokens can only be minted for HS256 configurations", fg="red", err=True)
        raise typer.Exit(2)
    if open_page and role != "customer":
        raise typer.BadParameter("the customer page is for customers: use --role customer",
                                 param_hint="--open")
    if not settings.jwt_secret and not (settings.data_dir / DEV_JWT_SECRET_FILE).exists():
        typer.secho(f"note: no secret in {settings.data_dir} yet, so a new one is made there; a server "
                    "using another data folder will refuse this token", fg="yellow", err=True)
    try:
        keys = load_keys(settings)
    except (KeyConfigurationError, OSError, ValueError) as exc:
        _usage_error(f"key error: {exc}")
    minted = mint_token(settings, keys, role=role, subject=sub, ttl_seconds=ttl, jurisdiction=jurisdiction)
    if not open_page:
        typer.echo(minted)
        return
    # The fragment never reaches a server; the page takes it out of the address bar at once.
    fragment = {"token": minted, "key": verifier_key(settings.log_origin, raw_public_key(keys.signing_key)),
                **({"lang": lang} if lang else {})}
    if settings.witness_policy_file:
        fragment["policy"] = base64.urlsafe_b64encode(settings.witness_policy_file.read_bytes()).decode()
    typer.echo(f"{url.rstrip('/')}/app/#{urlencode(fragment)}")


@app.command()
def audit(
    key: Annotated[str | None, typer.Option(
        help="Verifier key (text or file) to check checkpoints against; default: the configured key."
    )] = None,
) -> None:
    """Recompute every entry hash, chain link, tree node and the signed root from the database, and
    name every entry an edit behind the service's back touched; exits 1 if there is any finding."""

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from service.ledger.checkpoint import Verifier, raw_public_key
    from service.migrate import applied_revision

    settings = _settings()
    verifier = _verifier(key) if key is not None else None  # a mistyped key file is named first
    database = make_url(settings.resolved_database_url).render_as_string()  # the password hidden
    try:
        revision = applied_revision(settings.resolved_database_url)
    except (DBAPIError, OSError) as exc:
        _usage_error(f"cannot read the database at {database}: {getattr(exc, 'orig', None) or exc}")
    if revision is None:
        _usage_error(f"no seenby database at {database}: set SEENBY_DATABASE_URL (or run in the folder "
                     "whose .seenby holds it)")
    if verifier is None:
        from service.keys import load_keys

        verifier = Verifier.for_public_key(
            settings.log_origin, raw_public_key(load_keys(settings).signing_key)
        )
    findings = _run_audit(settings.resolved_database_url, verifier)
    for finding in findings:
        typer.secho(str(finding), fg=typer.colors.RED)
    if findings:
        typer.secho(f"audit FAILED: {len(findings)} finding(s)", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.secho("audit passed: every entry, link, node and the signed root check out",
                fg=typer.colors.GREEN)


def _run_audit(url: str, verifier: Verifier) -> list[object]:
    from rich.progress import Progress

    from service.ledger.audit import audit_side_by_side

    with Progress(transient=True) as progress:
        task = progress.add_task("auditing", total=None)
        findings = audit_side_by_side(url, verifier, progress=lambda done, total: progress.update(
            task, completed=done, total=total))
    return list(findings)


@app.command()
def export(
    token: Annotated[str, typer.Option(envvar="SEENBY_TOKEN", help="A regulator's bearer token.")],
    url: Annotated[str, typer.Option(envvar="SEENBY_URL", help="The seenby server's base URL.")]
    = "http://127.0.0.1:8000",
    out: Annotated[str | None, typer.Option(
        "--out", "-o", help="The data file (default seenby-export.<format>); the manifest is written "
        "beside it as <out>.manifest.json.")] = None,
    customer_id: Annotated[str | None, typer.Option(help="One customer's entries only.")] = None,
    since: Annotated[str | None, typer.Option(help="recorded_at >= since (RFC 3339).")] = None,
    until: Annotated[str | None, typer.Option(help="recorded_at < until (RFC 3339).")] = None,
    kind: Annotated[str, typer.Option(
        help="access, another kind of entry (consent_changed, deletion_requested, ...), or all.")]
    = "access",
    format: Annotated[str, typer.Option(help="jsonl or csv.")] = "jsonl",
    tree_size: Annotated[int | None, typer.Option(help="Cut at this signed tree size (default: latest).")]
    = None,
) -> None:
    """Download a regulator's export and its manifest side by side, then check them with `seenby verify
    export`. Interrupted? Run the same command again: it resumes where it stopped, at the same cut.
    Exits 2 when the server cannot be reached or refuses the export."""
    import asyncio

    import httpx
    from rich.console import Console
    from rich.progress import Progress

    from service.exports.download import (
        Downloaded,
        DownloadError,
        ExportRequest,
        RichReporter,
        ServerError,
        download,
    )

    if format not in ("jsonl", "csv"):
        raise typer.BadParameter("jsonl or csv", param_hint="--format")
    request = ExportRequest(customer_id=customer_id, since=since, until=until, kind=kind, format=format)
    data = Path(out or f"seenby-export.{format}")
    progress_console = Console(stderr=True)  # stdout carries the outcome alone

    async def run() -> Downloaded:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                     timeout=httpx.Timeout(30.0, read=600.0)) as client:
            with Progress(*RichReporter.columns(), console=progress_console,
                          disable=not progress_console.is_terminal) as progress:
                return await download(client, request, data, tree_size=tree_size,
                                      reporter=RichReporter(progress))

    try:
        result = asyncio.run(run())
    except (ServerError, httpx.InvalidURL) as exc:
        _usage_error(f"export failed: {exc}")
    except DownloadError as exc:
        typer.secho(f"export failed: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    typer.secho(f"{'resumed and ' if result.resumed else ''}wrote {result.data} "
                f"({plural(result.count, 'entry', 'entries')}, tree size {result.tree_size}) and "
                f"{result.manifest}; check them with: seenby verify export {result.data} --manifest "
                f"{result.manifest} --key <the log's verifier key>", fg=typer.colors.GREEN)


def _command_group(name: str, help: str) -> typer.Typer:
    group = typer.Typer(help=help, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


WitnessNameOption = Annotated[str, typer.Option(
    "--name", help="The witness's name, as readers' policies will know it (e.g. witness.example.org/w1).")]
WitnessKeyOption = Annotated[Path, typer.Option(
    "--key-file", help="The witness's Ed25519 private key (PEM); generated there on first use.")]


witness_app = _command_group(
    "witness", "Run a C2SP tlog-witness: cosign the checkpoints of the logs you name, each only if it "
    "is consistent with the last one you cosigned for that log. For a regulator or any third party: a "
    "log whose checkpoints it cosigns can no longer show one history to one reader and another to "
    "someone else.")

@witness_app.command("key")
def witness_key(name: WitnessNameOption, key_file: WitnessKeyOption = Path("witness-key.pem")) -> None:
    """Print the witness's verifier key (a tlog-cosignature v1 vkey), for logs' and readers' policies."""
    typer.echo(_witness_vkey(name, _witness_private_key(key_file)))


@witness_app.command("serve")
def witness_serve(
    name: WitnessNameOption,
    logs: Annotated[str, typer.Option(
        "--logs", help="The logs to witness: a tlog-policy file whose `log <vkey>` lines name them.")],
    key_file: WitnessKeyOption = Path("witness-key.pem"),
    state: Annotated[Path, typer.Option(
        help="SQLite file holding the last checkpoint cosigned for each log.")] = Path("witness.db"),
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8100,
    rate: Annotated[float, typer.Option(
        min=0, help="Submissions a second from one address (bursts of twice that); 0: no limit.")] = 20.0,
) -> None:
    """Serve POST /add-checkpoint (C2SP tlog-witness v1) at http://HOST:PORT, the submission prefix,
    and GET /<SHA-256 of a log's origin>/checkpoint, the last checkpoint cosigned for monitors."""
    from service.witness.policy import PolicyError, parse_policy
    from service.witness.server import WitnessConfig, by_origin, serve
    from service.witness.state import WitnessState

    try:
        witnessed = parse_policy(_file_bytes(logs), quorum_required=False).logs
    except PolicyError as exc:
        _usage_error(f"{logs}: {exc}")
    if not witnessed:
        _usage_error(f"{logs} names no log (`log <vkey>` lines)")
    private_key = _witness_private_key(key_file)
    vkey = _witness_vkey(name, private_key)
    config = WitnessConfig(name, private_key, by_origin(witnessed), WitnessState(state), rate)
    typer.echo(f"witness {vkey} for {', '.join(sorted(config.logs))}", err=True)
    serve(config, host, port)


def _witness_vkey(name: str, private_key: Ed25519PrivateKey) -> str:
    from service.ledger.checkpoint import COSIGNATURE_TYPE, raw_public_key, verifier_key

    try:
        return verifier_key(name, raw_public_key(private_key), COSIGNATURE_TYPE)
    except ValueError as exc:
        _usage_error(str(exc))


def _witness_private_key(path: Path) -> Ed25519PrivateKey:
    from service.keys import KeyConfigurationError, key_in_file

    try:
        return key_in_file(path, f"the witness key {path}")
    except (KeyConfigurationError, OSError, ValueError) as exc:
        _usage_error(f"key error: {exc}")


verify_app = _command_group(
    "verify", "Check what seenby served, offline, with only the log's verifier key (GET /v1/log/key).\n\n"
    "Each command prints OK and exits 0, or prints FAILED with every fault it found (naming the "
    "entries and fields at fault) and exits 1; a file that cannot be read, or a server that cannot "
    "be reached, exits 2.")

KeyOption = Annotated[str, typer.Option(
    "--key", help="The log's note verifier key (GET /v1/log/key), as a file or as the key text itself.")]
PolicyOption = Annotated[str | None, typer.Option(
    "--policy", help="A C2SP tlog-policy file: also require valid cosignatures by its quorum of witnesses "
                     "on the checkpoint.")]
# <name>+<8 hex key id>+<base64 key>: what `--key` takes as text rather than as a file name
VERIFIER_KEY_TEXT = re.compile(r"[^\s+]+\+[0-9a-fA-F]{8}\+\S+")


def _usage_error(message: str) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _file_text(name: str) -> str:
    """The text of the file named on the command line ("-" for stdin); a name that is not a file is
    said to be one, never read as the content itself."""
    if name == "-":
        return sys.stdin.read()
    path = Path(name)
    if not path.is_file():
        _usage_error(f"{name} is not a file")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _usage_error(f"{name} cannot be read: {exc}")


def _file_bytes(name: str) -> bytes:
    """As _file_text, undecoded: a tlog-policy file is octets, those with the high bit set opaque."""
    if name == "-":
        return sys.stdin.buffer.read()
    path = Path(name)
    if not path.is_file():
        _usage_error(f"{name} is not a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        _usage_error(f"{name} cannot be read: {exc}")


def _json_file(name: str) -> Any:
    text = _file_text(name)
    try:
        return json.loads(text)
    except ValueError as exc:
        _usage_error(f"{name} is not JSON ({exc})")


def _key_text(key: str) -> str:
    """--key names a file, or is the key's own text; a mistyped file name is never read as a key."""
    if not Path(key).is_file() and VERIFIER_KEY_TEXT.fullmatch(key.strip()):
        return key
    return _file_text(key)


def _verifier(key: str) -> Verifier:
    from service import verify

    try:
        return verify.load_verifier(_key_text(key))
    except verify.VerificationError as exc:
        _usage_error(f"{key}: {exc}")


def _policy(name: str | None) -> Policy | None:
    from service.witness.policy import PolicyError, parse_policy

    if name is None:
        return None
    try:
        return parse_policy(_file_bytes(name))
    except PolicyError as exc:
        _usage_error(f"{name}: {exc}")


def _witnessed(verdict: str, note: Callable[[], str], policy: Policy | None) -> str:
    """The verdict, once `--policy`'s quorum has cosigned the checkpoint it rests on."""
    from service import verify

    return verdict if policy is None else f"{verdict}; {verify.witnessed(note(), policy)}"


def _server_get(url: str, path: str, params: dict[str, int] | None = None) -> httpx.Response:
    """A GET to a seenby server, or one line saying why it failed (never a traceback)."""
    import httpx

    try:
        response = httpx.get(f"{url.rstrip('/')}{path}", params=params, timeout=10)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        _usage_error(f"cannot reach the seenby server at {url}: {exc or type(exc).__name__}")
    if response.status_code >= 400:
        _usage_error(f"the seenby server at {url} answered {path} with {response.status_code}: "
                     f"{_problem_detail(response)}")
    return response


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    return str(body.get("detail") or body.get("title")) if isinstance(body, dict) else str(body)[:300]


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        _usage_error(f"{response.url} did not answer JSON: is it a seenby server?")


def _proof_hashes(document: Any, where: str) -> list[Any]:
    hashes = document.get("hashes") if isinstance(document, dict) else None
    if not isinstance(hashes, list):
        _usage_error(f"{where} is not a consistency proof: it has no list of 'hashes'")
    return hashes


def _verdict(check: Callable[[], str]) -> None:
    from service.verify import VerificationError

    try:
        message = check()
    # A document of the wrong shape that slipped past the checks' own validation still fails, never
    # with a traceback.
    except (VerificationError, KeyError, ValueError, TypeError, AttributeError) as exc:
        typer.secho(f"FAILED: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    typer.secho(f"OK: {message}", fg=typer.colors.GREEN)


SavedCheckpoint = Annotated[str, typer.Argument(
    help="A checkpoint as served by GET /v1/log/checkpoint, saved to a file (or - for stdin).")]


@verify_app.command("checkpoint")
def verify_checkpoint(note: SavedCheckpoint, key: KeyOption, policy: PolicyOption = None) -> None:
    """Check a checkpoint's signature: the log's operator really signed this tree size and root (and,
    with --policy, its witnesses saw the same)."""
    from service import verify

    verifier, text, quorum = _verifier(key), _file_text(note), _policy(policy)
    _verdict(lambda: _witnessed(_described(verify.checkpoint(text, verifier)), lambda: text, quorum))


@verify_app.command("entry")
def verify_entry(
    document: Annotated[str, typer.Argument(help="An entry as served by GET /v1/customers/{id}/entries/"
                                                 "{entry_hash} (or /v1/me/entries/...), saved to a file.")],
    key: KeyOption,
    policy: PolicyOption = None,
) -> None:
    """Check one entry: its hash, every field shown against its canonical bytes, and its inclusion in
    the signed checkpoint it carries."""
    from service import verify

    verifier, body, quorum = _verifier(key), _json_file(document), _policy(policy)
    _verdict(lambda: _witnessed(f"entry {body['entry_hash']} is leaf {body['log_index']} of the signed "
                                f"tree of {verify.entry(body, verifier).size}",
                                lambda: body["proof"]["checkpoint"], quorum))


@verify_app.command("consistency")
def verify_consistency(
    old: Annotated[str, typer.Argument(help="The older checkpoint you saved (a file).")],
    key: KeyOption,
    new: Annotated[str | None, typer.Argument(
        help="The newer checkpoint (a file); with --url, the server's latest when left out.")] = None,
    proof: Annotated[str | None, typer.Option(
        help="The proof, as served by GET /v1/log/proof/consistency?first=OLD&second=NEW, saved to a "
             "file; with --url, fetched when left out.")] = None,
    url: Annotated[str | None, typer.Option(help="A seenby server to fetch the newer checkpoint and the "
                                                 "proof from, e.g. https://seenby.example.")] = None,
) -> None:
    """Check that a newer checkpoint extends an older one: the log only grew, nothing was rewritten."""
    from service import verify

    verifier = _verifier(key)
    old_text = _file_text(old)
    if new is not None:
        new_text = _file_text(new)
    elif url:
        new_text = _server_get(url, "/v1/log/checkpoint").text
    else:
        _usage_error("give the newer checkpoint, or --url to fetch the latest")
    hashes = None if proof is None else _proof_hashes(_json_file(proof), proof)

    def check() -> str:
        old_cp = verify.checkpoint(old_text, verifier)
        new_cp = verify.checkpoint(new_text, verifier)
        proof_hashes = hashes
        if proof_hashes is None:
            if url and 0 < old_cp.size < new_cp.size:
                served = _server_get(url, "/v1/log/proof/consistency",
                                     {"first": old_cp.size, "second": new_cp.size})
                proof_hashes = _proof_hashes(_json_body(served), f"{url}'s proof")
            elif 0 < old_cp.size < new_cp.size:
                _usage_error("give the consistency proof with --proof, or --url to fetch it")
        verify.consistency(old_cp, new_cp, proof_hashes or [])
        return f"checkpoint {new_cp.size} extends checkpoint {old_cp.size}"

    _verdict(check)


@verify_app.command("chain")
def verify_chain(history: Annotated[str, typer.Argument(
    help="A customer's whole chain, saved from GET /v1/customers/{id}/entries (or /v1/me/entries), "
         "every page: a JSON list of the items, or {\"items\": [...]}.")]
) -> None:
    """Check a customer's saved chain: every entry's hash, every field shown against its canonical
    bytes, and every link from customer_seq 0. Needs no key: the chain vouches for itself, not for
    being in the signed log (check single entries with `seenby verify entry`)."""
    from service import verify

    body = _json_file(history)
    items = body.get("items") if isinstance(body, dict) else body
    if not isinstance(items, list):
        _usage_error(f"{history} is neither a list of entries nor {{\"items\": [...]}}")

    def check() -> str:
        count = verify.chain(items)
        return f"chain of {plural(count, 'entry', 'entries')} is intact"

    _verdict(check)


@verify_app.command("completeness")
def verify_completeness(
    proof: Annotated[str, typer.Argument(
        help="The proof, saved from GET /v1/customers/{id}/completeness (or /v1/me/completeness).")],
    chain: Annotated[str, typer.Option(
        "--chain", help="The customer's whole chain, saved from GET /v1/customers/{id}/entries, every "
                        "page: a JSON list of the items, or {\"items\": [...]}.")],
    key: KeyOption,
    customer: Annotated[str | None, typer.Option(
        help="The customer's id; needed only when its chain is empty (a proof of absence).")] = None,
    policy: PolicyOption = None,
) -> None:
    """Check that a customer's chain is everything the log holds about it, up to a signed size: the
    checkpoint's signature, the index leaf's inclusion, the index proof for the customer's key, the
    head's inclusion, and the chain, dense and linked from customer_seq 0 to the head."""
    from service import verify

    verifier = _verifier(key)
    document = _json_file(proof)
    body = _json_file(chain)
    items = body.get("items") if isinstance(body, dict) else body
    if not isinstance(items, list):
        _usage_error(f"{chain} is neither a list of entries nor {{\"items\": [...]}}")
    quorum = _policy(policy)
    _verdict(lambda: _witnessed(verify.completeness(document, items, verifier, customer),
                                lambda: document["checkpoint"], quorum))


@verify_app.command("export")
def verify_export(
    data: Annotated[str, typer.Argument(help="The data (JSONL or CSV), as `seenby export` saved it.")],
    key: KeyOption,
    manifest: Annotated[str | None, typer.Option(help="Its manifest (default: DATA.manifest.json).")]
    = None,
    completeness: Annotated[str | None, typer.Option(
        help="A completeness proof for the export's customer (GET /v1/customers/{id}/completeness): "
             "for one customer's export of every kind, then also checks that the export is complete.")]
    = None,
    policy: PolicyOption = None,
) -> None:
    """Check an export offline: the checkpoint's signature, every entry's hash, shown fields and
    inclusion, the count and digest, and for one customer's export of every kind, the whole chain
    (and, given its completeness proof, that nothing of the customer's is left out)."""
    from rich.progress import Progress

    from service import verify
    from service.collector import collect_rarely
    from service.exports.check import manifest_checkpoint

    collect_rarely()
    verifier = _verifier(key)
    data_path = Path(data)
    manifest_path = Path(manifest or f"{data}.manifest.json")
    for path in (data_path, manifest_path):
        if not path.is_file():
            _usage_error(f"{path} is not a file")
    proof = _json_file(completeness) if completeness is not None else None
    quorum = _policy(policy)
    size = data_path.stat().st_size
    with Progress(transient=True, disable=size < 50_000_000) as progress:
        task = progress.add_task("verifying", total=size)
        _verdict(lambda: _witnessed(
            verify.export(data_path, manifest_path, verifier, lambda n: progress.advance(task, n), proof),
            lambda: manifest_checkpoint(manifest_path), quorum))


def _described(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.origin} at size {checkpoint.size}, root {checkpoint.root_hash.hex()}"


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


if __name__ == "__main__":
    app()
