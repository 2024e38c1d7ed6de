"""The viewer's web app: HTML pages under ``/``, a JSON API under ``/api``, assets in ``/static``.

Pages: ``/`` (runs), ``/runs/{id}``, ``/compare?a=&b=``, ``/episodes?run=&task=&split=&success=
&outcome=``, ``/runs/{id}/episodes/{index}?step=``, ``/cities`` and ``/cities/{name}?q=&from=&to=
&lat=&lon=&heading=``. Every page has a JSON twin under ``/api`` (see `create_app`). Bad input
(an unknown run or city, a half-written run folder, a place that is not found) gets a page that
says what is wrong, never a traceback: unexpected errors are logged and answered by a short
error page (or ``{"error": ...}`` under ``/api``).

Nothing a request or a run folder says is trusted: Host names and the optional token are
checked on every request and every response gets nosniff and a Content Security Policy
(`openvirl.viewer.security`); cities are catalog names only (`CityService.canonical`); only a
run's own artifacts are served (`RUN_FILES`, plots, images; never dotfiles, links out of the
folder or non-regular files); run files are read as regular files with a size and nesting cap
(`openvirl.viewer.runs.read_regular`).
"""

from __future__ import annotations

import io
import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
)
from fastapi.responses import JSONResponse as _StarletteJSON
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from openvirl.viewer import pages
from openvirl.viewer.cities import (
    FOV_MAX_DEG,
    FOV_MIN_DEG,
    MAX_LOADED,
    CityService,
    StreetViewUnavailableError,
    street_view_support,
)
from openvirl.viewer.compare import compare_settings
from openvirl.viewer.episodes import (
    episode_summary,
    facets,
    filter_episodes,
    nav_track,
    steps_view,
)
from openvirl.viewer.runs import (
    CONFIG,
    EPISODE_FILES,
    MANIFEST,
    METRICS,
    REPORTS,
    RESULT,
    SESSIONS,
    SUITE,
    Run,
    RunStore,
    is_regular,
)
from openvirl.viewer.security import PAGE_CSP_HEADER, install_guards

log = logging.getLogger("openvirl.viewer")

STATIC_DIR = Path(__file__).with_name("static")
CARD_IMAGE_PX = 600
"""Side of the hand drawn for text-only GeneralPoints episodes, pixels."""
IMAGE_CACHE_SIZE = 64
"""Drawn hands kept in memory."""
MAX_API_EPISODES = 1000
"""Most episode summaries one ``/api/.../episodes`` call returns (page with `offset`)."""
RUN_FILES = frozenset(
    {CONFIG, METRICS, MANIFEST, SUITE, RESULT, SESSIONS, *EPISODE_FILES, *REPORTS}
)
"""Files at the top of a run folder that the viewer serves (besides plots and images)."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")
IMAGE_DIRS = ("images", "plots")
"""Sub-folders of a run whose images are served (episode images, report plots)."""
TEXT_SUFFIXES = (".md", ".jsonl", ".json", ".log", ".txt")


class ViewerError(Exception):
    """A request the viewer answers with an explanation page (status and a sentence)."""

    def __init__(self, status: int, title: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.hint = hint


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


class JSONResponse(_StarletteJSON):
    """JSON that always encodes: NaN and infinities become null, and a lone surrogate read from
    a run file (``"\\ud800"`` is valid JSON) is written back as its JSON escape."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(
            _json_safe(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
        return text.encode("utf-8", "backslashreplace")


def _html(text: str, status: int = 200) -> HTMLResponse:
    """One of the viewer's own pages (it gets `PAGE_CSP`; every other response `FILE_CSP`).

    A lone surrogate from a run file is shown as its escape (``\\ud800``) instead of making
    the page impossible to encode.
    """
    body = text.encode("utf-8", "backslashreplace")
    return HTMLResponse(body, status_code=status, headers={PAGE_CSP_HEADER: "1"})


def create_app(
    run_dirs: Sequence[str | Path] = (),
    *,
    city_names: Sequence[str] | None = None,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    max_loaded_cities: int = MAX_LOADED,
) -> FastAPI:
    """Build the viewer app for some run folders and cities.

    >>> from fastapi.testclient import TestClient
    >>> from openvirl.viewer import create_app
    >>> client = TestClient(create_app(["runs/eval/gp-l__id__oracle__s42"]))
    >>> client.get("/api/runs").status_code
    200

    Parameters
    ----------
    run_dirs
        Run folders (evaluation runs, suites, agent or benchmark runs) or folders of runs;
        missing or half-written ones are listed with an explanation.
    city_names
        The cities the explorer offers (catalog names); None offers every city of the catalog.
        Cities load on first use; the `max_loaded_cities` most recently used stay loaded.
    token
        When set, every request must carry it (``?token=``, which also sets a cookie, the
        ``openvirl_view_token`` cookie, or an ``Authorization: Bearer`` header); needed when
        the server listens beyond loopback.
    allowed_hosts
        Host header names accepted (without the port); None accepts loopback names only
        (`LOOPBACK_HOSTS`), which defeats DNS rebinding; ``["*"]`` accepts any.
    max_loaded_cities
        How many cities stay in memory at once.

    Returns
    -------
    fastapi.FastAPI
        The app; serve it with uvicorn (`openvirl.viewer.cli.view_command` does).
    """
    store = RunStore(run_dirs)
    cities = CityService(city_names, max_loaded=max_loaded_cities)
    app = FastAPI(
        default_response_class=JSONResponse,
        title="openvirl viewer",
        docs_url=None,  # the Swagger page loads its script from a CDN: offline, we skip it
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.store = store
    app.state.cities = cities
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    images: OrderedDict[tuple, bytes] = OrderedDict()
    images_lock = threading.Lock()

    # ------------------------------------------------------------------------ errors
    @app.exception_handler(ViewerError)
    async def _viewer_error(request: Request, exc: ViewerError) -> Response:
        if _is_api(request):
            return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=exc.status)
        return _html(pages.message_page(exc.title, exc.message, hint=exc.hint), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request):
            return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
        title = "Page not found" if exc.status_code == 404 else f"Error {exc.status_code}"
        message = (
            f"There is no page at {request.url.path}."
            if exc.status_code == 404
            else str(exc.detail)
        )
        return _html(pages.message_page(title, message), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"`{'.'.join(str(p) for p in e.get('loc', [])[1:])}`: {e.get('msg', '')}"
            for e in exc.errors()
        )
        if _is_api(request):
            return JSONResponse({"error": f"bad request: {problems}"}, status_code=422)
        return _html(
            pages.message_page(
                "Bad request", f"Some values in the address are invalid: {problems}."
            ),
            400,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("viewer error on %s", request.url.path)
        message = f"{type(exc).__name__}: {exc}"
        if _is_api(request):
            return JSONResponse({"error": message}, status_code=500)
        return _html(
            pages.message_page(
                "Something went wrong",
                "The viewer could not show this page: " + message,
                hint="The details are in the terminal that runs `openvirl view`.",
            ),
            500,
        )

    # Installed after the handlers: unexpected errors are answered inside the guard, so
    # even a 500 carries the security headers.
    install_guards(app, token=token, allowed_hosts=allowed_hosts, on_error=_unexpected)

    # ------------------------------------------------------------------------ helpers
    def get_run(run_id: str) -> Run:
        run = store.get(run_id)
        if run is None:
            known = ", ".join(r.id for r in store.runs()) or "none"
            raise ViewerError(
                404, "No such run", f"There is no run `{run_id}` in this viewer.",
                f"Runs shown: {known}.",
            )  # fmt: skip
        return run

    def get_record(run: Run, index: int) -> dict[str, Any]:
        record = store.episode(run, index)
        if record is None:
            episodes = store.episodes(run).records
            span = (
                f"episodes {episodes[0]['index']}–{episodes[-1]['index']}"
                if episodes
                else "no episodes yet"
            )
            raise ViewerError(
                404, "No such episode",
                f"Run `{run.id}` has no episode {index} ({span}).",
                "A running evaluation writes episodes as they finish; reload later.",
            )  # fmt: skip
        return record

    def run_city(run: Run) -> str | None:
        cfg = run.config.get("config") if isinstance(run.config.get("config"), dict) else {}
        task = run.config.get("task") if isinstance(run.config.get("task"), dict) else {}
        kwargs = task.get("env_kwargs") if isinstance(task.get("env_kwargs"), dict) else {}
        city = cfg.get("city") or kwargs.get("city") or run.config.get("city")
        return str(city) if city else None

    def all_episodes(run_id: str | None) -> tuple[list[tuple[Run, dict]], list[str]]:
        chosen = [get_run(run_id)] if run_id else [r for r in store.runs() if r.ok]
        items: list[tuple[Run, dict]] = []
        problems: list[str] = []
        for run in chosen:
            episodes = store.episodes(run)
            items += [(run, r) for r in episodes.records]
            problems += [f"{run.id}: {p}" for p in episodes.problems]
        return items, problems

    def filtered(
        run_id: str | None, task: str, split: str, success: str, outcome: str
    ) -> tuple[list[tuple[Run, dict]], list[tuple[Run, dict]], list[str]]:
        items, problems = all_episodes(run_id or None)
        keep = {
            id(r)
            for r in filter_episodes(
                [r for _, r in items], task=task, split=split, success=success, outcome=outcome
            )
        }
        return items, [(run, r) for run, r in items if id(r) in keep], problems

    def episode_image(run: Run, record: Mapping[str, Any]) -> tuple[str, Any] | None:
        """("file", path) of the recorded image, ("png", bytes) of a drawn hand, or None."""
        rel = record.get("image")
        if isinstance(rel, str) and rel:
            path = artifact(run, rel)
            if path is not None:
                return "file", path
        info = record.get("reset_info")
        codes = info.get("card_codes") if isinstance(info, dict) else None
        if not isinstance(codes, list) or not codes:
            return None
        key = tuple(map(str, codes))
        with images_lock:
            if key in images:
                images.move_to_end(key)
                return "png", images[key]
        try:
            from openvirl.envs.points.cards import Card
            from openvirl.envs.points.render import render_hand

            image = render_hand([Card.from_code(c) for c in key], size=CARD_IMAGE_PX)
        except (ImportError, ValueError, KeyError) as exc:
            log.warning("cannot draw hand %s: %s", key, exc)
            return None
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        with images_lock:
            images[key] = buffer.getvalue()
            while len(images) > IMAGE_CACHE_SIZE:
                images.popitem(last=False)
        return "png", buffer.getvalue()

    def episode_map(run: Run, record: Mapping[str, Any]) -> str:
        track = nav_track(record, default_city=run_city(run))
        if track is None:
            return ""
        if not track.city:
            return (
                "<div class='notice'>This navigation episode names no city, so its route "
                "cannot be drawn.</div>"
            )
        if cities.canonical(track.city) is None:
            return (
                f"<div class='notice'>This episode's city `{pages.esc(track.city[:80])}` is not "
                "one of the catalog cities this viewer offers, so its route is not drawn (the "
                "viewer reads maps by catalog name only).</div>"
            )
        try:
            city = cities.get(track.city)
            from openvirl.viewer.mapsvg import EPISODE_MAP_ASPECT, MapFrame, city_svg

            frame = MapFrame.around(city, track.points(), margin_m=80.0, aspect=EPISODE_MAP_ASPECT)
            svg = city_svg(city, frame, track=track, element_id="episode-map",
                           title=f"route of episode {record.get('index')}")  # fmt: skip
        except Exception as exc:  # a map problem must not hide the episode
            log.exception("drawing the map of %s #%s", run.id, record.get("index"))
            why = pages.esc(str(exc))
            return f"<div class='notice warn'>The route map cannot be drawn: {why}</div>"
        return (
            f"<figure class='episode-map'><div class='mapbox'>{svg}</div><figcaption>Route in "
            f"{pages.esc(track.city)}: the agent's positions and headings up to the shown "
            "step (orange, the current one red), the route's turning points (grey)."
            "</figcaption></figure>"
        )

    def safe_path(run: Run, rel: str) -> Path | None:
        root = run.path.resolve()
        try:
            target = (root / rel).resolve()
        except (OSError, ValueError):
            return None
        return target if target.is_relative_to(root) else None

    def referenced_images(run: Run) -> set[str]:
        """Image paths the run's episode records name (their own and their steps')."""
        names: set[str] = set()
        for record in store.episodes(run).records:
            steps = record.get("steps")
            for item in [record, *(steps if isinstance(steps, list) else [])]:
                rel = item.get("image") if isinstance(item, dict) else None
                if isinstance(rel, str) and rel.lower().endswith(IMAGE_SUFFIXES):
                    names.add(rel)
        return names

    def artifact(run: Run, rel: str) -> Path | None:
        """The file `rel` of `run` if the viewer serves it, else None.

        Served: the run's own files (`RUN_FILES`, its plots, images under `IMAGE_DIRS` and
        the images its records name); for a bare episode file, only that file and the images
        its records name. Never a dotfile or anything under a dot-folder, never a file outside
        the run folder (links included), never a FIFO, device or folder.
        """
        parts = rel.replace("\\", "/").split("/")
        if not rel or "\x00" in rel or any(not p or p.startswith(".") for p in parts):
            return None
        suffix = Path(rel).suffix.lower()
        if run.source_file is not None:
            known = rel == run.source_file or rel in referenced_images(run)
        else:
            known = (
                rel in RUN_FILES
                or rel in run.plots
                or (len(parts) >= 2 and parts[0] in IMAGE_DIRS and suffix in IMAGE_SUFFIXES)
                or rel in referenced_images(run)
            )
        if not known:
            return None
        path = safe_path(run, rel)
        return path if path is not None and is_regular(path) else None

    def metrics_by_setting(run: Run) -> dict[tuple[str, str], dict[str, Any]]:
        if run.kind != "suite":
            return {(run.task, run.split): run.metrics} if run.metrics else {}
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for child_id in run.children:
            child = store.get(child_id)
            if child is not None and child.metrics:
                out[(child.task, child.split)] = child.metrics
        for row in run.suite.get("rows") or []:
            if not isinstance(row, dict):
                continue
            key = (str(row.get("task", "")), str(row.get("split", "")))
            metric = row.get("metric")
            if key not in out and isinstance(metric, str) and metric:
                out[key] = {
                    metric: row.get("value"),
                    f"{metric}_ci95": row.get("ci95"),
                    "eval/episodes": row.get("episodes"),
                }
        return out

    def canonical_or_404(name: str) -> str:
        """The catalog name a requested city stands for; 404 for anything else (paths too)."""
        real = cities.canonical(name)
        if real is None:
            offered = ", ".join(cities.offered_names()) or "none"
            raise ViewerError(404, "No such city",
                              f"This viewer offers no city `{name[:80]}`.",
                              f"Cities offered: {offered}.")  # fmt: skip
        return real

    def city_or_404(name: str) -> Any:
        from openvirl.world.errors import MapFileError, UnknownCityError

        real = canonical_or_404(name)
        try:
            return cities.get(real)
        except UnknownCityError as exc:
            raise ViewerError(404, "No such city", str(exc)) from exc
        except MapFileError as exc:
            raise ViewerError(
                500, "City cannot be loaded", str(exc),
                "Re-download or re-add the extract with `openvirl city add`.",
            ) from exc  # fmt: skip

    # ------------------------------------------------------------------------ HTML pages
    @app.get("/", response_class=HTMLResponse)
    def runs_page() -> HTMLResponse:
        return _html(pages.runs_page(store.runs()))

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(run_id: str) -> HTMLResponse:
        run = get_run(run_id)
        runs = store.runs()
        members = {r.id: r for r in runs if r.parent == run.id}
        episodes = store.episodes(run) if run.ok else None
        return _html(
            pages.run_page(
                run,
                members=members,
                others=runs,
                n_episodes=len(episodes.records) if episodes else 0,
                extra_problems=episodes.problems if episodes else (),
            )
        )

    @app.get("/runs/{run_id}/files/{rel:path}")
    def run_file(run_id: str, rel: str) -> FileResponse:
        run = get_run(run_id)
        path = artifact(run, rel)
        if path is None:
            raise ViewerError(
                404, "No such file", f"Run `{run_id}` has no file `{rel[:200]}` to show.",
                "The viewer serves a run's own files only: its JSON and JSONL files, report, "
                "plots and episode images.",
            )  # fmt: skip
        if path.suffix.lower() in TEXT_SUFFIXES:
            return FileResponse(path, media_type="text/plain; charset=utf-8")
        return FileResponse(path)

    @app.get("/runs/{run_id}/episodes")
    def run_episodes_redirect(run_id: str) -> RedirectResponse:
        get_run(run_id)
        return RedirectResponse(f"/episodes?run={run_id}", status_code=307)

    @app.get("/compare", response_class=HTMLResponse)
    def compare_page(a: str = "", b: str = "") -> HTMLResponse:
        runs = [r for r in store.runs() if r.ok]
        if not a or not b:
            note = "Pick two runs." if len(runs) >= 2 else "Comparing needs two readable runs."
            return _html(pages.compare_page(runs, None, None, [], note))
        run_a, run_b = get_run(a), get_run(b)
        rows, note = compare_settings(metrics_by_setting(run_a), metrics_by_setting(run_b))
        return _html(pages.compare_page(runs, run_a, run_b, rows, note))

    @app.get("/episodes", response_class=HTMLResponse)
    def episodes_page(
        run: str = "",
        task: str = "",
        split: str = "",
        success: str = "",
        outcome: str = "",
        page: int = Query(1, ge=1),
    ) -> HTMLResponse:
        items, chosen, problems = filtered(run, task, split, success, outcome)
        start = (page - 1) * pages.EPISODES_PER_PAGE
        params = {"run": run, "task": task, "split": split, "success": success, "outcome": outcome}
        return _html(
            pages.episodes_page(
                store.runs(),
                chosen[start : start + pages.EPISODES_PER_PAGE],
                params={k: v for k, v in params.items() if v},
                facets=facets([r for _, r in items]),
                page=page,
                total=len(chosen),
                problems=problems,
            )
        )

    @app.get("/runs/{run_id}/episodes/{index}", response_class=HTMLResponse)
    def episode_page(run_id: str, index: int, step: int = Query(1, ge=1)) -> HTMLResponse:
        run = get_run(run_id)
        record = get_record(run, index)
        indices = [r["index"] for r in store.episodes(run).records]
        pos = indices.index(index)
        image = episode_image(run, record)
        return _html(
            pages.episode_page(
                run,
                record,
                image_url=f"/api/runs/{run.id}/episodes/{index}/image.png" if image else None,
                map_html=episode_map(run, record),
                prev_index=indices[pos - 1] if pos > 0 else None,
                next_index=indices[pos + 1] if pos + 1 < len(indices) else None,
                step=step,
            )
        )

    @app.get("/cities", response_class=HTMLResponse)
    def cities_page() -> HTMLResponse:
        return _html(pages.cities_page(cities.catalog()))

    @app.get("/cities/{name}", response_class=HTMLResponse)
    def city_page(
        name: str,
        request: Request,
        q: str = "",
        lat: str = "",
        lon: str = "",
        heading: float = 0.0,
        fov: float = 90.0,
    ) -> HTMLResponse:
        from openvirl.viewer.mapsvg import CITY_MAP_ASPECT, MapFrame, city_svg
        from openvirl.world.errors import WorldError

        name = canonical_or_404(name)
        city = city_or_404(name)
        params = {k: v for k, v in request.query_params.items() if v}
        origin_text, dest_text = params.get("from", ""), params.get("to", "")
        errors: list[str] = []
        results: list[Any] = []
        try:
            results = cities.search(name, q) if q else []
        except WorldError as exc:
            errors.append(str(exc))
        ends: dict[str, str] = {}
        markers: list[tuple[float, float, str, str]] = []
        points: list[tuple[float, float]] = []
        resolved: dict[str, Any] = {}
        for key, text, label, kind in (
            ("from", origin_text, "A", "origin"),
            ("to", dest_text, "B", "destination"),
        ):
            if not text:
                continue
            try:
                end = cities.resolve(name, text, ref=params.get(f"{key}_ref", ""))
            except WorldError as exc:
                errors.append(f"{'Origin' if key == 'from' else 'Destination'}: {exc}")
                continue
            resolved[key] = end
            end_lat, end_lon = end if isinstance(end, tuple) else (end.lat, end.lon)
            ends[key] = end.name if not isinstance(end, tuple) else f"{end_lat:.5f}, {end_lon:.5f}"
            markers.append((end_lat, end_lon, label, kind))
            points.append((end_lat, end_lon))
        route = None
        if "from" in resolved and "to" in resolved:
            try:
                found = city.route(resolved["from"], resolved["to"])
                route = found.to_dict()
                points += [tuple(p) for p in found.polyline]
            except WorldError as exc:
                errors.append(f"No route: {exc}")
        # Search results first, so the route's A and B are drawn on top of them.
        markers[:0] = [(p.lat, p.lon, str(i), "result") for i, p in enumerate(results, start=1)]
        points += [(p.lat, p.lon) for p in results]
        view = None
        if lat or lon:
            try:
                vlat, vlon = float(lat), float(lon)
                if not (math.isfinite(vlat) and math.isfinite(vlon)):
                    raise ValueError
                city.check_inside(vlat, vlon)
            except ValueError as exc:
                errors.append(
                    str(exc) if isinstance(exc, WorldError) else
                    f"`lat`={lat!r} and `lon`={lon!r} are not a point; click the map instead."
                )  # fmt: skip
            else:
                available, why = street_view_support()
                # The renderer's own range: a wider view would be refused by it.
                fov = max(FOV_MIN_DEG, min(float(fov), FOV_MAX_DEG)) if math.isfinite(fov) else 90.0
                if "fov" in params:  # links carry the value drawn, not the one asked for
                    params["fov"] = f"{fov:g}"
                heading = float(heading) % 360.0 if math.isfinite(heading) else 0.0
                where = ""
                try:
                    # Stand on the walkway nearest to the click, where a walker would be.
                    snap = city.router.snap(vlat, vlon)
                    if snap.distance_m > 1.0:
                        where = f"{snap.distance_m:.0f} m from the click, "
                    vlat, vlon = snap.lat, snap.lon
                except (WorldError, AttributeError):
                    pass
                try:
                    rev = city.reverse(vlat, vlon)
                    where += f"on {rev.street}" if rev.street else "on an unnamed way"
                    if rev.intersection:
                        where += f" (near {' & '.join(rev.intersection)})"
                except WorldError:
                    pass
                view = {
                    "lat": vlat, "lon": vlon, "heading": heading, "fov": fov,
                    "available": available, "why": why, "where": where,
                    "url": f"/api/cities/{name}/streetview.png?lat={vlat:.7f}&lon={vlon:.7f}"
                    f"&heading={heading:.1f}&fov={fov:.0f}&size=512",
                }  # fmt: skip
                points.append((vlat, vlon))
        aspect = CITY_MAP_ASPECT
        if route is not None:
            # Frame the walk (and the view point), not every search result.
            framed = [tuple(p) for p in route["polyline"]] + (
                [(view["lat"], view["lon"])] if view else []
            )
            frame = MapFrame.around(city, framed, margin_m=100.0, aspect=aspect)
        elif points:
            frame = MapFrame.around(city, points, margin_m=250.0, min_span_m=600.0, aspect=aspect)
        else:
            frame = MapFrame.whole(city).with_aspect(aspect)
        svg = city_svg(
            city, frame,
            route=[tuple(p) for p in route["polyline"]] if route else (),
            markers=markers,
            view=(view["lat"], view["lon"], view["heading"], view["fov"]) if view else None,
            title=f"map of {name}",
        )  # fmt: skip
        return _html(
            pages.city_page(
                name,
                params=params,
                stats=_safe_stats(city),
                results=[p.to_dict() for p in results],
                route=route,
                ends=ends,
                map_html=svg,
                view=view,
                errors=errors,
            )
        )

    # ------------------------------------------------------------------------ JSON API
    @app.get("/api/health")
    def api_health() -> dict[str, Any]:
        available, why = street_view_support()
        return {"ok": True, "runs": len(store.runs()), "street_views": available, "why": why}

    @app.get("/api/runs")
    def api_runs() -> list[dict[str, Any]]:
        return [r.summary() for r in store.runs()]

    @app.get("/api/runs/{run_id}")
    def api_run(run_id: str) -> dict[str, Any]:
        run = get_run(run_id)
        return {
            **run.summary(),
            "metrics": _json_safe(run.metrics),
            "config": _json_safe(run.config),
            "manifest": _json_safe(run.manifest),
            "suite": _json_safe(run.suite),
            "result": _json_safe(run.result),
            "plot_urls": [f"/runs/{run.id}/files/{p}" for p in run.plots],
            "metrics_from_episodes": run.metrics_from_episodes,
        }

    def _episode_list(
        run_id: str | None, task: str, split: str, success: str, outcome: str,
        offset: int, limit: int,
    ) -> dict[str, Any]:  # fmt: skip
        items, chosen, problems = filtered(run_id, task, split, success, outcome)
        return {
            "total": len(chosen),
            "offset": offset,
            "problems": problems,
            "facets": facets([r for _, r in items]),
            "episodes": [
                {"run": run.id, **episode_summary(r)} for run, r in chosen[offset : offset + limit]
            ],
        }

    @app.get("/api/episodes")
    def api_episodes(
        run: str = "", task: str = "", split: str = "", success: str = "", outcome: str = "",
        offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=MAX_API_EPISODES),
    ) -> dict[str, Any]:  # fmt: skip
        return _episode_list(run or None, task, split, success, outcome, offset, limit)

    @app.get("/api/runs/{run_id}/episodes")
    def api_run_episodes(
        run_id: str, task: str = "", split: str = "", success: str = "", outcome: str = "",
        offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=MAX_API_EPISODES),
    ) -> dict[str, Any]:  # fmt: skip
        return _episode_list(run_id, task, split, success, outcome, offset, limit)

    @app.get("/api/runs/{run_id}/episodes/{index}")
    def api_episode(run_id: str, index: int) -> dict[str, Any]:
        run = get_run(run_id)
        record = get_record(run, index)
        track = nav_track(record, default_city=run_city(run))
        image = episode_image(run, record)
        return {
            "run": run.id,
            "summary": _json_safe(episode_summary(record)),
            "steps": _json_safe(steps_view(record)),
            "record": _json_safe(record),
            "image_url": f"/api/runs/{run.id}/episodes/{index}/image.png" if image else None,
            "track": track.to_dict() if track else None,
        }

    @app.get("/api/runs/{run_id}/episodes/{index}/image.png")
    def api_episode_image(run_id: str, index: int) -> Response:
        run = get_run(run_id)
        image = episode_image(run, get_record(run, index))
        if image is None:
            raise ViewerError(404, "No image", f"Episode {index} of `{run_id}` has no image.")
        kind, value = image
        if kind == "file":
            return FileResponse(value)
        return Response(value, media_type="image/png")

    @app.get("/api/runs/{run_id}/episodes/{index}/map.svg")
    def api_episode_map(run_id: str, index: int) -> Response:
        from openvirl.viewer.mapsvg import MapFrame, city_svg

        run = get_run(run_id)
        record = get_record(run, index)
        track = nav_track(record, default_city=run_city(run))
        if track is None or not track.city:
            raise ViewerError(404, "No map", f"Episode {index} of `{run_id}` has no route to draw.")
        city = city_or_404(track.city)
        frame = MapFrame.around(city, track.points(), margin_m=80.0)
        return Response(city_svg(city, frame, track=track), media_type="image/svg+xml")

    @app.get("/api/compare")
    def api_compare(a: str, b: str) -> dict[str, Any]:
        run_a, run_b = get_run(a), get_run(b)
        rows, note = compare_settings(metrics_by_setting(run_a), metrics_by_setting(run_b))
        return {"a": run_a.summary(), "b": run_b.summary(), "rows": _json_safe(rows), "note": note}

    @app.get("/api/cities")
    def api_cities() -> list[dict[str, Any]]:
        return cities.catalog()

    @app.get("/api/cities/{name}")
    def api_city(name: str) -> dict[str, Any]:
        return _safe_stats(city_or_404(name))

    @app.get("/api/cities/{name}/search")
    def api_search(
        name: str, q: str = Query(..., description="what to look for"),
        limit: int = Query(10, ge=1, le=100),
    ) -> dict[str, Any]:  # fmt: skip
        from openvirl.world.errors import WorldError

        city_or_404(name)
        try:
            found = cities.search(name, q, limit=limit)
        except WorldError as exc:
            raise ViewerError(400, "Bad search", str(exc)) from exc
        return {"query": q, "results": [p.to_dict() for p in found]}

    @app.get("/api/cities/{name}/route")
    def api_route(
        name: str,
        origin: str = Query(..., alias="from", description="place id, 'lat,lon' or a text"),
        destination: str = Query(..., alias="to", description="place id, 'lat,lon' or a text"),
    ) -> dict[str, Any]:
        from openvirl.world.errors import WorldError

        city_or_404(name)
        try:
            return cities.route(name, origin, destination).to_dict()
        except WorldError as exc:
            raise ViewerError(400, "No route", str(exc)) from exc

    @app.get("/api/cities/{name}/route.geojson")
    def api_route_geojson(
        name: str,
        origin: str = Query(..., alias="from", description="place id, 'lat,lon' or a text"),
        destination: str = Query(..., alias="to", description="place id, 'lat,lon' or a text"),
    ) -> JSONResponse:
        from openvirl.world.errors import WorldError
        from openvirl.world.maps import route_geojson

        city_or_404(name)
        try:
            route = cities.route(name, origin, destination)
        except WorldError as exc:
            raise ViewerError(400, "No route", str(exc)) from exc
        return JSONResponse(_json_safe(route_geojson(route)), media_type="application/geo+json")

    @app.get("/api/cities/{name}/reverse")
    def api_reverse(name: str, lat: float, lon: float) -> dict[str, Any]:
        from dataclasses import asdict

        from openvirl.world.errors import WorldError

        city = city_or_404(name)
        try:
            return _json_safe(asdict(city.reverse(lat, lon)))
        except WorldError as exc:
            raise ViewerError(400, "Outside the map", str(exc)) from exc

    @app.get("/api/cities/{name}/map.svg")
    def api_city_map(
        name: str, south: float | None = None, west: float | None = None,
        north: float | None = None, east: float | None = None,
    ) -> Response:  # fmt: skip
        from openvirl.viewer.mapsvg import MapFrame, city_svg

        city = city_or_404(name)
        box = (south, west, north, east)
        if all(v is not None and math.isfinite(v) for v in box):
            frame = MapFrame.from_latlon_box(city, south, west, north, east)  # type: ignore[arg-type]
        elif any(v is not None for v in box):
            raise ViewerError(
                400, "Bad box", "Pass all of `south`, `west`, `north`, `east`, or none."
            )
        else:
            frame = MapFrame.whole(city)
        return Response(city_svg(city, frame), media_type="image/svg+xml")

    @app.get("/api/cities/{name}/streetview.png")
    def api_street_view(
        name: str, lat: float, lon: float, heading: float = 0.0,
        fov: float = 90.0, size: int = Query(512, ge=32, le=1024),
    ) -> Response:  # fmt: skip
        from openvirl.world.errors import WorldError

        if not (math.isfinite(fov) and FOV_MIN_DEG <= fov <= FOV_MAX_DEG):
            raise ViewerError(
                400, "Bad field of view",
                f"`fov` {fov:g}° is out of range: pass {FOV_MIN_DEG:g} to {FOV_MAX_DEG:g} degrees "
                "(the street-view renderer's range).",
            )  # fmt: skip
        if not (math.isfinite(lat) and math.isfinite(lon) and math.isfinite(heading)):
            raise ViewerError(400, "Bad point", "`lat`, `lon` and `heading` must be numbers.")
        city_or_404(name)
        try:
            image = cities.street_view(name, lat, lon, heading % 360.0, fov=fov, size=size)
        except StreetViewUnavailableError as exc:
            raise ViewerError(501, "No street views", str(exc)) from exc
        except WorldError as exc:
            raise ViewerError(400, "No street view here", str(exc)) from exc
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    return app


def _safe_stats(city: Any) -> dict[str, Any]:
    try:
        return _json_safe(city.stats())
    except Exception:  # stats are decoration
        log.exception("city stats")
        return {"name": getattr(city, "name", "")}


def _json_safe(value: Any) -> Any:
    """Plain JSON values: NaN and infinities become None, tuples lists, unknowns strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    return str(value)
