"""`sentinel demo`: a national early-warning network running on one machine.

Builds a fresh SQLite database under the data folder, loads the reference library, creates five
forensic labs, two officers, an admin and three subscribers, starts a local SMTP server and a
local webhook receiver (both writing to disk), serves the API, and replays a year of detections
(scenarios/demo_network.json) through the real HTTP API with the labs' keys, running the real
scoring and delivery jobs day by day on a simulated clock.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

import httpx
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app import audit
from app.backtest import Scenario, generate, read_scenario
from app.db import make_engine, make_sessionmaker, utc_now
from app.delivery import deliver_due
from app.demo_receivers import MailServer, WebhookReceiver
from app.jobs import JobContext, score_threats
from app.main import create_app
from app.migrate import upgrade
from app.models import Alert, ApiKey, Delivery, Organisation, User
from app.models.enums import ApiRole, DeliveryStatus, OrganisationKind, UserRole
from app.scoring.service import OPEN_STATUSES
from app.security import generate_api_key, hash_password
from app.settings import Settings
from app.substances.loader import load_library_into
from reference_standards import load_library

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "demo_network.json"
LABS = {
    "DE": "Bundeskriminalamt KT",
    "NL": "NFI Den Haag",
    "PL": "CLKP Warszawa",
    "EE": "EFSI Tallinn",
    "FR": "INPS Lyon",
}
OFFICERS = [
    ("officer@sentinel.example", "officer-demo-password"),
    ("duty.officer@sentinel.example", "duty-officer-demo-pass"),
]


@dataclass
class DemoState:
    settings: Settings
    sessions: sessionmaker[Session]
    lab_keys: dict[str, str] = field(default_factory=dict)
    officer_key: str = ""
    admin_key: str = ""
    posted: int = 0
    rejected: int = 0


def _key(session: Session, organisation: Organisation, role: ApiRole, label: str) -> str:
    new = generate_api_key()
    session.add(
        ApiKey(
            prefix=new.prefix,
            key_hash=new.key_hash,
            role=role,
            organisation_id=organisation.id,
            label=label,
        )
    )
    return new.plaintext


def prepare(data_dir: Path, settings: Settings) -> DemoState:
    """A fresh database with the library, the labs, the officers and their keys."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    state = DemoState(settings=settings, sessions=sessions)
    with sessions.begin() as session:
        load_library_into(session, load_library())
        for country, name in LABS.items():
            lab = Organisation(name=name, kind=OrganisationKind.LAB, country=country)
            session.add(lab)
            session.flush()
            state.lab_keys[country] = _key(session, lab, ApiRole.LAB, "demo lab")
        centre = Organisation(name="National Early Warning Centre", kind=OrganisationKind.AGENCY)
        session.add(centre)
        session.flush()
        state.officer_key = _key(session, centre, ApiRole.OFFICER, "demo triage")
        state.admin_key = _key(session, centre, ApiRole.ADMIN, "demo admin")
        for email, password in OFFICERS:
            session.add(
                User(
                    email=email,
                    password_hash=hash_password(password),
                    role=UserRole.OFFICER,
                    organisation_id=centre.id,
                )
            )
        session.add(
            User(
                email="admin@sentinel.example",
                password_hash=hash_password("admin-demo-password"),
                role=UserRole.ADMIN,
                organisation_id=centre.id,
            )
        )
        audit.record(session, None, "demo.prepare", "organisation", centre.id, actor="cli")
    return state


def _subscribe(
    client: httpx.Client, state: DemoState, mail: MailServer, hooks: WebhookReceiver
) -> None:
    admin = {"Authorization": f"Bearer {state.admin_key}"}
    subscribers = [
        {
            "name": "Ministry of Health",
            "kind": "ministry",
            "filters": {"min_level": "warning"},
            "channels": [{"type": "email", "address": "ews-desk@health.example"}],
        },
        {
            "name": "National Public Health Agency",
            "kind": "health",
            "filters": {"min_level": "warning"},
            "channels": [
                {"type": "webhook", "url": hooks.url("health-agency")},
                {"type": "email", "address": "toxicovigilance@publichealth.example"},
            ],
        },
        {
            "name": "Federal Criminal Police",
            "kind": "law_enforcement",
            "filters": {"min_level": "critical"},
            "channels": [{"type": "webhook", "url": hooks.url("police")}],
        },
    ]
    for body in subscribers:
        response = client.post("/v1/subscribers", json=body, headers=admin)
        response.raise_for_status()
        for channel in response.json()["channels"]:
            if channel["type"] == "webhook":
                name = channel["url"].rsplit("/", 1)[-1]
                hooks.secrets[name] = [channel["secret"]]


class _Server:
    """uvicorn in a background thread."""

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the demo server did not start (is the port free?)")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _counts(state: DemoState) -> tuple[int, int]:
    with state.sessions.begin() as session:
        alerts = session.scalar(select(func.count()).select_from(Alert)) or 0
        delivered = (
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.status == DeliveryStatus.DELIVERED)
            )
            or 0
        )
    return alerts, delivered


def _triage(client: httpx.Client, state: DemoState, today: date) -> None:
    """The demo's officer publishes warning alerts that have waited a day for review."""
    officer = {"Authorization": f"Bearer {state.officer_key}"}
    alerts = client.get(
        "/v1/alerts", params={"status": "new", "level": "warning"}, headers=officer
    ).json()["items"]
    for alert in alerts:
        opened = date.fromisoformat(alert["created_at"][:10])
        if (today - opened).days >= 1:
            client.post(
                f"/v1/alerts/{alert['id']}/publish",
                headers=officer,
                json={"note": "Reviewed by the duty officer: publish to subscribers."},
            )


def replay(client: httpx.Client, state: DemoState, scenario: Scenario, err: TextIO) -> None:
    """Post each simulated day's detections through the API, then score and deliver."""
    plan = generate(scenario)
    context = JobContext(state.sessions, state.settings)
    months = 12
    for index in range(scenario.days):
        day = scenario.start + timedelta(days=index)
        per_lab: dict[str, list[dict[str, Any]]] = {}
        for number, (stream, phase) in enumerate(plan.get(index, [])):
            record: dict[str, Any] = {
                "substance": stream.substance,
                "detected_on": day.isoformat(),
                "country": phase.country,
                "sample_type": phase.sample_type,
            }
            roll = ((index * 7919 + number * 104729) % 1000) / 1000  # deterministic contexts
            cumulative = 0.0
            for context_name, probability in phase.contexts.items():
                cumulative += probability
                if roll < cumulative:
                    record["context"] = context_name
                    break
            per_lab.setdefault(phase.country, []).append(record)
        for country, records in per_lab.items():
            response = client.post(
                "/v1/detections/batch",
                json={"detections": records},
                headers={"Authorization": f"Bearer {state.lab_keys[country]}"},
            )
            response.raise_for_status()
            state.posted += response.json()["accepted"]
            state.rejected += response.json()["rejected"]
        score_threats(context, as_of=day)
        _triage(client, state, day)
        deliver_due(state.sessions, state.settings)
        month = (index + 1) * months // scenario.days
        if month != index * months // scenario.days:
            alerts, delivered = _counts(state)
            err.write(
                f"\rmonth {_bar(month, months)} {month:2}/{months}  detections posted "
                f"{state.posted:6}  alerts raised {alerts:3}  messages delivered "
                f"{delivered:3}"
            )
            err.flush()
    err.write("\n")


def summary(state: DemoState, mail: MailServer, hooks: WebhookReceiver, data_dir: Path) -> str:
    with state.sessions.begin() as session:
        levels = Counter(level.value for level in session.scalars(select(Alert.level)))
        top = session.scalars(select(Alert).where(Alert.status.in_(OPEN_STATUSES))).all()
        top = sorted(top, key=lambda a: (a.level.rank, a.score), reverse=True)[:5]
        delivered = Counter(
            d.channel_type.value
            for d in session.scalars(
                select(Delivery).where(Delivery.status == DeliveryStatus.DELIVERED)
            )
        )
    lines = [
        f"detections posted: {state.posted} (rejected {state.rejected})",
        "alerts by level: "
        + ", ".join(
            f"{level} {levels.get(level, 0)}"
            for level in ("critical", "warning", "advisory", "info")
        ),
        "open alerts, top of the queue:",
        *[f"  {a.level.value:8} {a.score:5.1f}  {a.title} [{a.status.value}]" for a in top],
        f"delivered: {delivered.get('email', 0)} emails -> {data_dir / 'mail'} "
        f"({mail.store.count} .eml files)",
        f"           {delivered.get('webhook', 0)} webhooks -> {data_dir / 'webhooks'} "
        f"({hooks.verified}/{hooks.received} signatures verified)",
    ]
    return "\n".join(lines)


def run(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    seed: int | None = None,
    scale: float = 1.0,
    serve: bool = True,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> dict[str, Any]:
    """The whole demo; returns the figures of the summary (for tests)."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    mail = MailServer(data_dir / "mail", port=0)
    hooks = WebhookReceiver(data_dir / "webhooks")
    mail.start()
    hooks.start()
    settings = Settings(
        database_url=f"sqlite:///{(data_dir / 'sentinel.db').resolve()}",
        public_url=f"http://{host}:{port}",
        smtp_host="127.0.0.1",
        smtp_port=mail.port,
        smtp_security="none",
        mail_from="alerts@sentinel.example",
        webhook_allowed_networks="127.0.0.0/8",
        log_level="warning",
        rate_limit_per_minute=1_000_000,
        rate_limit_burst=1_000_000,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("sentinel").setLevel(logging.WARNING)
    err.write(f"building the network in {data_dir} ...\n")
    state = prepare(data_dir, settings)
    scenario = read_scenario(SCENARIO)
    today = utc_now().date()
    scenario = dataclasses.replace(
        scenario,
        start=today - timedelta(days=scenario.days - 1),
        seed=scenario.seed if seed is None else seed,
    )
    if scale != 1.0:
        scenario = _scaled(scenario, scale)
    server = _Server(settings, host, port)
    server.start()
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as client:
            _subscribe(client, state, mail, hooks)
            replay(client, state, scenario, err)
        report = summary(state, mail, hooks, data_dir)
        out.write("\n" + report + "\n\n")
        out.write(
            f"console: http://{host}:{port}/console  (officer login: {OFFICERS[0][0]} / "
            f"{OFFICERS[0][1]}; admin: admin@sentinel.example / admin-demo-password)\n"
        )
        out.write(f"API docs: http://{host}:{port}/docs   lab key (DE): {state.lab_keys['DE']}\n")
        out.flush()
        result = {
            "posted": state.posted,
            "rejected": state.rejected,
            "emails": mail.store.count,
            "webhooks": hooks.received,
            "webhooks_verified": hooks.verified,
        }
        if serve:
            out.write("serving until interrupted (Ctrl-C)\n")
            out.flush()
            try:
                while server.thread.is_alive():
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        return result
    finally:
        server.stop()
        hooks.stop()
        mail.stop()


def _scaled(scenario: Scenario, scale: float) -> Scenario:
    """Smaller background for quick runs; the emerging threats keep their full size."""
    streams = tuple(
        stream
        if stream.emerging
        else dataclasses.replace(
            stream,
            phases=tuple(
                dataclasses.replace(phase, per_week=phase.per_week * scale)
                for phase in stream.phases
            ),
        )
        for stream in scenario.streams
    )
    return dataclasses.replace(scenario, streams=streams)
