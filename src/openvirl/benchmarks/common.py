"""What the V-IRL benchmarks share: data files with manifests, the policies, batching, run folders.

A benchmark run compares the model policy with the two baselines (``oracle``, the upper bound
from the privileged expert answer, and ``random``, the chance level) on the same items, and
writes a run folder the viewer opens: ``config.json`` (``kind`` "benchmark"), ``metrics.json``
(every policy's metrics under ``policies``; the headline ``bench/*`` keys are the *requested*
policy's, named by ``headline_policy``, with the baselines listed under ``baselines``; reports
put the requested policy first and mark the others "(baseline)"), ``results.jsonl`` (one line
per item and policy), ``data/`` (the items and their manifest), ``report.md``, ``report.html``
and ``plots/``.

Data is deterministic from its parameters (city, seed, size, ...). The default sets ship with
the package (``openvirl/benchmarks/data/<name>.jsonl.gz`` plus ``.manifest.json`` with the
parameters and the file's sha256), so every checkout scores the same items; other parameters
generate the items on first use and cache them under ``openvirl._paths.cache_dir("bench")``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openvirl.agents.base import write_json
from openvirl.evaluation.metrics import wilson_interval

if TYPE_CHECKING:
    from openvirl.policies.base import Policy, Request

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Where the shipped benchmark sets live."""

BASELINES = ("oracle", "random")
"""Policies reported beside every model."""

DEFAULT_BATCH = 32
"""Requests per `policy.act` call."""


# ---------------------------------------------------------------------------- data files
def params_hash(params: Mapping[str, Any]) -> str:
    """A short stable hash of generation parameters (sorted JSON)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def sha256_file(path: Path) -> str:
    """The file's sha256 (hex)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_items(
    path: Path, items: Sequence[Mapping[str, Any]], manifest: Mapping[str, Any]
) -> dict[str, Any]:
    """Write items as gzipped JSONL (fixed mtime, so equal items give equal bytes) and the
    manifest beside it (``<stem>.manifest.json``) with the file's sha256; return the manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n" for item in items)
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(lines.encode("utf-8"))
    full = {**manifest, "n": len(items), "file": path.name, "sha256": sha256_file(path)}
    write_json(manifest_path(path), full)
    return full


def manifest_path(path: Path) -> Path:
    """``x.jsonl.gz`` → ``x.manifest.json``."""
    return path.with_name(path.name.split(".")[0] + ".manifest.json")


def read_items(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Items and manifest of a data file; the sha256 is checked.

    Raises
    ------
    ValueError
        The file does not match its manifest.
    """
    manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
    if manifest.get("sha256") != sha256_file(path):
        raise ValueError(f"{path} does not match the sha256 of its manifest; regenerate it.")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        items = [json.loads(line) for line in fh if line.strip()]
    return items, manifest


def load_or_build(
    name: str,
    params: Mapping[str, Any],
    build: Callable[[], list[dict[str, Any]]],
    *,
    shipped: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The items for `params`: the shipped set when its parameters match, else the cache, else
    `build()` (then cached). Returns (items, manifest)."""
    from openvirl._paths import cache_dir

    candidates = []
    if shipped:
        candidates.append(DATA_DIR / f"{shipped}.jsonl.gz")
    key = params_hash(params)
    cached = cache_dir("bench") / f"{name}-{key}.jsonl.gz"
    candidates.append(cached)
    for path in candidates:
        if path.is_file() and manifest_path(path).is_file():
            try:
                items, manifest = read_items(path)
            except (ValueError, OSError, json.JSONDecodeError):
                continue
            if manifest.get("params") == json.loads(json.dumps(params, default=str)):
                manifest["source"] = "shipped" if path.parent == DATA_DIR else "cache"
                return items, manifest
    items = build()
    manifest = write_items(
        cached,
        items,
        {
            "benchmark": name,
            "params": params,
            "params_hash": key,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    manifest["source"] = "generated"
    return items, manifest


# ---------------------------------------------------------------------------- policies
def requested_label(spec: str) -> str:
    """The label of the policy a benchmark was asked for: ``oracle`` or ``random`` when `spec`
    is one of the baselines (with or without options), else the spec itself."""
    from openvirl.policies.registry import parse_policy_spec

    try:
        kind = parse_policy_spec(spec).kind
    except ValueError:  # a label given by a caller rather than a spec
        return spec
    return kind if kind in BASELINES else spec


def policies_for(spec: str, *, seed: int) -> list[tuple[str, Policy]]:
    """(label, policy) pairs: the requested policy of `spec` first, then the baselines it is
    not (the oracle, and the random baseline seeded with `seed`)."""
    from openvirl.policies.registry import make_policy, parse_policy_spec

    parsed = parse_policy_spec(spec)
    label = requested_label(spec)
    seeded = {"seed": seed} if parsed.kind == "random" and "seed" not in parsed.options else {}
    out: list[tuple[str, Policy]] = [(label, make_policy(spec, **seeded))]
    if label != "oracle":
        out.append(("oracle", make_policy("oracle")))
    if label != "random":
        out.append(("random", make_policy("random", seed=seed)))
    return out


def column_label(label: str, spec: str) -> str:
    """A policy's column title in reports: the requested one as is, others "(baseline)"."""
    return label if label == requested_label(spec) else f"{label} (baseline)"


def act_batched(
    policy: Policy, requests: Sequence[Request], *, batch: int = DEFAULT_BATCH
) -> list[str]:
    """`policy.act` over `requests` in batches of `batch`, in order."""
    out: list[str] = []
    for i in range(0, len(requests), batch):
        chunk = list(requests[i : i + batch])
        replies = policy.act(chunk)
        if len(replies) != len(chunk):
            raise RuntimeError(f"policy returned {len(replies)} replies to {len(chunk)} requests")
        out.extend(r if isinstance(r, str) else str(r) for r in replies)
    return out


def request(
    prompt: str, *, expert: str, valid: Sequence[str], task: str, image: Any = None, **info: Any
) -> Request:
    """One benchmark request: the prompt (and image) for the model, the expert answer and the
    random baseline's choices for the baselines."""
    from openvirl.policies.base import text_message

    return {
        "messages": [text_message("user", prompt, image)],
        "info": {"task": task, "expert_answer": expert, "valid_actions": list(valid), **info},
    }


def rate(hits: float, n: int) -> dict[str, Any]:
    """``{"value", "ci95", "n"}`` of a rate (Wilson interval on the rounded hit count)."""
    low, high = wilson_interval(round(hits), n) if n else (0.0, 0.0)
    return {"value": hits / n if n else None, "ci95": [low, high], "n": n}


# ---------------------------------------------------------------------------- views
STOREFRONT_FOV_DEG = 60.0
"""Field of view of a storefront view, degrees."""


def storefront_pose(city: Any, lat: float, lon: float) -> tuple[float, float, float]:
    """Where a walker stands to look at a place: (lat, lon, heading), the street point
    nearest the place and the bearing from it to the place (degrees)."""
    from openvirl.world.geometry import bearing_deg

    snap = city.router.snap(lat, lon)
    if snap.distance_m < 1.0:
        return snap.lat, snap.lon, 0.0
    return snap.lat, snap.lon, float(bearing_deg(snap.lat, snap.lon, lat, lon))


STOREFRONT_MAX_DISTANCE_M = 45.0
"""A storefront view's target sign is at most this far from the camera, metres."""

STOREFRONT_MIN_VISIBLE = 0.6
"""Least visible fraction of the target's sign in a storefront view."""

STOREFRONT_EDGE_MARGIN_DEG = 8.0
"""The target's sign lies at least this far inside the view's left and right edges."""


def find_storefront_view(city: Any, place_id: str, *, size: int = 384) -> dict[str, float] | None:
    """A street pose from which the place's own sign is in frame and identifiable, or None.

    Candidate cameras stand on the walk graph in front of each of the place's signs (the
    street points nearest to spots 3, 6, 12 and 20 m out from the sign, slid 0, ±10 m along
    it) and look at the sign; the first whose `visible()` lists the place unoccluded (at
    least `STOREFRONT_MIN_VISIBLE` of its sign showing, within `STOREFRONT_MAX_DISTANCE_M`,
    `STOREFRONT_EDGE_MARGIN_DEG` inside the frame) wins. Deterministic.

    Returns
    -------
    dict or None
        ``{"lat", "lon", "heading"}`` (degrees), or None when no candidate shows the sign.
    """
    from openvirl.world.errors import WorldError
    from openvirl.world.geometry import bearing_deg
    from openvirl.world.scene import scene_for

    scene = scene_for(city)
    index = getattr(scene, "_object_index", None)
    if index is None:
        index = {o.id: k for k, o in enumerate(scene.objects)}
        scene._object_index = index
    k = index.get(place_id)
    if k is None:
        return None
    tried: set[tuple[float, float]] = set()
    for sign in scene.object_signs.get(k, []):
        x0, y0, x1, y1 = (float(a[sign]) for a in (scene.sx0, scene.sy0, scene.sx1, scene.sy1))
        length = math.hypot(x1 - x0, y1 - y0)
        if length < 1e-6:
            continue
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        nx, ny = uy, -ux  # the sign's front is to the right of p0 -> p1
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        mlat, mlon = (float(v) for v in city.to_latlon(mx, my))
        for out in (3.0, 6.0, 12.0, 20.0):
            for along in (0.0, -10.0, 10.0):
                px, py = mx + nx * out + ux * along, my + ny * out + uy * along
                plat, plon = city.to_latlon(px, py)
                try:
                    snap = city.router.snap(float(plat), float(plon))
                except WorldError:
                    continue
                key = (round(snap.lat, 6), round(snap.lon, 6))
                if key in tried:
                    continue
                tried.add(key)
                view = {
                    "lat": round(float(snap.lat), 7),
                    "lon": round(float(snap.lon), 7),
                    "heading": round(float(bearing_deg(snap.lat, snap.lon, mlat, mlon)), 2),
                }
                if storefront_shows(city, place_id, view, size=size):
                    return view
    return None


def storefront_shows(
    city: Any, place_id: str, view: Mapping[str, float], *, size: int = 384
) -> bool:
    """Whether the storefront view `view` ({"lat", "lon", "heading"}) shows the place's sign
    in frame and identifiable (the test of `find_storefront_view`, by `visible()`)."""
    from openvirl.world.geometry import heading_change_deg
    from openvirl.world.streetview import visible

    heading = float(view["heading"])
    seen = visible(
        city, float(view["lat"]), float(view["lon"]), heading, fov=STOREFRONT_FOV_DEG, size=size
    )
    return any(
        obj.id == place_id
        and not obj.occluded
        and obj.visible_fraction >= STOREFRONT_MIN_VISIBLE
        and obj.distance_m <= STOREFRONT_MAX_DISTANCE_M
        and abs(heading_change_deg(heading, obj.bearing_deg))
        <= STOREFRONT_FOV_DEG / 2 - STOREFRONT_EDGE_MARGIN_DEG
        for obj in seen
    )


def usable_storefront(city: Any, place: Any) -> dict[str, float] | None:
    """The verified storefront pose of a place (`find_storefront_view`), or None when its
    sign is never identifiable or shows the renderer's category fallback text (a place
    whose name cannot be drawn gets its category written on the sign: that is the answer)."""
    fallback = (place.category or "place").replace("_", " ").capitalize()
    if sign_text(place) == fallback:
        return None
    return find_storefront_view(city, place.id)


def storefront_views(city: Any, items: Sequence[Mapping[str, Any]], *, size: int) -> list[Any]:
    """`storefront_view` of every benchmark item (its place and verified pose), in order."""
    return [
        storefront_view(
            city, it["place"]["lat"], it["place"]["lon"], size=size, view=it.get("view")
        )
        for it in items
    ]


def storefront_view(
    city: Any,
    lat: float,
    lon: float,
    *,
    size: int = 384,
    view: Mapping[str, float] | None = None,
) -> Any:
    """The rendered street view of a place's storefront, or None without the renderer.

    `view` is the item's verified pose (`find_storefront_view`); without it the camera
    stands at the street point nearest (`lat`, `lon`) and looks at it. Signs are drawn
    without category cues (`neutral_signs`): no pictogram, one board colour.
    """
    try:
        from openvirl.world.streetview import neutral_signs, render_view
    except ImportError:
        return None
    if view is not None:
        slat, slon, heading = float(view["lat"]), float(view["lon"]), float(view["heading"])
    else:
        slat, slon, heading = storefront_pose(city, lat, lon)
    with neutral_signs():
        return render_view(city, slat, slon, heading, fov=STOREFRONT_FOV_DEG, size=(size, size))


def sign_text(place: Any) -> str:
    """The text on a place's sign as the renderer draws it (its name, or a readable fallback)."""
    try:
        from openvirl.world.scene import sign_label
    except ImportError:
        return place.name
    return sign_label(place)


# ---------------------------------------------------------------------------- run folders
def policy_slug(text: str) -> str:
    """A policy spec made safe for a folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "policy"


def default_out(name: str, spec: str, seed: int) -> Path:
    """``runs/bench/<name>__<policy>__s<seed>``."""
    return Path("runs") / "bench" / f"{name}__{policy_slug(spec)}__s{seed}"


def _jsonable_config(config: Any) -> Any:
    return asdict(config) if is_dataclass(config) and not isinstance(config, type) else config


def write_bench_run(
    out: Path,
    *,
    name: str,
    title: str,
    spec: str,
    config: Any,
    manifest: Mapping[str, Any],
    items: Sequence[Mapping[str, Any]],
    results: Mapping[str, Mapping[str, Any]],
    headline: Sequence[tuple[str, str]],
    plots: Sequence[tuple[str, Path]] = (),
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Write a benchmark run folder (see the module docstring) and return `metrics.json`.

    Parameters
    ----------
    out
        The run folder.
    name, title
        The benchmark's name and the report's title.
    spec
        The model policy's spec.
    config
        The benchmark's config (a dataclass).
    manifest
        The data manifest.
    items
        The items (copied to ``data/``).
    results
        label → ``{"metrics": {...}, "records": [...]}``, in the order to report.
    headline
        (metric key, description) rows of the report's table; rates are dicts from `rate`.
    plots
        (title, PNG path inside `out`) to show.
    notes
        Markdown lines under the table.
    """
    out.mkdir(parents=True, exist_ok=True)
    data_manifest = write_items(
        out / "data" / f"{name}.jsonl.gz",
        items,
        {k: v for k, v in manifest.items() if k not in ("n", "file", "sha256")},
    )
    write_json(
        out / "config.json",
        {
            "kind": "benchmark",
            "benchmark": name,
            "name": name,
            "policy": spec,
            "config": _jsonable_config(config),
            "data": {**manifest, "run_copy_sha256": data_manifest["sha256"]},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    with (out / "results.jsonl").open("w", encoding="utf-8") as fh:
        k = 0
        for label, res in results.items():
            for record in res["records"]:
                fh.write(
                    json.dumps(
                        {"index": k, "policy": label, **record}, ensure_ascii=False, default=str
                    )
                    + "\n"
                )
                k += 1
    labels = list(results)
    model = requested_label(spec)
    if model not in results:  # results built by a caller: its first non-baseline policy
        model = next((label for label in labels if label not in BASELINES), labels[0])
    metrics: dict[str, Any] = {
        "benchmark": name,
        "policy": spec,
        "headline_policy": model,
        "baselines": [label for label in labels if label != model],
        "complete": True,
        "items": len(items),
        "policies": {label: res["metrics"] for label, res in results.items()},
    }
    for key, value in results[model]["metrics"].items():
        if isinstance(value, dict) and "value" in value:
            metrics[f"bench/{key}"] = value["value"]
            metrics[f"bench/{key}_ci95"] = value.get("ci95")
        elif isinstance(value, dict):
            metrics.update({f"bench/{key}/{k}": v for k, v in value.items()})
        else:
            metrics[f"bench/{key}"] = value
    write_json(out / "metrics.json", metrics)
    _write_reports(
        out,
        title=title,
        spec=spec,
        manifest=manifest,
        results=results,
        headline=headline,
        plots=plots,
        notes=notes,
    )
    return metrics


def _cell(value: Any) -> str:
    if isinstance(value, dict) and "value" in value:
        v = value["value"]
        if v is None:
            return "—"
        ci = value.get("ci95")
        return f"{v:.1%} [{ci[0]:.1%}–{ci[1]:.1%}] (n={value['n']})" if ci else f"{v:.1%}"
    if isinstance(value, float):
        return f"{value:.1%}" if 0.0 <= value <= 1.0 else f"{value:.3g}"
    return "—" if value is None else str(value)


def _write_reports(
    out: Path,
    *,
    title: str,
    spec: str,
    manifest: Mapping[str, Any],
    results: Mapping[str, Mapping[str, Any]],
    headline: Sequence[tuple[str, str]],
    plots: Sequence[tuple[str, Path]],
    notes: Sequence[str],
) -> None:
    labels = list(results)
    header = "| metric | " + " | ".join(column_label(label, spec) for label in labels) + " |"
    rows = [header, "|---" * (len(labels) + 1) + "|"]
    for key, description in headline:
        cells = [_cell(results[label]["metrics"].get(key)) for label in labels]
        rows.append(f"| {description} | " + " | ".join(cells) + " |")
    data_line = (
        f"Data: {manifest.get('n', '?')} items, sha256 `{str(manifest.get('sha256'))[:16]}`"
        f" ({manifest.get('source', '')}); model policy `{spec}`."
    )
    md = [f"# {title}", "", data_line, "", *rows, "", *notes, ""]
    for caption, path in plots:
        md += [f"## {caption}", "", f"![{caption}]({path.relative_to(out).as_posix()})", ""]
    md += ["Map data © OpenStreetMap contributors (ODbL).", ""]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>body{{font-family:sans-serif;max-width:1100px;"
        "margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px}img{max-width:100%}</style></head><body>",
        f"<h1>{esc(title)}</h1><p>{esc(data_line)}</p><table><tr><th>metric</th>"
        + "".join(f"<th>{esc(column_label(label, spec))}</th>" for label in labels)
        + "</tr>",
    ]
    for key, description in headline:
        parts.append(
            f"<tr><td>{esc(description)}</td>"
            + "".join(
                f"<td>{esc(_cell(results[label]['metrics'].get(key)))}</td>" for label in labels
            )
            + "</tr>"
        )
    parts.append("</table>")
    parts += [f"<p>{esc(n)}</p>" for n in notes if n]
    for caption, path in plots:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f"<figure><img alt='{esc(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    parts.append("<p>Map data © OpenStreetMap contributors (ODbL).</p></body></html>")
    (out / "report.html").write_text("\n".join(parts) + "\n", encoding="utf-8")


def headline_and_breakdown_plots(
    out: Path,
    results: Mapping[str, Mapping[str, Any]],
    *,
    key: str,
    caption: str,
    title: str,
    ylabel: str,
    breakdown_key: str,
    breakdown_caption: str,
    breakdown_title: str,
) -> list[tuple[str, Path]]:
    """The two plots every benchmark report shows: the headline rate per policy, then the
    same rate broken down (per place type, per city) when the results have that breakdown.
    """
    plots = [(caption, plot_headline(out, results, key, title=title, ylabel=ylabel))]
    per = plot_per_type(
        out, results, breakdown_key, title=breakdown_title, filename=f"{breakdown_key}.png"
    )
    if per is not None:
        plots.append((breakdown_caption, per))
    return plots


def plot_headline(
    out: Path, results: Mapping[str, Mapping[str, Any]], key: str, *, title: str, ylabel: str
) -> Path:
    """Bars of one rate metric per policy with 95% intervals (`evaluation.report.plot_rates`)."""
    from openvirl.evaluation.report import plot_rates

    rows = []
    for label, res in results.items():
        value = res["metrics"].get(key) or {}
        rows.append(
            {
                "label": label,
                "rate": value.get("value") or 0.0,
                "ci95": value.get("ci95"),
                "n": value.get("n", ""),
            }
        )
    return plot_rates(
        rows, out / "plots" / f"{key.replace('/', '_')}.png", title=title, ylabel=ylabel
    )


def plot_per_type(
    out: Path, results: Mapping[str, Mapping[str, Any]], key: str, *, title: str, filename: str
) -> Path | None:
    """Grouped bars of a per-type dict metric (type → rate) for every policy."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    types = sorted({t for res in results.values() for t in (res["metrics"].get(key) or {})})
    if not types:
        return None
    labels = list(results)
    fig = Figure(figsize=(max(6.0, 0.45 * len(types) * len(labels) + 2), 3.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(labels)
    colours = ("#2e7d32", "#9e9e9e", "#1565c0", "#ef6c00")
    for k, label in enumerate(labels):
        per = results[label]["metrics"].get(key) or {}
        values = [per.get(t, 0.0) or 0.0 for t in types]
        ax.bar(
            np.arange(len(types)) + k * width,
            values,
            width,
            label=label,
            color=colours[k % len(colours)],
        )
    ax.set_xticks(
        np.arange(len(types)) + width * (len(labels) - 1) / 2,
        [t.replace("_", " ") for t in types],
        rotation=45,
        ha="right",
        fontsize=7,
    )
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    path = out / "plots" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


__all__ = [
    "BASELINES",
    "DATA_DIR",
    "act_batched",
    "column_label",
    "default_out",
    "load_or_build",
    "plot_headline",
    "plot_per_type",
    "policies_for",
    "rate",
    "read_items",
    "request",
    "requested_label",
    "write_bench_run",
    "write_items",
]
