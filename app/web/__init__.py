"""The web console: server-rendered pages for early-warning officers and administrators."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from app.ratelimit import RateLimiter
from app.web.admin import router as admin_router
from app.web.auth import LoginRequiredError, PageError, current_user
from app.web.explore import router as explore_router
from app.web.routes import router as triage_router
from app.web.signin import router as signin_router
from app.web.templating import STATIC_DIR, render

# Sign-in attempts per client address: a burst of 10, then one every 6 seconds. Slows password
# spraying across accounts, which the per-account lockout does not see.
LOGIN_ATTEMPTS_PER_MINUTE = 10
LOGIN_BURST = 10


def install(app: FastAPI) -> None:
    """Mount the console (pages under /console, files under /console/static)."""
    app.state.console_login_limiter = RateLimiter(LOGIN_ATTEMPTS_PER_MINUTE, LOGIN_BURST)
    for router in (signin_router, triage_router, explore_router, admin_router):
        app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")

    @app.exception_handler(LoginRequiredError)
    async def on_login_required(request: Request, _exc: LoginRequiredError) -> Response:
        if request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/console/login?next={quote(target)}", status_code=303)
        return render(
            request,
            "error.html",
            {"message": "Your session has ended. Sign in again, then repeat the action."},
            user=None,
            status=403,
        )

    @app.exception_handler(PageError)
    async def on_page_error(request: Request, exc: PageError) -> Response:
        user = getattr(request.state, "console_user", None)
        return render(request, "error.html", {"message": exc.message}, user=user, status=exc.status)


__all__ = ["current_user", "install"]
