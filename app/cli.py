"""The `sentinel` command line (command and option names are a contract)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import audit
from app.db import make_engine, make_sessionmaker, utc_now
from app.migrate import upgrade
from app.models import ApiKey, Organisation, User
from app.models.enums import ApiRole, OrganisationKind, UserRole
from app.security import generate_api_key, hash_password
from app.settings import Settings

cli = typer.Typer(
    help="Sentinel-NPS: early warning system for new psychoactive substances.", no_args_is_help=True
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
orgs_cli = typer.Typer(help="Organisations (labs, agencies, ministries).", no_args_is_help=True)
keys_cli = typer.Typer(help="API keys.", no_args_is_help=True)
users_cli = typer.Typer(help="Console users (officers, admins).", no_args_is_help=True)
references_cli = typer.Typer(help="The reference-standard library.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(orgs_cli, name="orgs")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(users_cli, name="users")
cli.add_typer(references_cli, name="references")
import_cli = typer.Typer(help="Bulk imports.", no_args_is_help=True)
cli.add_typer(import_cli, name="import")


def _sessions() -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(Settings().database_url))


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _cli_audit(
    session: Session, action: str, object_type: str, object_id: object, **detail: object
) -> None:
    audit.record(
        session,
        None,
        action,
        object_type,
        object_id,
        actor="cli",
        detail={key: str(value) for key, value in detail.items()},
    )


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations (creates the database if it does not exist)."""
    settings = Settings()
    upgrade(make_engine(settings.database_url))
    typer.echo("database at head")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind")] = None,
    scheduler: Annotated[
        bool, typer.Option("--scheduler/--no-scheduler", help="run jobs in this process")
    ] = False,
) -> None:
    """Serve the HTTP API and the web console."""
    import uvicorn

    from app.main import create_app

    settings = Settings()
    if scheduler:
        settings = settings.model_copy(update={"run_scheduler": True})
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
        proxy_headers=False,
    )


@orgs_cli.command("create")
def orgs_create(
    name: str,
    kind: Annotated[OrganisationKind, typer.Option(help="lab, agency or ministry")] = (
        OrganisationKind.LAB
    ),
    country: Annotated[str | None, typer.Option(help="ISO 3166-1 alpha-2")] = None,
) -> None:
    """Create an organisation."""
    sessions = _sessions()
    with sessions.begin() as session:
        if session.scalar(select(Organisation).where(Organisation.name == name)):
            raise _fail(f"organisation {name!r} already exists")
        org = Organisation(name=name, kind=kind, country=country.upper() if country else None)
        session.add(org)
        session.flush()
        _cli_audit(
            session, "organisation.create", "organisation", org.id, name=name, kind=kind.value
        )
        typer.echo(f"created organisation {org.id}: {name} ({kind.value})")


@keys_cli.command("create")
def keys_create(
    org: Annotated[str, typer.Option(help="organisation name")],
    role: Annotated[ApiRole, typer.Option(help="lab, officer, subscriber or admin")],
    label: Annotated[str, typer.Option(help="a note on what the key is for")] = "",
) -> None:
    """Create an API key and print it on stdout (it is shown only this once)."""
    sessions = _sessions()
    with sessions.begin() as session:
        organisation = session.scalar(select(Organisation).where(Organisation.name == org))
        if organisation is None:
            raise _fail(f"no organisation named {org!r}")
        new = generate_api_key()
        key = ApiKey(
            prefix=new.prefix,
            key_hash=new.key_hash,
            role=role,
            organisation_id=organisation.id,
            label=label,
        )
        session.add(key)
        session.flush()
        _cli_audit(
            session, "api_key.create", "api_key", new.prefix, role=role.value, organisation=org
        )
    typer.echo(new.plaintext)
    typer.echo(f"key {new.prefix} ({role.value}) for {org}: store it now, it is not kept", err=True)


@keys_cli.command("revoke")
def keys_revoke(prefix: str) -> None:
    """Revoke the key with this prefix (e.g. snt_ab12cd34)."""
    sessions = _sessions()
    with sessions.begin() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if key is None:
            raise _fail(f"no key with prefix {prefix!r}")
        if key.revoked_at is None:
            key.revoked_at = utc_now()
            _cli_audit(session, "api_key.revoke", "api_key", prefix)
    typer.echo(f"revoked {prefix}")


def _read_password() -> str:
    if sys.stdin.isatty():
        password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    return sys.stdin.readline().rstrip("\n")


@users_cli.command("create")
def users_create(
    email: str,
    role: Annotated[UserRole, typer.Option(help="officer or admin")],
    org: Annotated[str | None, typer.Option(help="organisation name")] = None,
) -> None:
    """Create a console user; the password comes from a prompt or from stdin."""
    password = _read_password()
    if len(password) < 12:
        raise _fail("password must have at least 12 characters")
    sessions = _sessions()
    with sessions.begin() as session:
        if session.scalar(select(User).where(User.email == email.lower())):
            raise _fail(f"user {email!r} already exists")
        organisation_id = None
        if org is not None:
            organisation = session.scalar(select(Organisation).where(Organisation.name == org))
            if organisation is None:
                raise _fail(f"no organisation named {org!r}")
            organisation_id = organisation.id
        user = User(
            email=email.lower(),
            password_hash=hash_password(password),
            role=role,
            organisation_id=organisation_id,
        )
        session.add(user)
        session.flush()
        _cli_audit(session, "user.create", "user", user.id, email=email, role=role.value)
    typer.echo(f"created {role.value} {email.lower()}")


@references_cli.command("check")
def references_check(
    directory: Annotated[Path | None, typer.Option("--dir", help="data folder")] = None,
) -> None:
    """Validate the reference data files; exit status 1 with a report on any problem."""
    from reference_standards import DATA_DIR, load_library

    library = load_library(directory or DATA_DIR)
    for problem in library.problems:
        typer.echo(str(problem))
    typer.echo(f"{len(library.records)} substances, {len(library.problems)} problems")
    for group, count in library.counts_by("chemical_group").items():
        typer.echo(f"  {group:24} {count}")
    if not library.ok:
        raise typer.Exit(code=1)


@references_cli.command("load")
def references_load(
    directory: Annotated[Path | None, typer.Option("--dir", help="data folder")] = None,
) -> None:
    """Upsert the reference library into the database (idempotent)."""
    from app.substances.loader import load_library_into
    from reference_standards import DATA_DIR, load_library

    library = load_library(directory or DATA_DIR)
    if not library.ok:
        for problem in library.problems:
            typer.echo(str(problem), err=True)
        raise _fail(f"{len(library.problems)} problems in the reference data: nothing loaded")
    sessions = _sessions()
    with sessions.begin() as session:
        counts = load_library_into(session, library)
        _cli_audit(
            session,
            "references.load",
            "substance",
            None,
            added=counts.added,
            updated=counts.updated,
            retired=counts.retired,
        )
    typer.echo(
        f"added {counts.added}, updated {counts.updated}, unchanged {counts.unchanged}, "
        f"retired {counts.retired}"
    )


@cli.command()
def analyse(
    source: Annotated[
        str,
        typer.Argument(
            help="file of SMILES/InChI lines or a CSV with a smiles column; '-' for stdin"
        ),
    ] = "-",
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="worker processes")] = 1,
) -> None:
    """Analyse structures with the reference library; one JSON object per line on stdout."""
    from app.analyse_cli import main as analyse_main

    analyse_main(source, jobs)


@cli.command()
def scheduler() -> None:
    """Run the scheduler (scoring, delivery, housekeeping) until interrupted.

    Start as many as you like: one becomes the leader, the others stand by.
    """
    import logging
    import signal
    import threading

    from app.jobs import JobContext
    from app.scheduler import SchedulerService

    settings = Settings()
    # Without this, who leads and which jobs ran (INFO) would not be logged at all.
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # webhook URLs may carry credentials
    engine = make_engine(settings.database_url)
    service = SchedulerService(JobContext(make_sessionmaker(engine), settings), engine)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service.start()
    typer.echo("scheduler started (leader or standby); Ctrl-C to stop", err=True)
    stop.wait()
    service.stop()


@cli.command()
def score(
    at: Annotated[
        str | None, typer.Option("--at", help="score as of the end of this day (YYYY-MM-DD)")
    ] = None,
) -> None:
    """Run one scoring pass now and print the open alerts it leaves."""
    from datetime import date

    from app.jobs import JobContext, score_threats

    try:
        as_of = date.fromisoformat(at) if at else None
    except ValueError as error:
        raise _fail(f"--at must be a date YYYY-MM-DD, not {at!r}") from error
    settings = Settings()
    results = score_threats(JobContext(_sessions(), settings), as_of)
    typer.echo(f"scored {len(results)} subjects")
    for result in sorted(results, key=lambda r: r.threat.score, reverse=True):
        if result.decision.level is None and result.decision.action == "none":
            continue
        level = result.decision.level.value if result.decision.level else "-"
        typer.echo(
            f"{result.decision.action:9} {level:9} {result.threat.score:5.1f}  "
            f"{result.subject.name}  (alert {result.alert_id})"
        )


@cli.command()
def backtest(
    scenarios: Annotated[
        list[Path], typer.Argument(exists=True, dir_okay=False, help="scenario files (JSON)")
    ],
    scale: Annotated[float, typer.Option(help="multiply every rate by this")] = 1.0,
) -> None:
    """Replay scenarios through the real intake and scoring; print when alerts fired."""
    from app.backtest import format_table, read_scenario, run_scenario
    from reference_standards import load_library

    library = load_library()
    results = []
    for path in scenarios:
        scenario = read_scenario(path)
        typer.echo(f"running {scenario.name} ({scenario.days} days)...", err=True)
        results.append(run_scenario(scenario, library=library, scale=scale))
    typer.echo(format_table(results))
    failed = [problem for result in results for problem in result.problems]
    for problem in failed:
        typer.echo(f"FAIL {problem}", err=True)
    if failed:
        raise typer.Exit(code=1)


@cli.command()
def deliver() -> None:
    """Run one delivery pass now (send what is due in the outbox)."""
    from app.delivery import deliver_due

    settings = Settings()
    result = deliver_due(_sessions(), settings)
    typer.echo(
        f"claimed {result.claimed}: delivered {result.delivered}, retrying "
        f"{result.retrying}, failed {result.failed}, dead {result.dead}"
    )


subscribers_cli = typer.Typer(help="Alert subscribers.", no_args_is_help=True)
cli.add_typer(subscribers_cli, name="subscribers")


@subscribers_cli.command("create")
def subscribers_create(
    name: str,
    kind: Annotated[str, typer.Option(help="ministry, health, law_enforcement or other")],
    email: Annotated[list[str] | None, typer.Option(help="an email address (repeatable)")] = None,
    webhook: Annotated[list[str] | None, typer.Option(help="a webhook URL (repeatable)")] = None,
    country: Annotated[list[str] | None, typer.Option(help="only these countries")] = None,
    min_level: Annotated[str, typer.Option(help="info, advisory, warning or critical")] = "warning",
) -> None:
    """Create a subscriber; prints each webhook's signing secret (shown only once)."""
    from pydantic import ValidationError

    from app.crypto import SecretBox
    from app.errors import ServiceError
    from app.subscriptions import service
    from app.subscriptions.schemas import SubscriberCreate

    channels = [{"type": "email", "address": a} for a in email or []] + [
        {"type": "webhook", "url": u} for u in webhook or []
    ]
    try:
        body = SubscriberCreate.model_validate(
            {
                "name": name,
                "kind": kind,
                "channels": channels,
                "filters": {"countries": country or [], "min_level": min_level},
            }
        )
    except ValidationError as error:
        raise _fail(str(error)) from error
    settings = Settings()
    sessions = _sessions()
    try:
        with sessions.begin() as session:
            subscriber, secrets = service.create(
                session,
                body,
                box=SecretBox(settings.secret_key.get_secret_value()),
                allowed_networks=settings.webhook_allowed_networks,
            )
            _cli_audit(session, "subscriber.create", "subscriber", subscriber.id, name=name)
    except ServiceError as error:
        raise _fail(error.detail) from error
    typer.echo(f"created subscriber {subscriber.id}: {name}")
    for endpoint_id, secret in secrets.items():
        typer.echo(f"webhook {endpoint_id} secret: {secret}")


@subscribers_cli.command("list")
def subscribers_list() -> None:
    """List subscribers and their channels."""
    from app.subscriptions import service

    with _sessions().begin() as session:
        for subscriber in service.list_all(session):
            data = service.view(subscriber)
            channels = ", ".join(c.get("address") or c.get("url") or "" for c in data["channels"])
            typer.echo(
                f"{data['id']:4} {data['name']} ({data['kind']}, >= "
                f"{data['filters']['min_level']}): {channels}"
            )


@import_cli.command("detections")
def import_detections(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or JSON Lines")],
    org: Annotated[str, typer.Option(help="the lab (organisation name) that made them")],
    report: Annotated[
        Path | None, typer.Option(help="where to write rejected rows (default FILE.rejected.csv)")
    ] = None,
) -> None:
    """Import detections for a lab; re-running on the same file creates no duplicates."""
    from app.deps import Principal
    from app.detections.importer import ProgressLine, import_file, write_report
    from app.enrichment import Enricher

    sessions = _sessions()
    with sessions.begin() as session:
        organisation = session.scalar(select(Organisation).where(Organisation.name == org))
        if organisation is None:
            raise _fail(f"no organisation named {org!r}")
        if organisation.kind is not OrganisationKind.LAB:
            raise _fail(f"{org!r} is a {organisation.kind.value}, not a lab")
        principal = Principal(
            actor="cli", actor_type="cli", role=ApiRole.LAB, organisation_id=organisation.id
        )
    result = import_file(
        sessions,
        principal,
        file,
        Enricher(),
        progress=ProgressLine(sys.stderr, f"importing {file.name}"),
    )
    report_path = report or file.with_name(file.name + ".rejected.csv")
    write_report(report_path, result.rejections)
    with sessions.begin() as session:
        _cli_audit(
            session,
            "detection.import",
            "organisation",
            principal.organisation_id,
            file=file.name,
            stored=result.stored,
            skipped=result.skipped,
            rejected=result.rejected_rows,
        )
    typer.echo(
        f"{result.total} rows: {result.stored} stored, {result.skipped} already imported, "
        f"{result.rejected_rows} rejected (report: {report_path})"
    )
    if result.rejected_rows:
        raise typer.Exit(code=2)


@cli.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its files")] = Path(
        "demo-data"
    ),
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="keep serving after the summary")
    ] = True,
    seed: Annotated[int | None, typer.Option(help="make the run reproducible")] = None,
    scale: Annotated[
        float, typer.Option(help="scale the routine background (not the emerging threats)")
    ] = 1.0,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8000,
) -> None:
    """Run a national early-warning network on this machine: a year of detections from five
    labs through the API, scoring, alerts, email and webhooks to local receivers."""
    from app.demo import run

    run(data_dir, host=host, port=port, seed=seed, scale=scale, serve=serve_after)


def main() -> None:
    cli()
