"""Episode records made ready to show: summaries, filters, steps and navigation tracks.

Records are the lines of ``trajectories.jsonl`` (`openvirl.evaluation.evaluate.episode_to_dict`):
``index``, ``task``, ``split``, ``success``, ``episode_outcome``, ``prompt``, ``image``,
``reset_info`` and ``steps`` (each ``attempt``, ``action``, ``reward``, ``outcome``,
``feedback`` and the info entries that differ from the reset info). Every field is optional
here: a record of an unknown shape (an agent's log line) still gets a page.

Navigation episodes are drawn on a map from these entries, looked up first in a step, then in
``reset_info`` (a step keeps only the info entries that changed), then in the record:

==================  ==========================================================================
``city``            the city the route lies in (`openvirl.world.City.load` name)
``position``        the agent's (lat, lon) after the step (or at reset); also ``lat``/``lon``
                    or ``geocode``
``heading``         the agent's heading, degrees clockwise from north
``route``           the route: a list of (lat, lon), or a dict with ``polyline`` or
                    ``geocode_list`` (also read: ``route_polyline``, ``polyline``,
                    ``geocode_list``)
``rail``            the ground-truth positions: a list of (lat, lon) or of dicts with
                    ``lat``/``lon`` (or ``geocode``), ``heading`` and ``action``
``rail_index``      the agent's index on the rail, when ``position`` is absent
==================  ==========================================================================

Example
-------
>>> from openvirl.viewer.episodes import episode_summary, filter_episodes
>>> record = {"index": 3, "task": "gp-l", "split": "id", "success": True,
...           "steps": [{"attempt": 1, "outcome": "correct", "reward": 5.0}]}
>>> episode_summary(record)["outcome"]
'correct'
>>> len(filter_episodes([record], success="no"))
0
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

STEP_CORE = (
    "attempt",
    "answer_attempt",
    "action",
    "reward",
    "outcome",
    "feedback",
    "prompt",
    "image",
)
"""Step keys shown in their own places; every other key is listed as step info."""

ANSWER_PREVIEW_CHARS = 90


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    """A finite float from a JSON number; None for anything else (10**400 and NaN included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _steps(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    steps = record.get("steps")
    if isinstance(steps, list):
        return [s if isinstance(s, dict) else {"action": str(s)} for s in steps]
    return []


def outcome_of(record: Mapping[str, Any]) -> str:
    """The episode's outcome: ``episode_outcome``, else its last step's, else success or ""."""
    outcome = record.get("episode_outcome") or record.get("outcome")
    if not outcome:
        steps = _steps(record)
        outcome = steps[-1].get("episode_outcome") or steps[-1].get("outcome") if steps else None
    if not outcome and isinstance(record.get("success"), bool):
        outcome = "correct" if record["success"] else "failed"
    return str(outcome or "")


def step_outcomes(record: Mapping[str, Any]) -> list[str]:
    """The outcome of every attempt, in order."""
    return [str(s.get("outcome") or "") for s in _steps(record)]


def _preview(text: Any, limit: int = ANSWER_PREVIEW_CHARS) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def episode_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the episode list: what it was, how it ended, its last answer."""
    steps = _steps(record)
    info = _dict(record.get("reset_info"))
    reward = _number(record.get("total_reward"))
    if reward is None:
        reward = sum(_number(s.get("reward")) or 0.0 for s in steps)
    cards = info.get("cards")
    return {
        "index": record.get("index"),
        "task": str(record.get("task") or ""),
        "split": str(record.get("split") or ""),
        "policy": str(record.get("policy") or ""),
        "success": bool(record.get("success")) if "success" in record else None,
        "outcome": outcome_of(record),
        "outcomes": step_outcomes(record),
        "attempts": len(steps) if steps else record.get("attempts"),
        "total_reward": reward,
        "cards": " ".join(map(str, cards)) if isinstance(cards, list) else "",
        "city": str(lookup(record, "city") or ""),
        "last_answer": _preview(steps[-1].get("action")) if steps else "",
    }


def _truthy(text: str) -> bool | None:
    low = text.strip().lower()
    if low in ("yes", "true", "1", "solved", "success", "y"):
        return True
    if low in ("no", "false", "0", "failed", "unsolved", "n"):
        return False
    return None


def filter_episodes(
    records: Iterable[Mapping[str, Any]],
    *,
    task: str | None = None,
    split: str | None = None,
    success: str | None = None,
    outcome: str | None = None,
) -> list[Mapping[str, Any]]:
    """The records that match every given filter (None or "" matches everything).

    Parameters
    ----------
    records
        Episode records.
    task, split
        Exact task and split names.
    success
        "yes" or "no" (also true/false, 1/0, solved/failed).
    outcome
        An outcome name: matches the episode's outcome or the outcome of any of its attempts
        (so "illegal_formula" finds every episode with an unreadable answer).
    """
    wanted_success = _truthy(success) if success else None
    out = []
    for record in records:
        if task and str(record.get("task") or "") != task:
            continue
        if split and str(record.get("split") or "") != split:
            continue
        if wanted_success is not None and bool(record.get("success")) != wanted_success:
            continue
        if outcome and outcome != outcome_of(record) and outcome not in step_outcomes(record):
            continue
        out.append(record)
    return out


def facets(records: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The values each filter can take in `records`, for the filter menus."""
    tasks: set[str] = set()
    splits: set[str] = set()
    outcomes: set[str] = set()
    for record in records:
        tasks.add(str(record.get("task") or ""))
        splits.add(str(record.get("split") or ""))
        outcomes.add(outcome_of(record))
        outcomes.update(step_outcomes(record))
    return {
        "task": sorted(t for t in tasks if t),
        "split": sorted(s for s in splits if s),
        "outcome": sorted(o for o in outcomes if o),
    }


# ---------------------------------------------------------------------------- steps
def lookup(record: Mapping[str, Any], key: str, step: Mapping[str, Any] | None = None) -> Any:
    """`key` from the step, then the reset info, then the record itself (None when absent)."""
    if step is not None and key in step:
        return step[key]
    info = _dict(record.get("reset_info"))
    if key in info:
        return info[key]
    return record.get(key)


def steps_view(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The steps of an episode, one dict per attempt, in the shape the pages show.

    Each has ``attempt`` (as recorded), ``attempt_here`` (navigation: the answer's attempt at
    its rail position, else None), ``prompt`` (the step's own prompt when recorded, else the
    episode's prompt for the first step and None after), ``action`` (the model's text),
    ``outcome``, ``feedback``, ``reward`` (float or None), ``return_so_far``, ``image`` (the
    step's own image path, or None) and ``info`` (every other entry). A record without steps
    gets one step made of its own fields, so agent logs show too.
    """
    steps = _steps(record)
    if not steps:
        steps = [
            {
                "action": record.get("action") or record.get("answer") or record.get("output"),
                "outcome": outcome_of(record),
                "feedback": record.get("feedback"),
                "reward": record.get("reward", record.get("total_reward")),
            }
        ]
    out = []
    total = 0.0
    for number, step in enumerate(steps, start=1):
        reward = _number(step.get("reward"))
        total += reward or 0.0
        prompt = step.get("prompt")
        if prompt is None and number == 1:
            prompt = record.get("prompt")
        out.append(
            {
                "attempt": step.get("attempt", number),
                "attempt_here": step.get("answer_attempt"),
                "prompt": prompt,
                "action": "" if step.get("action") is None else str(step.get("action")),
                "outcome": str(step.get("outcome") or ""),
                "feedback": "" if step.get("feedback") is None else str(step.get("feedback")),
                "reward": reward,
                "return_so_far": total,
                "image": step.get("image") if isinstance(step.get("image"), str) else None,
                "info": {k: v for k, v in step.items() if k not in STEP_CORE},
            }
        )
    return out


# ---------------------------------------------------------------------------- navigation
@dataclass
class Pose:
    """Where the agent was: (lat, lon) degrees and heading (degrees clockwise from north)."""

    lat: float
    lon: float
    heading: float | None = None


@dataclass
class NavTrack:
    """What a navigation episode's map shows."""

    city: str | None
    route: list[tuple[float, float]] = field(default_factory=list)
    """The route's polyline, (lat, lon) degrees."""
    rail: list[Pose] = field(default_factory=list)
    """Ground-truth positions along the route."""
    poses: list[Pose | None] = field(default_factory=list)
    """The agent's pose at reset (``poses[0]``) and after each step (``poses[k]``)."""

    def points(self) -> list[tuple[float, float]]:
        """Every (lat, lon) of the track, for the map's extent."""
        pts = list(self.route)
        pts += [(p.lat, p.lon) for p in self.rail]
        pts += [(p.lat, p.lon) for p in self.poses if p is not None]
        return pts

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for ``/api``."""

        def pose(p: Pose | None) -> dict[str, Any] | None:
            return None if p is None else {"lat": p.lat, "lon": p.lon, "heading": p.heading}

        return {
            "city": self.city,
            "route": [list(p) for p in self.route],
            "rail": [pose(p) for p in self.rail],
            "poses": [pose(p) for p in self.poses],
        }


def _finite(value: Any) -> bool:
    return _number(value) is not None


def as_latlon(value: Any) -> tuple[float, float] | None:
    """(lat, lon) from ``[lat, lon]``, ``{"lat", "lon"}`` (or ``lng``) or ``{"geocode": ...}``."""
    if isinstance(value, Mapping):
        lat = value.get("lat", value.get("latitude"))
        lon = value.get("lon", value.get("lng", value.get("longitude")))
        if _finite(lat) and _finite(lon):
            return (float(lat), float(lon))
        for key in ("geocode", "position", "latlon", "relocated_geocode"):
            if key in value:
                return as_latlon(value[key])
        return None
    if isinstance(value, (list, tuple)) and len(value) >= 2 and all(map(_finite, value[:2])):
        lat, lon = float(value[0]), float(value[1])
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            return (lat, lon)
    return None


def _polyline(value: Any) -> list[tuple[float, float]]:
    if isinstance(value, Mapping):
        for key in ("polyline", "geocode_list", "points", "coordinates"):
            if key in value:
                return _polyline(value[key])
        results = value.get("route_results")
        return _polyline(results) if isinstance(results, Mapping) else []
    if isinstance(value, (list, tuple)):
        points = [as_latlon(v) for v in value]
        return [p for p in points if p is not None]
    return []


def _heading(value: Any) -> float | None:
    if _finite(value):
        return float(value) % 360.0
    if isinstance(value, str):  # "298 (northwest)"
        head = value.strip().split(" ", 1)[0]
        try:
            number = float(head)
        except ValueError:
            return None
        return number % 360.0 if math.isfinite(number) else None
    return None


def _pose(
    record: Mapping[str, Any], step: Mapping[str, Any] | None, rail: list[Pose]
) -> Pose | None:
    position = None
    for key in ("position", "geocode", "agent_position"):
        value = lookup(record, key, step)
        if value is not None:
            position = as_latlon(value)
            if position is not None:
                break
    if position is None:
        lat, lon = lookup(record, "lat", step), lookup(record, "lon", step)
        if _finite(lat) and _finite(lon):
            position = (float(lat), float(lon))
    heading = _heading(lookup(record, "heading", step))
    if position is None:
        index = lookup(record, "rail_index", step)
        if isinstance(index, int) and 0 <= index < len(rail):
            spot = rail[index]
            return Pose(spot.lat, spot.lon, heading if heading is not None else spot.heading)
        return None
    return Pose(position[0], position[1], heading)


def nav_track(record: Mapping[str, Any], *, default_city: str | None = None) -> NavTrack | None:
    """The map data of a navigation episode, or None when the record has no positions.

    Parameters
    ----------
    record
        An episode record (see the module docstring for the keys read).
    default_city
        The city to use when the record names none (e.g. the run config's).

    Returns
    -------
    NavTrack or None
        None for episodes with no route, rail or position (GeneralPoints).
    """
    city = lookup(record, "city")
    route: list[tuple[float, float]] = []
    for key in ("route", "route_polyline", "polyline", "geocode_list"):
        route = _polyline(lookup(record, key))
        if route:
            break
    rail: list[Pose] = []
    raw_rail = lookup(record, "rail")
    if isinstance(raw_rail, list):
        for entry in raw_rail:
            point = as_latlon(entry)
            if point is not None:
                heading = _heading(entry.get("heading")) if isinstance(entry, Mapping) else None
                rail.append(Pose(point[0], point[1], heading))
    poses = [_pose(record, None, rail)]
    poses += [_pose(record, step, rail) for step in _steps(record)]
    if not any(poses) and not route and not rail:
        return None
    route_id = lookup(record, "route_id")
    if not route and route_id and city:
        stored = stored_route(str(city), str(lookup(record, "split") or ""), str(route_id))
        if stored is not None:
            route, turns = stored
            rail = rail or turns
    return NavTrack(
        city=str(city) if city else default_city,
        route=route,
        rail=rail,
        poses=poses,
    )


def expected_action(record: Mapping[str, Any], attempt: int) -> str | None:
    """The ground-truth action where attempt `attempt` (1-based) was answered, when recorded.

    Navigation steps record ``answered_gt_action``; otherwise the ``gt_action`` in force
    before the step (the previous step's, or the reset info's for the first) is used.
    """
    steps = _steps(record)
    if not 1 <= attempt <= len(steps):
        return None
    step = steps[attempt - 1]
    if step.get("answered_gt_action"):
        return str(step["answered_gt_action"])
    before = steps[attempt - 2] if attempt >= 2 else None
    value = lookup(record, "gt_action", before)
    return str(value) if value else None


_ROUTE_CACHE: dict[tuple[str, str], dict[str, Any]] = {}
_CITY_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def stored_route(
    city: str, split: str, route_id: str
) -> tuple[list[tuple[float, float]], list[Pose]] | None:
    """The polyline and turning points of a navigation route, from its shipped route set.

    Only route sets that ship with openvirl are read (a missing one would otherwise be
    generated, which takes minutes); None when the route cannot be found.
    """
    try:
        from openvirl.envs.navigation.splits import ROUTE_SETS, load_route_set, shipped_file
    except ImportError:
        return None
    if not _CITY_NAME_RE.match(city):  # a record's "city" never names a file path
        return None
    found = None
    for name in dict.fromkeys([split, "test", "visual-ood-all", "human", "train"]):
        if name not in ROUTE_SETS or not shipped_file(city, name).is_file():
            continue
        key = (city if name not in ("visual-ood", "visual-ood-all", "human") else "*", name)
        if key not in _ROUTE_CACHE:
            try:
                _ROUTE_CACHE[key] = {r.route_id: r for r in load_route_set(city, name)}
            except (OSError, ValueError):
                _ROUTE_CACHE[key] = {}
        found = _ROUTE_CACHE[key].get(route_id)
        if found is not None:
            break
    if found is None:
        return None
    polyline: list[tuple[float, float]] = []
    for k in range(len(found.milestones)):
        leg = found.leg_polyline(k)
        polyline += leg if not polyline else leg[1:]
    turns = [Pose(found.start.lat, found.start.lon, None)]
    turns += [Pose(m.lat, m.lon, _heading(getattr(m, "heading", None))) for m in found.milestones]
    return polyline, turns
