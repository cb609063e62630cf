"""Service settings, read from environment variables prefixed SENTINEL_."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the service; pure code receives plain values taken from here."""

    model_config = SettingsConfigDict(env_prefix="SENTINEL_", extra="ignore")

    database_url: str = "sqlite:///./sentinel.db"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Signs web-console session cookies and CSRF tokens and encrypts webhook secrets at rest.
    # The default is for development only; set a long random value in production.
    secret_key: SecretStr = SecretStr("dev-insecure-change-me-0123456789abcdef")
    # Public base URL used in links inside alerts (emails, webhooks, CAP).
    public_url: str = "http://127.0.0.1:8000"
    # Trust X-Forwarded-For from these proxies only (comma-separated addresses).
    trusted_proxies: str = ""

    # Request limits.
    max_body_bytes: int = 2_000_000
    rate_limit_per_minute: int = 600  # per API key
    rate_limit_burst: int = 120
    # How long a process trusts an API key it read (0: read it on every request). A key revoked
    # in another process (another API worker, the CLI) is refused here within this time.
    api_key_cache_seconds: float = Field(default=5.0, ge=0, le=60)

    # Scheduler.
    run_scheduler: bool = False  # `sentinel serve` runs an in-process scheduler only when asked
    score_interval_minutes: float = 15
    deliver_interval_seconds: int = 5

    # Crash recovery. A delivery claimed by a process that died is sent again once its lease
    # has run out: keep it longer than the slowest send (SMTP timeout 30 s, webhooks 15 s).
    delivery_lease_seconds: float = 120
    # An Idempotency-Key held by a request that never finished (its process died) is taken
    # over by a retry after this long; a takeover is safe even if that request was merely slow.
    idempotency_reservation_seconds: float = 120

    # Scoring and alert rules: overrides of the documented defaults in alerts/scoring.py and
    # alerts/rules.py, as JSON objects, e.g. SENTINEL_SCORING_WEIGHTS='{"harm": 30}' and
    # SENTINEL_ALERT_THRESHOLDS='{"warning": 55}'.
    scoring_weights: dict[str, float] = Field(default_factory=dict)
    alert_thresholds: dict[str, float] = Field(default_factory=dict)
    alert_hysteresis: float | None = None
    alert_quiet_days: int | None = None

    # Email (names are a contract).
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    mail_from: str = "sentinel-nps@localhost"
    # Webhooks: CIDRs admitted despite being private (names are a contract).
    webhook_allowed_networks: str = ""

    # Where the chemistry of submitted structures runs: "process" (worker processes with a time
    # and a memory limit, so a structure that hangs or crashes RDKit gets a 422 and the service
    # stays up) or "inline" (in the request thread). See app/chemistry_pool.py.
    chemistry_isolation: Literal["process", "inline"] = "process"

    reference_dir: Path | None = Field(
        default=None, description="reference data folder; the packaged library when unset"
    )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
