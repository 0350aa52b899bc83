"""The viewer's web app: server-rendered pages (FastAPI + Jinja2) and a JSON
API beside them, read-only over one store root (a folder or ``s3://``).

Pages::

    /                                   datasets, their versions and tags
    /d/NAME                             one dataset's versions
    /v/NAME@V/                          a version: card, stats, plots, schema, lineage graph
    /v/NAME@V/rows?outcome=&drop=&…     samples, filtered and paginated
    /v/NAME@V/sample/SAMPLE_ID          one sample, for reading
    /diff?a=NAME@V&b=NAME@V             rows added / removed by key, stats side by side

API (JSON)::

    /api/datasets
    /api/datasets/NAME/versions
    /api/versions/NAME@V
    /api/versions/NAME@V/rows?offset=&limit=&filter=KEY=VALUE&filter=…&columns=…
    /api/diff?a=&b=

Routes are plain (sync) functions: FastAPI runs them in its thread pool, so
a slow S3 read never blocks the event loop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from datagen.records import split_completion
from datagen.store import Store, StoreError, StoreNameError, VersionNotFound
from datagen.store.card import format_value
from datagen.viewer.data import (
    CELL_CHARS,
    FILTER_KEYS,
    PREFERRED_COLUMNS,
    BadFilter,
    Browser,
    Filters,
    manifest_json,
    verdict_list,
    version_summary,
)

_TEMPLATES = Path(__file__).parent / "templates"
#: Columns the sample page shows in their own sections (the rest go in "other fields").
_SAMPLE_SECTIONS = {"prompt", "completion", "reasoning", "summary", "answer", "verdicts", "drop", "messages",
                    "sample_id"}
_GENERATION_FACTS = ("model", "finish_reason", "completion_tokens", "prompt_tokens", "prompt_template", "sampling",
                     "generation_error", "accepted", "domain", "language", "source", "problem_id")


def create_app(root: str, *, store: Store | None = None) -> FastAPI:
    """The viewer over the store at ``root`` (read-only)."""
    store = store or Store(root)
    browser = Browser(store)
    app = FastAPI(title="datagen viewer", docs_url="/api/docs", openapi_url="/api/openapi.json")
    templates = Jinja2Templates(directory=str(_TEMPLATES))
    env = templates.env
    env.filters["fmt"] = format_value
    env.filters["cell"] = _cell
    env.filters["verdicts"] = verdict_list
    env.filters["vurl"] = lambda ref: "/v/" + quote(str(ref), safe="@") + "/"
    env.globals["root"] = store.root

    def page(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, template, ctx, status_code=status)

    @app.exception_handler(VersionNotFound)
    def _not_found(request: Request, exc: Exception):
        return _error(request, 404, str(exc))

    @app.exception_handler(BadFilter)
    @app.exception_handler(StoreNameError)
    @app.exception_handler(StoreError)
    def _bad(request: Request, exc: Exception):
        return _error(request, 400, str(exc))

    def _error(request: Request, status: int, message: str):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return page(request, "error.html", status=status, message=message)

    # ------------------------------------------------------------------ pages

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        return page(request, "index.html", datasets=browser.datasets())

    @app.get("/d/{name}", response_class=HTMLResponse)
    def dataset(request: Request, name: str):
        return page(request, "dataset.html", name=name, versions=browser.versions(name))

    @app.get("/v/{ref}")
    def version_slash(ref: str):
        return RedirectResponse(f"/v/{quote(ref, safe='@')}/", status_code=308)

    @app.get("/v/{ref}/", response_class=HTMLResponse)
    def version(request: Request, ref: str):
        m = browser.resolve(ref)
        tags = sorted(t for t, v in store.tags(m.dataset).items() if v == m.id)
        card = browser.card(m)
        front, body = _split_front_matter(card)
        return page(
            request, "version.html", m=m, tags=tags, plots=browser.plots(m), lineage=browser.lineage(m),
            stats=_stats_rows(m.stats), uri=store.objects.uri(f"{m.dataset}/{m.id}"),
            config=json.dumps(m.config, indent=2, default=str), card_front=front, card_html=_markdown(body),
            shard_bytes=sum(s.bytes for s in m.shards),
        )

    @app.get("/v/{ref}/plots/{name}.png")
    def plot(ref: str, name: str):
        m = browser.resolve(ref)
        if name not in browser.plots(m):
            raise VersionNotFound(f"{m.ref} has no plot {name!r}")
        return Response(browser.plot_png(m, name), media_type="image/png",
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})

    @app.get("/v/{ref}/rows", response_class=HTMLResponse)
    def rows(request: Request, ref: str, offset: int = 0, limit: int = 25):
        m = browser.resolve(ref)
        filters = Filters.parse({k: v for k, v in request.query_params.items() if k in FILTER_KEYS})
        names = browser.columns(m)
        shown = [c for c in PREFERRED_COLUMNS if c in names][:8] or names[:8]
        result = browser.rows(m, filters, offset=offset, limit=limit, columns=shown)
        active = filters.active()

        def link(new_offset: int) -> str:
            return f"?{urlencode({**active, 'offset': new_offset, 'limit': result.limit})}"

        return page(
            request, "rows.html", m=m, page=result, filters=filters, choices=browser.choices(m), columns=names,
            outcome_choices=_outcome_choices(browser.choices(m)), shown=shown,
            prev_link=link(max(0, offset - result.limit)) if offset > 0 else None,
            next_link=link(offset + result.limit) if offset + result.limit < result.total else None,
            has_ids="sample_id" in names,
        )

    @app.get("/v/{ref}/sample/{sample_id:path}", response_class=HTMLResponse)
    def sample(request: Request, ref: str, sample_id: str):
        m = browser.resolve(ref)
        row = browser.sample(m, sample_id)
        if row is None:
            raise VersionNotFound(f"{m.ref} has no sample {sample_id!r}")
        reasoning, summary = row.get("reasoning"), row.get("summary")
        if reasoning is None and summary is None and row.get("completion"):
            split = split_completion(row["completion"])
            reasoning, summary = split.reasoning, split.summary
        facts = [(k, row[k]) for k in _GENERATION_FACTS if k in row]
        other = [(k, v) for k, v in row.items() if k not in _SAMPLE_SECTIONS and k not in dict(facts)]
        return page(
            request, "sample.html", m=m, row=row, sample_id=sample_id, reasoning=reasoning, summary=summary,
            verdicts=verdict_list(row.get("verdicts")) if "verdicts" in row else [], facts=facts, other=other,
            messages=row.get("messages") if isinstance(row.get("messages"), list) else None,
        )

    @app.get("/diff", response_class=HTMLResponse)
    def diff(request: Request, a: str = "", b: str = ""):
        if not a or not b:
            return page(request, "diff.html", a=a, b=b, d=None)
        d = browser.diff(browser.resolve(a), browser.resolve(b))
        return page(request, "diff.html", a=a, b=b, d=d)

    # ------------------------------------------------------------------ API

    @app.get("/api/datasets")
    def api_datasets():
        return browser.datasets()

    @app.get("/api/datasets/{name}/versions")
    def api_versions(name: str):
        return browser.versions(name)

    @app.get("/api/versions/{ref}")
    def api_version(ref: str):
        m = browser.resolve(ref)
        tags = sorted(t for t, v in store.tags(m.dataset).items() if v == m.id)
        return {**manifest_json(m), "summary": version_summary(m, tags), "uri": store.objects.uri(f"{m.dataset}/{m.id}"),
                "plots": [f"/v/{quote(m.ref, safe='@')}/plots/{p}.png" for p in browser.plots(m)]}

    @app.get("/api/versions/{ref}/rows")
    def api_rows(ref: str, offset: int = 0, limit: int = 25,
                 filter: Annotated[list[str], Query()] = (),
                 columns: Annotated[list[str], Query()] = ()):
        m = browser.resolve(ref)
        result = browser.rows(m, Filters.parse(list(filter)), offset=offset, limit=limit,
                              columns=list(columns) or None)
        return JSONResponse(json.loads(json.dumps(
            {"ref": m.ref, "offset": result.offset, "limit": result.limit, "total": result.total,
             "columns": result.columns, "rows": result.rows}, default=str)))

    @app.get("/api/diff")
    def api_diff(a: str, b: str):
        return browser.diff(browser.resolve(a), browser.resolve(b))

    return app


# ----------------------------------------------------------------------------- helpers


def _cell(value: Any, n: int = CELL_CHARS) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_value(value)
    s = str(value).replace("\n", " ⏎ ")
    return s if len(s) <= n else s[: n - 1] + "…"


def _stats_rows(stats: dict) -> list[tuple[str, Any]]:
    from datagen.store.manifest import flatten_stats

    return list(flatten_stats(stats).items())


def _outcome_choices(choices: dict) -> list[tuple[str, str]]:
    from datagen.records import OUTCOMES

    seen = [(value, f"{value} ({n:,})") for value, n in choices.get("outcome", [])]
    have = {v for v, _ in seen}
    return seen + [(o, o) for o in OUTCOMES if o not in have]


def _split_front_matter(card: str) -> tuple[str, str]:
    if card.startswith("---\n"):
        end = card.find("\n---\n", 4)
        if end > 0:
            return card[4:end], card[end + 5:]
    return "", card


def _markdown(text: str) -> str:
    from markdown_it import MarkdownIt

    # html=False: a card's text is data, never markup the page trusts.
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
