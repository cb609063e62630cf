"""Exploring subjects: substance and cluster pages, structure search and structure drawings."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from app.db import utc_now
from app.deps import ReadSessionDep
from app.models import Cluster, Substance
from app.scoring.facts import cluster_key, cluster_name, substance_key
from app.web import search, structures, subjects
from app.web.auth import CurrentUser, PageError
from app.web.templating import render

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/substances/{inchikey}")
def substance_page(
    inchikey: str, request: Request, session: ReadSessionDep, user: CurrentUser
) -> Response:
    substance = session.scalar(select(Substance).where(Substance.inchikey == inchikey.upper()))
    if substance is None:
        raise PageError(f"There is no reference standard with InChIKey {inchikey}.", 404)
    where = subjects.of_substance(substance.id)
    chart, has_scores = subjects.score_chart(
        session, substance_key(substance.inchikey), request.app.state.settings
    )
    return render(
        request,
        "substance.html",
        {
            "substance": substance,
            "neighbours": subjects.substance_neighbours(
                session, subjects.analyser_for(request, session), substance
            ),
            "activity": subjects.activity(session, where, today=utc_now().date()),
            "detections": subjects.recent_detections(session, where, limit=50),
            "alerts": subjects.related_alerts(session, substance_id=substance.id),
            "score_chart": chart,
            "has_scores": has_scores,
            "now": utc_now(),
        },
        user=user,
    )


@router.get("/clusters/{cluster_id}")
def cluster_page(
    cluster_id: int, request: Request, session: ReadSessionDep, user: CurrentUser
) -> Response:
    cluster = session.get(Cluster, cluster_id)
    if cluster is None:
        raise PageError(f"There is no cluster {cluster_id}.", 404)
    where = subjects.of_cluster(cluster.id)
    chart, has_scores = subjects.score_chart(
        session, cluster_key(cluster.id), request.app.state.settings
    )
    return render(
        request,
        "cluster.html",
        {
            "cluster": cluster,
            "name": cluster_name(cluster),
            "neighbours": subjects.cluster_neighbours(session, cluster),
            "members": subjects.cluster_members(session, cluster),
            "activity": subjects.activity(session, where, today=utc_now().date()),
            "detections": subjects.recent_detections(session, where, limit=50),
            "alerts": subjects.related_alerts(session, cluster_id=cluster.id),
            "score_chart": chart,
            "has_scores": has_scores,
            "now": utc_now(),
        },
        user=user,
    )


# ---- structure search and drawings --------------------------------------------------------


@router.get("/search")
def structure_search(
    request: Request,
    session: ReadSessionDep,
    user: CurrentUser,
    mode: Literal["name", "similarity", "substructure"] = "name",
    q: Annotated[str, Query(max_length=1000)] = "",
    threshold: Annotated[float, Query(ge=0.1, le=1.0)] = 0.5,
) -> Response:
    result: search.SearchResult | None = None
    if q.strip():
        if mode == "name":
            result = search.by_name(session, q)
        elif mode == "similarity":
            result = search.by_similarity(
                session, subjects.analyser_for(request, session), q, threshold
            )
        else:
            result = search.by_substructure(session, subjects.analyser_for(request, session), q)
    return render(
        request,
        "search.html",
        {
            "mode": mode,
            "q": q,
            "threshold": threshold,
            "result": result,
            "highlight": quote(q.strip()) if mode == "substructure" else "",
        },
        user=user,
    )


@router.get("/structures/{inchikey}.svg")
def structure_drawing(
    inchikey: str,
    session: ReadSessionDep,
    user: CurrentUser,
    size: Literal["thumb", "card", "large"] = "card",
    highlight: Annotated[str | None, Query(max_length=structures.MAX_SMARTS)] = None,
) -> Response:
    """An RDKit drawing as an SVG image (cached by InChIKey; immutable, so browsers keep it)."""
    key = inchikey.upper()
    if not structures.INCHIKEY.match(key):
        raise PageError("Not an InChIKey.", 404)
    text = structures.drawing(session, key, size=size, highlight=highlight)
    if text is None:
        raise PageError(f"No structure for {key}.", 404)
    return Response(
        text,
        media_type="image/svg+xml",
        headers={
            "Cache-Control": "private, max-age=86400",
            "Content-Security-Policy": structures.DRAWING_CSP,
        },
    )
