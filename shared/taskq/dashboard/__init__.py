"""The operator dashboard (`taskq dashboard`; `make dev` serves it on 127.0.0.1:8089).

Server-rendered pages over the library the CLI uses, so both do the same thing the
same way: this package owns only the web side.

- `app`: the FastAPI app factory, the guard in front of every page, error pages
- `security`: host, token, Origin and CSRF checks (the security model, in its docstring)
- `pages/`: one module per page (overview, jobs, dlq, schedules)
- `chart`: the overview's per-minute chart as inline SVG geometry
- `server`: serving it (uvicorn) in the foreground, or in a thread for `make dev` and tests
- `templates/`, `static/`: Jinja2 templates and the one stylesheet and script (package data)
"""

from taskq.dashboard.app import create_app

__all__ = ["create_app"]
