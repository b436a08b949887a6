"""The ``oceanmart`` command line.

This module is the composition root: it imports the other packages lazily, inside the
commands that need them, so ``oceanmart --help`` is fast and no package below depends
on the CLI. Every command builds one Settings object and passes it on. Errors of the
error tree are printed as one line on stderr with a non-zero exit code.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from oceanmart.errors import OceanMartError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from oceanmart.settings import Settings

app = typer.Typer(
    name="oceanmart",
    help="OceanMart: ocean data products, quotes, payments and a verifiable access ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
accounts_app = typer.Typer(
    help="Accounts of buyers, providers and operators.", no_args_is_help=True
)
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
ent_app = typer.Typer(
    help="Grant or revoke an account's access to a product.", no_args_is_help=True
)
products_app = typer.Typer(help="Published products.", no_args_is_help=True)
corpus_app = typer.Typer(help="The real-data corpus (pinned, hash-checked).", no_args_is_help=True)
areas_app = typer.Typer(
    help="Named sea areas, islands and countries (polygons in the catalog).", no_args_is_help=True
)
credits_app = typer.Typer(
    help="Prepaid credits: grant (major units), balances, journal check.", no_args_is_help=True
)
books_app = typer.Typer(
    help="Price books: show a product's rules, save new ones (a new version).",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(credits_app, name="credits")
app.add_typer(books_app, name="price-books")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(ent_app, name="entitlements")
app.add_typer(products_app, name="products")
app.add_typer(corpus_app, name="corpus")
app.add_typer(areas_app, name="sea-areas")
ledger_app = typer.Typer(
    help="The append-only ledger: checkpoints, anchors, receipts, audits.", no_args_is_help=True
)
app.add_typer(ledger_app, name="ledger")

SPECS = Path(__file__).resolve().parent.parent / "ingest" / "specs"
LEVITUS_SPEC = SPECS / "levitus-climatology.yaml"
SEA_AREAS = SPECS / "sea-areas.geojson"


def _settings(**overrides: object) -> Settings:
    from oceanmart.logging import configure_logging
    from oceanmart.settings import load_settings

    settings = load_settings(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _engine(settings: Settings) -> Engine:
    from oceanmart.db import make_engine

    return make_engine(settings.database_url)


def _sessions(settings: Settings, *, check_schema: bool = True) -> sessionmaker[Session]:
    from oceanmart.db import make_sessionmaker, schema_is_current

    engine = _engine(settings)
    if check_schema and not schema_is_current(engine):
        raise OceanMartError("the database schema is not up to date: run `oceanmart db upgrade`")
    return make_sessionmaker(engine)


def _out(line: str = "") -> None:
    typer.echo(line)


# -- db -------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations to OCEANMART_DATABASE_URL (SQLite under ./var by default)."""
    from oceanmart.db import current_revision, upgrade

    settings = _settings()
    engine = _engine(settings)
    upgrade(engine, revision)
    _out(f"database at revision {current_revision(engine)}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    from oceanmart.db import current_revision

    _out(str(current_revision(_engine(_settings()))))


# -- accounts, keys, entitlements -----------------------------------------------------


@accounts_app.command("create")
def accounts_create(
    name: str,
    kind: Annotated[str, typer.Option(help="enterprise | research | government | provider")],
) -> None:
    """Create an account."""
    from oceanmart.accounts import create_account
    from oceanmart.db import transaction

    with transaction(_sessions(_settings())) as session:
        info = create_account(session, name, kind)
    _out(f"created account {info.name} ({info.kind.value}, id {info.id})")


@accounts_app.command("list")
def accounts_list() -> None:
    """List accounts."""
    from oceanmart.accounts import list_accounts

    with _sessions(_settings())() as session:
        for a in list_accounts(session):
            _out(f"{a.name}\t{a.kind.value}\t{a.created_at.isoformat()}")


def _expiry(days: float | None) -> datetime | None:
    return None if days is None else datetime.now(UTC) + timedelta(days=days)


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Option(help="Account name.")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: catalog:read,data:read,orders:write,admin")
    ] = "catalog:read,data:read",
    label: Annotated[str, typer.Option(help="A note to recognise the key by.")] = "",
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after N days.")] = None,
) -> None:
    """Create a key. The key is printed alone on the last line, once; only its hash is kept."""
    from oceanmart.accounts import create_key
    from oceanmart.db import transaction

    with transaction(_sessions(_settings())) as session:
        info, raw = create_key(
            session, account, scopes, label=label, expires_at=_expiry(expires_in_days)
        )
    _out(f"key id {info.id} for {info.account}, scopes {','.join(info.scopes)}")
    _out("the key is shown once; store it now:")
    _out(raw)


@keys_app.command("list")
def keys_list(
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
) -> None:
    """List keys (never the secrets)."""
    from oceanmart.accounts import list_keys

    with _sessions(_settings())() as session:
        for k in list_keys(session, account):
            state = "revoked" if k.revoked_at else "active"
            expires = k.expires_at.isoformat() if k.expires_at else "never"
            used = k.last_used_at.isoformat() if k.last_used_at else "never"
            scopes = ",".join(k.scopes)
            _out(f"{k.id}\t{k.account}\t{scopes}\t{state}\texpires {expires}\tused {used}")


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id (the part after `om_`); effective on the next request."""
    from oceanmart.accounts import revoke_key
    from oceanmart.db import transaction

    with transaction(_sessions(_settings())) as session:
        info = revoke_key(session, key_id)
    _out(f"revoked key {info.id} of {info.account}")


@ent_app.command("grant")
def entitlements_grant(
    account: Annotated[str, typer.Option(help="Account name.")],
    product: Annotated[str, typer.Option(help="Product id.")],
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after N days.")] = None,
) -> None:
    """Give an account access to a product's data."""
    from oceanmart.db import transaction
    from pricing.entitlements import grant

    with transaction(_sessions(_settings())) as session:
        info = grant(
            session, account, product, granted_by="cli", expires_at=_expiry(expires_in_days)
        )
    _out(f"entitlement {info.id}: {info.account} may read {info.product}")


@ent_app.command("list")
def entitlements_list(account: Annotated[str | None, typer.Option()] = None) -> None:
    """List entitlements."""
    from pricing.entitlements import list_entitlements

    with _sessions(_settings())() as session:
        for e in list_entitlements(session, account):
            state = "revoked" if e.revoked_at else "active"
            _out(f"{e.id}\t{e.account}\t{e.product}\t{e.kind}\t{state}")


@ent_app.command("revoke")
def entitlements_revoke(entitlement_id: int) -> None:
    """Revoke an entitlement."""
    from oceanmart.db import transaction
    from pricing.entitlements import revoke

    with transaction(_sessions(_settings())) as session:
        info = revoke(session, entitlement_id)
    _out(f"revoked entitlement {info.id} ({info.account} on {info.product})")


# -- credits and price books ----------------------------------------------------------


@credits_app.command("grant")
def credits_grant(
    account: Annotated[str, typer.Option(help="Account name.")],
    amount: Annotated[str, typer.Option(help="Major units, e.g. 1000 or 12.34.")],
    currency: Annotated[str, typer.Option(help="CNY or USD.")] = "CNY",
    memo: Annotated[str, typer.Option(help="A note kept in the journal.")] = "",
) -> None:
    """Add prepaid credits to an account (a journal entry)."""
    from oceanmart.db import transaction
    from pricing.credits import grant_credits
    from pricing.money import from_major

    money = from_major(amount, currency)
    with transaction(_sessions(_settings())) as session:
        entry = grant_credits(session, account, money, created_by="cli", memo=memo)
    _out(
        f"granted {entry.amount.display()} {entry.amount.currency.value} to {entry.account}; "
        f"balance {entry.balance.display()}"
    )


@credits_app.command("balance")
def credits_balance(account: Annotated[str, typer.Option(help="Account name.")]) -> None:
    """Print an account's balances, one currency a line."""
    from oceanmart.accounts import get_account
    from pricing.credits import balances

    with _sessions(_settings())() as session:
        rows = balances(session, get_account(session, account).id)
    for m in rows:
        _out(f"{m.currency.value}\t{m.major}")
    if not rows:
        _out("CNY\t0.00")


@credits_app.command("check")
def credits_check() -> None:
    """Check the journal: every entry balanced, every balance equal to its postings."""
    from pricing.credits import check_journal

    with _sessions(_settings())() as session:
        result = check_journal(session)
    _out(f"{result.entries} entries; unbalanced {result.unbalanced_entries or 'none'}")
    for acc, cur, table, journal in result.mismatched_balances:
        _out(f"MISMATCH {acc} {cur}: balance {table}, journal {journal}")
    if not result.ok:
        raise typer.Exit(1)


@books_app.command("show")
def books_show(product: str) -> None:
    """Print the product's current price book as JSON."""
    import json

    from pricing.books import current_book

    with _sessions(_settings())() as session:
        book = current_book(session, product)
    _out(f"# {book.product_id} version {book.version} sha256 {book.sha256}")
    _out(json.dumps(book.rules.model_dump(mode="json"), indent=2, ensure_ascii=False))


@books_app.command("set")
def books_set(
    product: str,
    rules: Annotated[Path, typer.Argument(help="A JSON file of rules (see the README).")],
    note: Annotated[str, typer.Option(help="Why the prices changed.")] = "",
) -> None:
    """Save rules as the product's next price-book version."""
    import json

    from oceanmart.db import transaction
    from pricing.books import parse_rules, save_book

    try:
        doc = json.loads(rules.read_text())
    except (OSError, ValueError) as exc:
        raise OceanMartError(f"cannot read rules from {rules}: {exc}") from None
    from ledger import Ledger

    parsed = parse_rules(doc)
    settings = _settings()
    with transaction(_sessions(settings)) as session:
        book = save_book(
            session, product, parsed, created_by="cli", ledger=Ledger(settings), note=note
        )
    _out(f"{book.product_id}: price book version {book.version} ({book.sha256[:12]})")


# -- products and ingest --------------------------------------------------------------


@products_app.command("list")
def products_list() -> None:
    """List published products with their current version."""
    from catalog.products import list_products

    with _sessions(_settings())() as session:
        for p in list_products(session):
            version = p.version.id if p.version else "-"
            _out(f"{p.id}\t{version}\t{p.theme}\t{p.title}")


@products_app.command("show")
def products_show(product_id: str) -> None:
    """Show one product, its version and variables."""
    from catalog.products import get_product

    with _sessions(_settings())() as session:
        p = get_product(session, product_id)
    _out(f"{p.id}: {p.title} / {p.title_zh}")
    _out(f"theme {p.theme}, license {p.license}, provider {p.provider}")
    if p.version:
        _out(f"version {p.version.id}, dims {p.version.dims}, {p.version.stored_bytes} bytes")
        for v in p.version.variables:
            _out(f"  {v.name}\t{v.standard_name}\t{v.units}\t{','.join(v.dims)}")


@app.command()
def ingest(
    sources: Annotated[
        list[Path], typer.Argument(help="SPEC.yaml, or source files with --product")
    ],
    product: Annotated[
        str | None, typer.Option(help="Product id when ingesting files without a spec.")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="dask.distributed scheduler address (default OCEANMART_DASK_SCHEDULER)."),
    ] = None,
) -> None:
    """Ingest a product from a spec file, or from source files with an inferred spec."""
    import gc
    from concurrent.futures import ThreadPoolExecutor

    # Start-up makes ~1M long-lived objects (imports): no collections while it runs; the
    # pipeline freezes them and turns the collector back on (``ingest.pipeline._resume_gc``).
    gc.disable()
    settings = _settings()
    # The catalog (SQLAlchemy, Alembic's schema check) is opened in a thread while the
    # data are read and written; the pipeline waits for it before publishing anything.
    catalog = ThreadPoolExecutor(1, thread_name_prefix="catalog")
    sessions = catalog.submit(_sessions, settings)
    catalog.shutdown(wait=False)

    from catalog.store import DataStore
    from ingest import infer_spec, load_spec
    from ingest import ingest as run

    if product is None:
        if len(sources) != 1 or sources[0].suffix.lower() not in (".yaml", ".yml"):
            raise OceanMartError("give one SPEC.yaml, or source files with --product ID")
        spec = load_spec(sources[0])
    else:
        spec = infer_spec(product, sources)
        typer.echo("# inferred spec (save it and edit it for a reproducible ingest):", err=True)
        typer.echo(spec.to_yaml(), err=True)
    result = run(
        spec,
        sessions=sessions,
        store=DataStore.from_settings(settings),
        corpus_dir=settings.corpus_dir,
        progress=lambda msg: typer.echo(f"[ingest] {msg}", err=True),
        show_bar=sys.stderr.isatty(),
        scheduler=scheduler or settings.dask_scheduler,
    )
    state = "published" if result.created else "already published"
    _out(
        f"{state} {result.product_id} version {result.version_id}: {result.value_count} values, "
        f"{result.bytes_read} bytes read, {result.stored_bytes} bytes written (both copies, "
        f"{result.compression_ratio:.1f}x compression), {result.seconds:.1f} s"
    )


# -- sea areas -----------------------------------------------------------------------


@areas_app.command("import")
def areas_import(
    source: Annotated[Path, typer.Argument(help="GeoJSON (id, name_en, name_zh) or .shp file")],
    kind: Annotated[str, typer.Option(help="sea-area | island | country | land")] = "sea-area",
    id_field: Annotated[str, typer.Option(help="Shapefile attribute used as id.")] = "ISO_A3",
) -> None:
    """Store polygons in the catalog (an area with the same id is replaced)."""
    from catalog.sea_areas import save_areas
    from ingest.vector import read_geojson, read_shapefile
    from oceanmart.db import transaction

    sessions = _sessions(_settings())
    if source.suffix.lower() == ".shp":
        features = read_shapefile(source, id_field, kind)
    else:
        features = read_geojson(source, kind)
    with transaction(sessions) as session:
        saved = save_areas(session, features)
    _out(f"stored {len(saved)} {kind} polygon(s) from {source.name}")


@areas_app.command("islands")
def areas_islands(
    resolution: Annotated[str, typer.Option(help="GSHHS resolution: c (crude) or l (low)")] = "l",
    min_area_km2: Annotated[float, typer.Option(help="Skip smaller islands.")] = 1000.0,
) -> None:
    """Store GSHHS islands (land polygons smaller than a continent) from the corpus."""
    from catalog.sea_areas import save_areas
    from ingest.corpus import corpus_path
    from ingest.vector import islands
    from oceanmart.db import transaction

    settings = _settings()
    path = corpus_path(f"gshhs_{resolution}.dat", settings.corpus_dir)
    corpus_path(f"gshhsmeta_{resolution}.dat", settings.corpus_dir)
    with transaction(_sessions(settings)) as session:
        saved = save_areas(session, islands(path, min_area_km2))
    _out(f"stored {len(saved)} islands of at least {min_area_km2:g} km2 from {path.name}")


@areas_app.command("list")
def areas_list(kind: Annotated[str | None, typer.Option()] = None) -> None:
    """List stored areas."""
    from catalog.sea_areas import list_areas

    with _sessions(_settings())() as session:
        for a in list_areas(session, kind):
            w, s, e, n = a.bbox
            _out(f"{a.id}\t{a.kind}\t{a.name_en}\t{a.name_zh}\t[{w:g},{s:g},{e:g},{n:g}]")


# -- corpus ---------------------------------------------------------------------------


@corpus_app.command("fetch")
def corpus_fetch() -> None:
    """Fetch every corpus file (Debian packages) into OCEANMART_CORPUS_DIR and check hashes."""
    from ingest.corpus import FILES, corpus_path

    settings = _settings()
    for name in FILES:
        _out(str(corpus_path(name, settings.corpus_dir)))


@corpus_app.command("verify")
def corpus_verify() -> None:
    """Check cached corpus files against their pinned hashes; exit 1 on any mismatch."""
    from ingest.corpus import verify

    results = verify(_settings().corpus_dir)
    for name, ok in results.items():
        _out(f"{'ok' if ok else 'MISSING OR CHANGED'}\t{name}")
    if not all(results.values()):
        raise typer.Exit(1)


# -- ledger ---------------------------------------------------------------------------


@ledger_app.command("checkpoint")
def ledger_checkpoint(
    anchor: Annotated[
        bool, typer.Option("--anchor/--no-anchor", help="Also anchor on the chain.")
    ] = True,
) -> None:
    """Integrate queued records, sign a checkpoint of everything, and anchor it."""
    from ledger import Ledger
    from oceanmart.errors import ChainUnavailable

    settings = _settings()
    sessions = _sessions(settings)
    ledger = Ledger(settings)
    size = ledger.integrate(sessions)
    made = ledger.checkpoint(sessions, force=True)
    if made is None:
        state = "the ledger is empty" if size == 0 else "the latest checkpoint covers it"
        _out(f"ledger size {size}: {state}")
    else:
        _out(f"checkpoint size {made.size} root {made.root.hex()}")
    if anchor:
        try:
            sent = ledger.anchor(sessions)
        except ChainUnavailable as exc:
            _out(f"not anchored yet: {exc.detail} (anchoring catches up later)")
            return
        if made is None and size == 0:
            return
        where = ledger.latest_checkpoint(sessions).anchor
        if where is not None:
            _out(
                f"anchored ({sent} transaction(s) sent): chain {where.chain_id} "
                f"contract {where.contract} tx {where.tx_hash}"
            )


@ledger_app.command("anchor")
def ledger_anchor() -> None:
    """Anchor every checkpoint not yet on chain (and re-send what a chain reset lost)."""
    from ledger import Ledger

    settings = _settings()
    sessions = _sessions(settings)
    sent = Ledger(settings).anchor(sessions)
    _out(f"anchoring up to date ({sent} transaction(s) sent)")


@ledger_app.command("verify")
def ledger_verify(
    receipt: Annotated[Path, typer.Argument(help="A receipt JSON (GET /v1/receipts/{id}).")],
    chain_url: Annotated[
        str | None, typer.Option(help="Chain JSON-RPC URL (default: the receipt's rpc_url).")
    ] = None,
    contract: Annotated[
        str | None, typer.Option(help="Pin the anchor contract address you trust.")
    ] = None,
    key: Annotated[str | None, typer.Option(help="Pin the checkpoint verifier key.")] = None,
) -> None:
    """Verify a receipt with no database: leaf, inclusion proof, checkpoint signature and
    the root anchored on chain. Exit 0 only when every check passes."""
    import json

    from ledger import verify_receipt

    try:
        document = json.loads(receipt.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OceanMartError(f"cannot read {receipt}: {exc}") from None
    result = verify_receipt(document, chain_url=chain_url, contract=contract, verifier_key=key)
    for ok, message in result.checks:
        _out(f"{'ok' if ok else 'FAIL'}: {message}")
    if not result.ok:
        _out("receipt NOT verified")
        raise typer.Exit(1)
    _out("receipt verified")


@ledger_app.command("audit")
def ledger_audit(
    chain: Annotated[
        bool, typer.Option("--chain/--no-chain", help="Also compare with the chain's anchors.")
    ] = True,
) -> None:
    """Recompute the log from its stored leaves; compare with every stored node, signed
    checkpoint and chain anchor. Exit 1 on any difference."""
    from ledger import Ledger

    settings = _settings()
    report = Ledger(settings).audit(_sessions(settings), chain=chain)
    _out(
        f"{report.size} leaves, {report.checkpoints} checkpoints, "
        f"{report.anchors_checked} anchors checked"
    )
    for problem in report.problems:
        _out(f"PROBLEM: {problem}")
    if not report.ok:
        raise typer.Exit(1)
    _out("audit passed")


# -- serving --------------------------------------------------------------------------


def _run_server(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from api import create_app

    uvicorn.run(
        create_app(settings, freeze_gc=True),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default OCEANMART_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default OCEANMART_PORT.")] = None,
) -> None:
    """Run the HTTP API (the database must be migrated: `oceanmart db upgrade`)."""
    settings = _settings()
    _sessions(settings)  # refuses to start on an out-of-date schema
    _run_server(settings, host or settings.host, port if port is not None else settings.port)


@app.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the server.")] = True,
) -> None:
    """Run the marketplace on the embedded default: ./var, real sample data, keys printed."""
    from sqlalchemy import select

    from catalog.sea_areas import save_areas
    from catalog.store import DataStore
    from ingest import ingest as run
    from ingest import load_spec
    from ingest.vector import read_geojson
    from ledger import Ledger
    from oceanmart.accounts import create_account, create_key, get_account
    from oceanmart.db import make_sessionmaker, transaction, upgrade
    from oceanmart.errors import NotFound
    from pricing.books import EXAMPLE_RULES, parse_rules, save_book
    from pricing.credits import balance, grant_credits
    from pricing.entitlements import Entitlement, grant
    from pricing.money import Currency, from_major

    settings = _settings(demo=True)
    engine = _engine(settings)
    typer.echo("[demo] migrating the database", err=True)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    spec = load_spec(LEVITUS_SPEC)
    result = run(
        spec,
        sessions=sessions,
        store=DataStore.from_settings(settings),
        corpus_dir=settings.corpus_dir,
        progress=lambda msg: typer.echo(f"[demo] {msg}", err=True),
    )
    with transaction(sessions) as session:
        for name, kind in (("operator", "provider"), ("demo-buyer", "enterprise")):
            try:
                get_account(session, name)
            except NotFound:
                create_account(session, name, kind)
        _, admin_key = create_key(session, "operator", "admin", label="demo admin")
        _, buyer_key = create_key(
            session, "demo-buyer", "catalog:read,data:read,orders:write", label="demo buyer"
        )
        buyer = get_account(session, "demo-buyer")
        has = session.scalar(
            select(Entitlement.id).where(
                Entitlement.account_id == buyer.id,
                Entitlement.product_id == spec.id,
                Entitlement.revoked_at.is_(None),
            )
        )
        if has is None:
            grant(session, "demo-buyer", spec.id, granted_by="demo")
        save_areas(session, read_geojson(SEA_AREAS))
        book = save_book(
            session,
            spec.id,
            parse_rules(EXAMPLE_RULES),
            created_by="demo",
            ledger=Ledger(settings),
        )
        if balance(session, buyer.id, Currency.CNY).amount == 0:
            grant_credits(session, "demo-buyer", from_major("1000", "CNY"), created_by="demo")
        credit = balance(session, buyer.id, Currency.CNY)
    base = f"http://{host}:{port}"
    _out(f"OceanMart demo: product {result.product_id} version {result.version_id}")
    _out(f"  API docs     {base}/docs")
    _out(f"  products     {base}/v1/products")
    _out(
        f"  subset       {base}/v1/products/{spec.id}/subset"
        "?bbox=-10,-20,10,20&depth=0,100&variables=TEMP&format=netcdf"
    )
    _out(
        f"  sea area     {base}/v1/products/{spec.id}/subset"
        "?sea_area=zhoushan-fishing-ground&depth=0,50&variables=TEMP"
    )
    _out(f"  STAC         {base}/stac")
    _out(f"  EDR          {base}/edr/collections/{spec.id}/position?coords=POINT(-30%2010)&z=0/500")
    _out(f"  Zarr         {base}/zarr/products/{spec.id}  (xr.open_zarr, key in the headers)")
    _out(f"  price book   {spec.id} version {book.version} (oceanmart price-books show {spec.id})")
    _out(f"  credits      demo-buyer {credit.display()} {credit.currency.value}")
    _out(f"  console      {base}/console (sign in with the admin key)")
    _out(f"  ledger       {base}/v1/ledger  (receipts: {base}/v1/receipts/ACCESS_ID)")
    _out(f"  admin key    {admin_key}")
    _out(f"  buyer key    {buyer_key}")
    _out(f'  try: curl -H "Authorization: Bearer {buyer_key}" {base}/v1/products')
    _out(
        f'  quote: curl -H "Authorization: Bearer {buyer_key}" -H "Content-Type: application/json"'
        f' -d \'{{"product": "{spec.id}", "selection": {{"bbox": [120, 20, 130, 30]}}}}\' '
        f"{base}/v1/quotes"
    )
    sys.stdout.flush()
    if serve:
        _run_server(settings, host, port)


def main() -> None:
    """Entry point: run the CLI, turning our errors into one line and exit code 1."""
    try:
        app()
    except OceanMartError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
