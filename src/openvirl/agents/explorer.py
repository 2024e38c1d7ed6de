"""Hiro, the intentional explorer: follow an intention through the streets until a place fits.

V-IRL's Hiro (§2) is hungry in Hong Kong and wants local food that is not spicy. An LLM maps
the intention to a place type; GLIP finds such places in the views ahead; each one found is
introduced from its reviews and GPT-4 decides to enter it or to keep looking; at forks GPT-4V
picks a road from one image per branch.

Here Hiro walks the street graph from node to node. At a fork (a node with more than one way
on) it looks down each branch: the POIs whose signs the street view shows (`streetview.visible`
along the branch, when the renderer is installed) or else the POIs within a cone along the
branch, each summarised from its tags. The policy picks a branch from those summaries (the
baseline takes the branch with the best-fitting place, else the least walked, straightest
one). After each leg, the places within reach that fit the intention (its place type, its
tastes, and nothing it says to avoid, see `place_recommender.read_preferences`) are offered:
the policy decides to enter or walk on; the baseline enters the best one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from openvirl.agents.base import (
    AgentResult,
    draw_map,
    load_city,
    policy_name,
    resolve_place,
    write_agent_run,
)
from openvirl.agents.llm import LLMLog, ask_json
from openvirl.agents.place_recommender import Preferences, read_preferences, taste_match
from openvirl.world.categories import parse_category_query
from openvirl.world.errors import WorldError
from openvirl.world.geometry import compass_word, heading_change_deg, xy_bearing_deg

if TYPE_CHECKING:
    from openvirl.policies.base import Policy
    from openvirl.world import City, Place

NAME = "explorer"

BRANCH_PROMPT = """[Role]
You are {persona}, exploring {city} on foot.

[Task]
Your intention: {intention}. You stand at a fork facing {facing}. Which way do you walk?

[Input]
{branches}

[Output]
Answer with JSON only: {{"branch": <branch number>, "reason": "<why>"}}"""

ENTER_PROMPT = """[Role]
You are {persona}, exploring {city} on foot.

[Task]
Your intention: {intention}. You have reached this place. Do you go in, or keep looking?

[Input]
{description}

[Output]
Answer with JSON only: {{"enter": true or false, "reason": "<why>"}}"""


@dataclass
class ExplorerConfig:
    """Options of Hiro, the intentional explorer.

    Attributes
    ----------
    city
        The city (`City.load` name or path).
    start
        Where Hiro starts: a place name or "lat, lon".
    persona
        Who Hiro is.
    intention
        What Hiro wants ("local food, not spicy").
    sight
        How branches are looked down: "view" (signs the rendered street view shows), "cone"
        (POIs within `cone_deg` of the branch direction), or "auto" (view when the renderer
        is installed).
    look_ahead_m
        How far down a branch Hiro sees, metres.
    cone_deg
        Half-angle of the cone (and half the field of view of the view), degrees.
    reach_m
        A place this close to the walked street can be entered, metres.
    max_steps
        Legs walked before giving up.
    min_fit
        Fit (0..1) a place needs to be offered for entering; None: 0.75 when the intention
        names tastes (the place must match one), else 0.5 (the right type is enough).
    """

    city: str = "manhattan"
    start: str | tuple[float, float] = "Times Square"
    persona: str = "Hiro, a hungry visitor"
    intention: str = "local food, not spicy"
    sight: str = "auto"
    look_ahead_m: float = 100.0
    cone_deg: float = 30.0
    reach_m: float = 30.0
    max_steps: int = 60
    min_fit: float | None = None

    def validate(self) -> None:
        """Raise `ValueError` naming a bad option."""
        if self.sight not in ("auto", "view", "cone"):
            raise ValueError(f"`sight` must be 'auto', 'view' or 'cone', got {self.sight!r}.")
        if self.look_ahead_m <= 0 or self.reach_m <= 0 or not 5 <= self.cone_deg <= 60:
            raise ValueError("`look_ahead_m`, `reach_m` must be positive, `cone_deg` 5..60.")
        if self.max_steps < 1:
            raise ValueError(f"`max_steps` must be at least 1, got {self.max_steps}.")


class Explorer:
    """Hiro: walk toward what the intention asks for, choosing branches by what is visible.

    Examples
    --------
    >>> from openvirl.agents import Explorer, ExplorerConfig
    >>> config = ExplorerConfig(city="monaco", start="Casino de Monte-Carlo")
    >>> result = Explorer(config).run()                            # doctest: +SKIP
    >>> result.data["entered"]["name"], result.data["steps"]      # doctest: +SKIP
    ('Le Grill', 6)

    Parameters
    ----------
    config
        The options (`ExplorerConfig`).
    policy
        Chooses branches and whether to enter; None: the baseline.
    city
        An already loaded city.
    """

    def __init__(
        self,
        config: ExplorerConfig | None = None,
        policy: Policy | None = None,
        *,
        city: City | None = None,
    ) -> None:
        self.config = config or ExplorerConfig()
        self.config.validate()
        self.policy = policy
        self.city = city if city is not None else load_city(self.config.city)
        self.log = LLMLog()
        cfg = self.config
        self.prefs: Preferences = read_preferences(
            f"{cfg.persona}. {cfg.intention}", city=self.city.name
        )
        types, _ = parse_category_query(cfg.intention)
        if not types and (self.prefs.likes or self.prefs.diets):
            types = ("restaurant",)
        if not types:
            raise WorldError(
                f"cannot tell which kind of place `{cfg.intention}` asks for; name one, e.g. "
                "'food', 'cafe', 'bookshop', 'museum'."
            )
        self.types = types
        self.threshold = (
            cfg.min_fit if cfg.min_fit is not None else (0.75 if self.prefs.likes else 0.5)
        )
        self.sight = cfg.sight
        if self.sight == "auto":
            try:
                import openvirl.world.streetview  # noqa: F401
            except ImportError:
                self.sight = "cone"
            else:
                self.sight = "view"

    # ------------------------------------------------------------------ judging places
    def fit(self, place: Place) -> float:
        """How well a place fits the intention, 0..1 (0: wrong type or a taste to avoid)."""
        if not set(place.categories or (place.category,)) & set(self.types):
            return 0.0
        match, _, clashes = taste_match(place, self.prefs)
        if clashes:
            return 0.0
        return round(0.5 + 0.5 * max(0.0, match), 3)

    def _summary(self, place: Place) -> str:
        cuisine = place.tags.get("cuisine", "").replace(";", ", ").replace("_", " ")
        kind = (place.category or "place").replace("_", " ")
        return f"{place.name} ({kind}{'; ' + cuisine if cuisine else ''})"

    # ------------------------------------------------------------------ looking around
    def _branch_bearing(self, u: int, v: int) -> float:
        coords = self.city.edge_xy(u, v)
        d = np.hypot(*(coords - coords[0]).T)
        k = int(np.searchsorted(d, min(15.0, float(d[-1])))) if len(d) > 1 else 0
        k = min(max(k, 1), len(coords) - 1)
        dx, dy = coords[k] - coords[0]
        return xy_bearing_deg(float(dx), float(dy))

    def look(self, u: int, bearing: float) -> list[Place]:
        """The POIs visible down a branch leaving node `u` at `bearing`, nearest first."""
        cfg = self.config
        node = self.city.graph.nodes[u]
        if self.sight == "view":
            from openvirl.world.streetview import visible

            seen = visible(
                self.city,
                node["lat"],
                node["lon"],
                bearing,
                fov=2 * cfg.cone_deg,
                size=(256, 256),
                max_distance_m=cfg.look_ahead_m,
            )
            out = []
            for obj in seen:
                if obj.kind != "poi" or obj.occluded:
                    continue
                try:
                    out.append(self.city.place(obj.id))
                except WorldError:
                    continue
            return out
        index = self.city.places
        dx, dy = index.xs - node["x"], index.ys - node["y"]
        d = np.hypot(dx, dy)
        near = np.nonzero((d <= cfg.look_ahead_m) & (d > 0.5))[0]
        out = []
        for i in near[np.argsort(d[near])]:
            b = xy_bearing_deg(float(dx[i]), float(dy[i]))
            if abs(heading_change_deg(bearing, b)) <= cfg.cone_deg:
                out.append(index.pois[int(i)])
        return out

    def _reachable(
        self, coords: np.ndarray, rejected: set[str], dismissed: set[str]
    ) -> list[tuple[float, Place]]:
        """Fitting places within reach of a walked leg, best first; the places reached that do
        not fit are added to `dismissed` (seen up close: no need to walk to them again)."""
        from shapely.geometry import LineString

        index = self.city.places
        line = LineString(coords) if len(coords) > 1 else None
        x0, y0 = coords.min(axis=0) - self.config.reach_m
        x1, y1 = coords.max(axis=0) + self.config.reach_m
        box = np.nonzero((index.xs >= x0) & (index.xs <= x1) & (index.ys >= y0) & (index.ys <= y1))[
            0
        ]
        out = []
        from shapely.geometry import Point

        for i in box:
            p = index.pois[int(i)]
            if p.id in rejected:
                continue
            pt = Point(float(index.xs[i]), float(index.ys[i]))
            dist = line.distance(pt) if line is not None else pt.distance(Point(*coords[0]))
            if dist <= self.config.reach_m:
                f = self.fit(p)
                if f >= self.threshold:
                    out.append((f, p))
                else:
                    dismissed.add(p.id)
        out.sort(key=lambda t: (-t[0], t[1].id))
        return out

    # ------------------------------------------------------------------ decisions
    def _enter(self, place: Place) -> tuple[bool, str]:
        if self.policy is None:
            return True, "baseline"
        cfg = self.config
        profile = self.city.details(place)["profile"]
        prompt = ENTER_PROMPT.format(
            persona=cfg.persona, city=self.city.name, intention=cfg.intention, description=profile
        )

        def check(parsed: Any) -> bool:
            value = parsed.get("enter") if isinstance(parsed, dict) else None
            if isinstance(value, str) and value.strip().lower() in ("true", "yes", "false", "no"):
                return value.strip().lower() in ("true", "yes")
            if not isinstance(value, bool):
                raise TypeError("`enter` must be true or false")
            return value

        (answer,) = ask_json(
            self.policy,
            [prompt],
            step="enter",
            experts=[{"enter": True, "reason": "it fits the intention"}],
            check=check,
            log=self.log,
            task=f"agent:{NAME}",
        )
        return (True, "baseline") if answer is None else (answer, "llm")

    def _choose(self, branches: list[dict[str, Any]], heading: float) -> tuple[int, str]:
        def key(k: int) -> tuple:
            b = branches[k]
            return (-b["best_fit"], b["walked"], abs(heading_change_deg(heading, b["bearing"])), k)

        baseline = min(range(len(branches)), key=key)
        if self.policy is None or len(branches) < 2:
            return baseline, "baseline"
        cfg = self.config
        lines = []
        for k, b in enumerate(branches, 1):
            seen = "; ".join(b["seen"][:6]) if b["seen"] else "no shops or restaurants in sight"
            lines.append(
                f"Branch {k}: heading {compass_word(b['bearing'])} along "
                f"{b['street'] or 'an unnamed way'}"
                f"{' (walked before)' if b['walked'] else ''}. You see: {seen}."
            )
        prompt = BRANCH_PROMPT.format(
            persona=cfg.persona,
            city=self.city.name,
            intention=cfg.intention,
            facing=compass_word(heading),
            branches="\n".join(lines),
        )

        def check(parsed: Any) -> int:
            value = parsed.get("branch") if isinstance(parsed, dict) else parsed
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value.strip())
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError("`branch` must be a branch number")
            if not 1 <= value <= len(branches):
                raise ValueError(f"`branch` {value} is not one of 1..{len(branches)}")
            return value - 1

        (answer,) = ask_json(
            self.policy,
            [prompt],
            step="branch",
            experts=[{"branch": baseline + 1, "reason": "best fit in sight"}],
            check=check,
            log=self.log,
            task=f"agent:{NAME}",
        )
        return (baseline, "baseline") if answer is None else (answer, "llm")

    # ------------------------------------------------------------------ the walk
    def run(self, *, out_dir: str | Path | None = None) -> AgentResult:
        """Explore until a fitting place is entered; write the run folder with `out_dir`.

        Returns
        -------
        AgentResult
            ``data``: ``entered`` (the place, or None), ``success``, ``steps`` (legs),
            ``walked_m``, ``trajectory`` ((lat, lon) points), ``decisions`` (each fork: the
            branches with what was seen down them, the choice and its source), ``declined``
            (places offered but not entered) and the LLM log.

        Raises
        ------
        PlaceNotFoundError
            `start` is not in the city (closest names listed).
        """
        cfg, city = self.config, self.city
        origin = resolve_place(city, cfg.start, what="start")
        G = city.graph
        snap = city.router.snap(origin.lat, origin.lon)
        u = snap.u if snap.dist_u_m <= snap.dist_v_m else snap.v
        came: int | None = None
        heading = 0.0
        walked_edges: Counter[tuple[int, int]] = Counter()
        path_xy = [
            np.array(city.to_xy(snap.lat, snap.lon)),
            np.array([G.nodes[u]["x"], G.nodes[u]["y"]]),
        ]
        decisions: list[dict[str, Any]] = []
        declined: list[str] = []
        rejected: set[str] = set()
        dismissed: set[str] = set()
        entered: Place | None = None
        enter_source = ""
        steps = 0
        start_leg = np.array(path_xy)
        offers = self._reachable(start_leg, rejected, dismissed)
        while True:
            for _, place in offers:
                go, source = self._enter(place)
                rejected.add(place.id)
                if go:
                    entered, enter_source = place, source
                    break
                declined.append(place.name)
            if entered is not None or steps >= cfg.max_steps:
                break
            nbrs = sorted(G.neighbors(u))
            options = [v for v in nbrs if v != came] or nbrs
            if not options:
                break
            branches = []
            for v in options:
                bearing = self._branch_bearing(u, v)
                seen = [p for p in self.look(u, bearing) if p.id not in rejected]
                fits = [self.fit(p) for p in seen if p.id not in dismissed]
                branches.append(
                    {
                        "to": int(v),
                        "bearing": round(bearing, 1),
                        "street": G[u][v].get("street", ""),
                        "seen": [self._summary(p) for p in seen],
                        "best_fit": max(fits, default=0.0),
                        "walked": walked_edges[(min(u, v), max(u, v))],
                    }
                )
            if len(options) > 1:
                k, source = self._choose(branches, heading)
                decisions.append(
                    {
                        "node": int(u),
                        "position": [G.nodes[u]["lat"], G.nodes[u]["lon"]],
                        "branches": branches,
                        "choice": k,
                        "source": source,
                    }
                )
            else:
                k = 0
            v = options[k]
            coords = city.edge_xy(u, v)
            walked_edges[(min(u, v), max(u, v))] += 1
            path_xy.extend(coords[1:])
            heading = self._branch_bearing(v, u)
            heading = (heading + 180.0) % 360.0  # arriving direction at v
            came, u = u, v
            steps += 1
            offers = self._reachable(coords, rejected, dismissed)
        xy = np.array(path_xy)
        lats, lons = city.to_latlon(xy[:, 0], xy[:, 1])
        trajectory = [[float(a), float(b)] for a, b in zip(lats, lons, strict=True)]
        walked = float(np.sum(np.hypot(*np.diff(xy, axis=0).T))) if len(xy) > 1 else 0.0
        data = {
            "city": city.name,
            "start": origin.to_dict(),
            "intention": cfg.intention,
            "types": list(self.types),
            "preferences": self.prefs.to_dict(),
            "sight": self.sight,
            "success": entered is not None,
            "entered": None
            if entered is None
            else {
                **entered.to_dict(),
                "fit": self.fit(entered),
                "source": enter_source,
                "profile": city.details(entered)["profile"],
            },
            "steps": steps,
            "walked_m": round(walked, 1),
            "decisions": decisions,
            "declined": declined,
            "trajectory": trajectory,
            "llm": self.log.to_list(),
        }
        metrics = {
            "success": float(entered is not None),
            "steps": steps,
            "walked_m": data["walked_m"],
            "forks": len(decisions),
            **self.log.summary(),
        }
        result = AgentResult(NAME, data, metrics=metrics)
        if out_dir is not None:
            out = Path(out_dir)
            points = []
            if entered is not None:
                points.append((entered.lat, entered.lon, "#d64541", f"entered: {entered.name}"))
            result.map_png = draw_map(
                city,
                out / "map.png",
                lines=[([tuple(p) for p in trajectory], "#1f6fd1", f"walk ({walked:.0f} m)")],
                points=points,
                start=(origin.lat, origin.lon, origin.name),
                title=f"Hiro: {cfg.intention}",
            )
            result.out_dir = out
            verdict = (
                f"entered **{entered.name}** ({data['entered']['profile']})"
                if entered is not None
                else "found nothing that fits"
            )
            summary = [
                f"*{cfg.intention}* — Hiro {verdict} after {steps} legs "
                f"({walked:.0f} m) and {len(decisions)} forks; sight `{self.sight}`, "
                f"policy `{policy_name(self.policy)}`."
            ]
            write_agent_run(
                out,
                agent=NAME,
                title="Intentional explorer (Hiro)",
                config=cfg,
                policy=self.policy,
                data=data,
                metrics=metrics,
                summary=summary,
                images=[result.map_png],
            )
        return result


__all__ = ["Explorer", "ExplorerConfig"]
