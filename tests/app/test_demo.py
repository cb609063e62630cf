"""The demo at reduced size, end to end: network, a year of detections, alerts, mail, webhooks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from app.demo import run
from app.demo_receivers import free_port


@pytest.mark.slow
def test_demo_runs_end_to_end_and_delivers(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    data_dir = tmp_path / "demo-data"

    result = run(data_dir, port=free_port(), seed=3, scale=0.1, serve=False, out=out, err=err)

    summary = out.getvalue()
    assert result["posted"] > 300
    assert result["rejected"] == 0
    assert "N-Pyrrolidino protonitazene" in summary  # the nitazene wave is alerted
    assert "unidentified synthetic cannabinoid cluster" in summary  # and the new cluster
    assert "month [" in err.getvalue()  # progress was shown
    emails = sorted((data_dir / "mail").glob("*.eml"))
    hooks = sorted((data_dir / "webhooks").glob("*.json"))
    assert emails
    assert hooks
    assert result["webhooks_verified"] == result["webhooks"]
    first = json.loads(hooks[0].read_text())
    assert first["signature_valid"] is True
    assert first["body"]["alert"]["level"] in {"warning", "critical"}
    assert b"Message-ID: <" in emails[0].read_bytes()
    assert "console: http://127.0.0.1:" in summary
