"""The rail: the ground-truth positions of one navigation episode, and its instruction.

Spec §3.3: the walker starts at the route's start, turns to face the first leg, walks it in
a few forward steps, turns at each turning point, and stops at the destination. Each rail
entry is one position with its correct action in both action spaces, what an oracle sees
there, and which instruction sentence it executes.

Fixed reference bugs (spec §10):

- left/right words wrap across north (`openvirl.world.geometry.relative_turn`), and are
  computed from the whole-degree headings a prompt shows, so text and ground truth agree;
- the initial heading is stated in the first observation and never sits on a word boundary,
  so the first relative word is derivable instead of random (§10.4);
- forward positions lie strictly inside a leg (no duplicate of the turning point), clear of
  both ends and of cross streets, and sentence indices come from the leg number, so a very
  short leg cannot shift them (§10.10).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from openvirl.envs.navigation.actions import FORWARD, STOP, turn
from openvirl.envs.navigation.routes import NO_LANDMARK, NavRoute
from openvirl.world.geometry import compass_word, heading_change_deg, relative_turn
from openvirl.world.routing import relation_phrase

if TYPE_CHECKING:
    from collections.abc import Sequence

INSTRUCTION_STYLES = ("reference", "headings")
"""``reference``: sentences name the relative word and the compass word (V-IRL, §3.2);
``headings``: they name only the compass word and its heading in degrees, so the relative
word must be derived from headings (the stronger rule OOD of §10.9)."""

ENDPOINT_CLEARANCE_M = 8.0
"""Forward positions closer than this to either end of a leg are dropped (as in V-IRL)."""

CROSSING_CLEARANCE_M = 10.0
"""Forward positions closer than this to a cross street are dropped: a forward position is
"not at an intersection", and the verifier must never contradict what the walker sees."""

BOUNDARY_MARGIN_DEG = 3.0
"""A drawn initial heading is redrawn when its first turn is within this many degrees of a
relative-word boundary (0°, ±45°, 180°)."""


@dataclass(frozen=True)
class RailEntry:
    """One ground-truth position.

    Attributes
    ----------
    kind
        "start", "forward", "turn" or "stop".
    lat, lon
        Position, degrees.
    heading
        Where the walker faces on arrival, whole degrees clockwise from north (the arriving
        leg's heading; the initial heading at the start).
    view_heading
        Where the camera looks for the street views: the local street direction, degrees.
    absolute, relative
        The correct action in the absolute and in the relative action space.
    landmark
        The oracle landmark text ("X is on your left", "No landmarks nearby").
    intersection
        Whether the position is at a street intersection.
    sentence
        Index (0-based) of the instruction sentence executed here.
    leg
        Index of the leg the position belongs to (0 for the start).
    goal_distance_m
        Straight-line distance to the destination, metres.
    """

    kind: str
    lat: float
    lon: float
    heading: int
    view_heading: float
    absolute: str
    relative: str
    landmark: str
    intersection: bool
    sentence: int
    leg: int
    goal_distance_m: float

    def action(self, space: str) -> str:
        """The correct action in an action space ("absolute" or "relative")."""
        return self.absolute if space == "absolute" else self.relative


_RELATION_TAIL = re.compile(
    r" is on your (front|behind|left front|right front|left behind|right behind|left|right)\.?$"
)


def _plain(text: str) -> str:
    """V-IRL's milestone text in plain English: "X is on your front" → "X is ahead of you",
    "is on your behind" → "is behind you" (the landmark and its side are unchanged)."""
    return _RELATION_TAIL.sub(lambda m: " is " + relation_phrase(m.group(1)), text)


def _landmark_clause(text: str) -> str:
    """A milestone sentence as a clause: "The destination X ..." → "the destination X ..."."""
    text = _plain(text)
    if text.startswith("The destination "):
        return "t" + text[1:]
    return text


def synthesize_instruction(
    route: NavRoute, init_heading: int, *, style: str = "reference"
) -> list[str]:
    """The instruction sentences of a route (spec §3.2, our wording, wrap-around fixed).

    Two sentences per milestone: a turn ("First, turn left to face northwest.", or "Turn
    slightly left, still facing northwest." when the walker already faces that way) and a
    walk ("Move forward until you reach the next intersection, where Prince St is ahead of
    you."; V-IRL's "is on your front" in plain English); the last walk ends at the
    destination.

    Parameters
    ----------
    route
        The route.
    init_heading
        The walker's heading at the start, whole degrees.
    style
        ``"reference"`` or ``"headings"`` (see `INSTRUCTION_STYLES`).

    Returns
    -------
    list[str]
        ``2 * len(route.milestones)`` sentences.
    """
    if style not in INSTRUCTION_STYLES:
        raise ValueError(f"`style` must be one of {INSTRUCTION_STYLES}, got {style!r}.")
    sentences: list[str] = []
    previous = init_heading
    last = len(route.milestones) - 1
    for k, m in enumerate(route.milestones):
        if style == "reference":
            rel = relative_turn(previous, m.heading)
            if compass_word(previous) == m.compass:  # already facing it: a small correction
                verb = f"turn {rel}, still facing {m.compass}"
            else:
                verb = f"turn {rel} to face {m.compass}"
        else:
            verb = f"turn to face {m.compass} (heading {m.heading} degrees)"
        sentences.append(f"First, {verb}." if k == 0 else f"{verb[0].upper()}{verb[1:]}.")
        has_landmark = bool(m.landmark) and m.landmark != NO_LANDMARK
        if k == last:
            where = f", where {_landmark_clause(m.landmark)}" if has_landmark else ""
            sentences.append(f"Move forward until you reach the destination{where}.")
        else:
            where = f", where {_plain(m.landmark)}" if has_landmark else ""
            sentences.append(f"Move forward until you reach the next intersection{where}.")
        previous = m.heading
    return sentences


def draw_init_heading(route: NavRoute, rng: np.random.Generator) -> int:
    """A uniformly random initial heading whose first turn is not on a word boundary.

    The reference drew a random heading and never showed it (spec §10.4); here it is shown
    in the first observation, and headings whose first turn lies within
    `BOUNDARY_MARGIN_DEG` of 0°, ±45° or 180° are redrawn so the relative word is clear.
    """
    first = route.milestones[0].heading
    for _ in range(1000):
        h = int(rng.integers(0, 360))
        a = abs(heading_change_deg(h, first))
        if min(a, abs(a - 45.0), 180.0 - a) >= BOUNDARY_MARGIN_DEG:
            return h
    return (first + 90) % 360  # unreachable in practice: most headings are clear


@dataclass(frozen=True)
class Rail:
    """A route's rail and its instruction sentences."""

    entries: tuple[RailEntry, ...]
    sentences: tuple[str, ...]
    init_heading: int

    def __len__(self) -> int:
        return len(self.entries)


def _local_xy(points: Sequence[tuple[float, float]], lat0: float) -> np.ndarray:
    """Equirectangular metres around `lat0` (exact enough over one street leg)."""
    arr = np.asarray(points, dtype=float)
    k = 111_320.0  # metres per degree of latitude
    return np.column_stack([arr[:, 1] * k * math.cos(math.radians(lat0)), arr[:, 0] * k])


def _along(
    poly: Sequence[tuple[float, float]], fractions: Sequence[float]
) -> list[tuple[float, float, float, float]]:
    """Points at arc-length `fractions` of a polyline: (lat, lon, arc metres, tangent deg)."""
    xy = _local_xy(poly, poly[0][0])
    seg = np.diff(xy, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    total = float(cum[-1])
    out = []
    for f in fractions:
        s = f * total
        i = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(lengths) - 1))
        t = 0.0 if lengths[i] == 0 else (s - cum[i]) / lengths[i]
        lat = poly[i][0] + t * (poly[i + 1][0] - poly[i][0])
        lon = poly[i][1] + t * (poly[i + 1][1] - poly[i][1])
        tangent = math.degrees(math.atan2(seg[i, 0], seg[i, 1])) % 360.0
        out.append((lat, lon, s, tangent))
    return out


def _arc_length(poly: Sequence[tuple[float, float]]) -> float:
    if len(poly) < 2:
        return 0.0
    xy = _local_xy(poly, poly[0][0])
    seg = np.diff(xy, axis=0)
    return float(np.sum(np.hypot(seg[:, 0], seg[:, 1])))


def _end_tangent(poly: Sequence[tuple[float, float]], fallback: float) -> float:
    """Direction of the last few metres of a polyline, degrees (fallback for a point)."""
    if len(poly) < 2:
        return float(fallback)
    xy = _local_xy(poly, poly[0][0])
    for i in range(len(xy) - 2, -1, -1):
        d = xy[-1] - xy[i]
        if math.hypot(d[0], d[1]) >= 3.0 or i == 0:
            if math.hypot(d[0], d[1]) < 1e-6:
                return float(fallback)
            return math.degrees(math.atan2(d[0], d[1])) % 360.0
    return float(fallback)


def build_rail(
    route: NavRoute,
    rng: np.random.Generator,
    *,
    init_heading: int | None = None,
    forward_points: int = 5,
    drop_rate: float = 0.5,
    style: str = "reference",
) -> Rail:
    """Lay the rail of one episode on a route.

    Parameters
    ----------
    route
        The route.
    rng
        Source of the random initial heading (when the route has none) and of which forward
        positions are dropped; pass the env's ``np_random``.
    init_heading
        Force the initial heading (whole degrees); None uses the route's or draws one.
    forward_points
        Candidate forward positions per leg, at fractions i/(n+1), i = 1..n (the reference
        used i/n, whose last point duplicated the turning point).
    drop_rate
        Probability of dropping each candidate (V-IRL: 0.5).
    style
        Instruction style (`INSTRUCTION_STYLES`).

    Returns
    -------
    Rail
        Entries start → forward... → turn → ... → stop, and the sentences.
    """
    if init_heading is None:
        init_heading = (
            route.init_heading if route.init_heading is not None else draw_init_heading(route, rng)
        )
    init_heading = int(init_heading) % 360
    sentences = route.instruction or synthesize_instruction(route, init_heading, style=style)
    goal = route.goal
    n_legs = len(route.milestones)
    # Human-written instructions do not follow the two-sentences-a-leg shape: their sentence
    # index is the nearest proportional position, a hint only (the verifier never reads it).
    human = route.instruction is not None

    def sentence_of(index: int) -> int:
        if not human:
            return index
        return min(len(sentences) - 1, int(index * len(sentences) / (2 * n_legs)))

    def dist_goal(lat: float, lon: float) -> float:
        from openvirl.world.geometry import haversine_m

        return float(haversine_m(lat, lon, goal[0], goal[1]))

    first = route.milestones[0]
    entries = [
        RailEntry(
            kind="start",
            lat=route.start.lat,
            lon=route.start.lon,
            heading=init_heading,
            view_heading=float(init_heading),
            absolute=turn(first.compass),
            relative=turn(relative_turn(init_heading, first.heading)),
            landmark=NO_LANDMARK,
            intersection=route.start.intersection,
            sentence=sentence_of(0),
            leg=0,
            goal_distance_m=dist_goal(route.start.lat, route.start.lon),
        )
    ]
    fractions = [i / (forward_points + 1) for i in range(1, forward_points + 1)]
    for k, m in enumerate(route.milestones):
        poly = route.leg_polyline(k)
        length = _arc_length(poly)
        keep = rng.random(len(fractions)) >= drop_rate if fractions else np.zeros(0, bool)
        if length > 2 * ENDPOINT_CLEARANCE_M and fractions:
            for lat, lon, s, tangent in _along(
                poly, [f for f, ok in zip(fractions, keep, strict=True) if ok]
            ):
                if s < ENDPOINT_CLEARANCE_M or s > length - ENDPOINT_CLEARANCE_M:
                    continue
                if any(abs(s - c) < CROSSING_CLEARANCE_M for c in m.crossings_m):
                    continue
                entries.append(
                    RailEntry(
                        kind="forward",
                        lat=lat,
                        lon=lon,
                        heading=m.heading,
                        view_heading=tangent,
                        absolute=FORWARD,
                        relative=FORWARD,
                        landmark=NO_LANDMARK,
                        intersection=False,
                        sentence=sentence_of(2 * k + 1),
                        leg=k,
                        goal_distance_m=dist_goal(lat, lon),
                    )
                )
        arrive = _end_tangent(poly, m.heading)
        if k < n_legs - 1:
            nxt = route.milestones[k + 1]
            entries.append(
                RailEntry(
                    kind="turn",
                    lat=m.lat,
                    lon=m.lon,
                    heading=m.heading,
                    view_heading=arrive,
                    absolute=turn(nxt.compass),
                    relative=turn(relative_turn(m.heading, nxt.heading)),
                    landmark=m.landmark or NO_LANDMARK,
                    intersection=m.intersection,
                    sentence=sentence_of(2 * k + 2),
                    leg=k,
                    goal_distance_m=dist_goal(m.lat, m.lon),
                )
            )
        else:
            entries.append(
                RailEntry(
                    kind="stop",
                    lat=m.lat,
                    lon=m.lon,
                    heading=m.heading,
                    view_heading=arrive,
                    absolute=STOP,
                    relative=STOP,
                    landmark=m.landmark or NO_LANDMARK,
                    intersection=m.intersection,
                    sentence=sentence_of(2 * k + 1),
                    leg=k,
                    goal_distance_m=0.0,
                )
            )
    return Rail(entries=tuple(entries), sentences=tuple(sentences), init_heading=init_heading)


def facing_text(heading: int) -> str:
    """The start observation's heading clause: "You are facing northwest (303 degrees)"."""
    return f"You are facing {compass_word(heading)} ({heading % 360} degrees)"


__all__ = [
    "CROSSING_CLEARANCE_M",
    "ENDPOINT_CLEARANCE_M",
    "INSTRUCTION_STYLES",
    "Rail",
    "RailEntry",
    "build_rail",
    "draw_init_heading",
    "facing_text",
    "synthesize_instruction",
]
