"""Local gives landmark directions to a requested place; Ling, a tourist, follows them.

V-IRL's Local (§2) turns a question into a place query, takes the nearest hit, routes to it and
has GPT-4 write directions from the milestone template (each turn point with its heading,
distance and most prominent landmark). Here the query is read by the policy (or taken as the
question minus its question words), the hit is the best nearby match of `City.search`, the
route is the walking router's, and the directions are either the navigation env's
deterministic sentences for that route or the policy's own writing of the milestone template.

Ling (§2) follows such directions in the navigation env (`openvirl/Navigation-v0` with Local's
route as a custom route), one action per rail position, driven by a policy (the rail's expert
when none is given). When an answer fails, Ling stops where it stands, asks Local again from
there (with its current heading) and follows the new directions, up to `max_asks` in all.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openvirl.agents.base import (
    AgentResult,
    _jsonable,
    draw_map,
    load_city,
    policy_name,
    resolve_place,
    write_agent_run,
)
from openvirl.agents.llm import LLMLog, ask_json
from openvirl.world.errors import PlaceNotFoundError

if TYPE_CHECKING:
    from openvirl.envs.navigation.routes import NavRoute
    from openvirl.policies.base import Policy
    from openvirl.world import City, Place, Route

LOCAL = "direction_giver"
LING = "tourist"

QUERY_PROMPT = """[Role]
You are a local in {city} and someone asks you the way.

[Task]
What place should they be sent to? Write a short map search query: a place name, or a kind
of place ("pharmacy", "gift shop").

[Input]
{question}

[Output]
Answer with JSON only: {{"query": "<search text>"}}"""

WRITE_PROMPT = """[Role]
You are a local giving walking directions in {city} to {destination}.

[Task]
Turn the route below into clear directions, one sentence per line of action: which way to
face, how far to go and which landmark marks each turn. Do not mention degrees or exact
distances.

[Input]
The walker starts facing {facing}. The route, one block per turn point:
{milestones}

[Output]
Answer with JSON only: {{"instructions": ["<sentence>", ...]}}"""

_QUESTION_WORDS = re.compile(
    r"^(?:excuse me[,!]?\s*)?(?:(?:could|can|would) you (?:please )?(?:tell me|show me)\s+)?"
    r"(?:where (?:can|could|do|should) (?:i|we) (?:buy|get|find)|where is|where's|how (?:do|can) "
    r"(?:i|we) get to|how to get to|take me to|i(?:'m| am) looking for|i need|i want|find me|"
    r"find|is there)\s+(?:an?\s+|the\s+|some\s+)?",
    re.IGNORECASE,
)


def question_query(question: str) -> str:
    """The baseline reading of a question: the question words stripped off.

    >>> question_query("Where can I buy a gift?")
    'gift'
    >>> question_query("How do I get to Bryant Park?")
    'Bryant Park'
    """
    text = question.strip().rstrip("?.! ")
    return _QUESTION_WORDS.sub("", text).strip() or text


@dataclass
class DirectionGiverConfig:
    """Options of Local, the direction giver.

    Attributes
    ----------
    city
        The city (`City.load` name or path).
    start
        Where the asker stands: a place name or "lat, lon".
    question
        What they ask ("Where can I buy a gift?", "How do I get to Bryant Park?").
    search_radius_m
        How far from `start` a matching place may be, metres (V-IRL: 2 km).
    init_heading
        Where the asker faces, degrees clockwise from north (V-IRL starts facing north).
    """

    city: str = "manhattan"
    start: str | tuple[float, float] = "Empire State Building"
    question: str = "How do I get to Bryant Park?"
    search_radius_m: float = 2000.0
    init_heading: int = 0

    def validate(self) -> None:
        """Raise `ValueError` naming a bad option."""
        if self.search_radius_m <= 0:
            raise ValueError(f"`search_radius_m` must be positive, got {self.search_radius_m}.")
        if not self.question.strip():
            raise ValueError("`question` must say where to go.")


class DirectionGiver:
    """Local: a landmark route from where someone stands to the place they ask for.

    Examples
    --------
    >>> from openvirl.agents import DirectionGiver, DirectionGiverConfig
    >>> local = DirectionGiver(DirectionGiverConfig(question="Where is Grand Central?"))
    >>> print(local.run().data["instructions"][0])                   # doctest: +SKIP
    First, turn right to face east.

    Parameters
    ----------
    config
        The options (`DirectionGiverConfig`).
    policy
        Reads the question and writes the directions; None: the baseline.
    city
        An already loaded city.
    """

    def __init__(
        self,
        config: DirectionGiverConfig | None = None,
        policy: Policy | None = None,
        *,
        city: City | None = None,
        log: LLMLog | None = None,
    ) -> None:
        self.config = config or DirectionGiverConfig()
        self.config.validate()
        self.policy = policy
        self.city = city if city is not None else load_city(self.config.city)
        self.log = log if log is not None else LLMLog()

    def destination(self, origin: Place, question: str) -> Place:
        """The place a question asks for: the best search hit near `origin`.

        Raises
        ------
        PlaceNotFoundError
            Nothing in the city matches; the message lists the closest names.
        """
        query = question_query(question)
        if self.policy is not None:

            def check(parsed: Any) -> str:
                value = parsed.get("query") if isinstance(parsed, dict) else None
                if not isinstance(value, str) or not value.strip():
                    raise ValueError("expected a non-empty `query`")
                return value.strip()

            (answer,) = ask_json(
                self.policy,
                [QUERY_PROMPT.format(city=self.city.name, question=question)],
                step="query",
                experts=[{"query": query}],
                check=check,
                log=self.log,
                task=f"agent:{LOCAL}",
            )
            query = answer or query
        hits = self.city.search(query, near=origin, radius_m=self.config.search_radius_m, limit=1)
        if hits:
            return hits[0]
        try:
            return self.city.geocode(query)
        except PlaceNotFoundError as err:
            raise err.renamed(query) from None

    def directions(
        self, origin: Place | tuple[float, float], destination: Place, *, init_heading: int
    ) -> dict[str, Any]:
        """Route from `origin` to `destination` and write the directions.

        Returns
        -------
        dict
            ``route`` (`Route`), ``nav_route`` (`NavRoute`, with the policy's sentences as
            its instruction when it wrote them), ``instructions`` (the sentences) and
            ``source`` ("llm" or "baseline").
        """
        from openvirl.envs.navigation.rail import synthesize_instruction
        from openvirl.envs.navigation.routes import (
            Endpoint,
            milestone_info_text,
            route_from_world,
        )
        from openvirl.world.geometry import compass_word

        route = self.city.route(origin, destination, initial_heading=init_heading)
        start = route.origin
        endpoint = Endpoint(
            name=start.name,
            lat=start.lat,
            lon=start.lon,
            kind=start.kind,
            category=start.category if start.kind == "poi" else None,
            place_id=start.id,
        )
        key = f"{start.lat:.6f},{start.lon:.6f}>{destination.id or destination.name}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:10]
        nav = route_from_world(
            self.city, route, start=endpoint, route_id=f"local-{digest}", meta={"source": "local"}
        )
        nav.init_heading = int(init_heading) % 360
        nav.source = "local"
        sentences = synthesize_instruction(nav, nav.init_heading)
        source = "baseline"
        if self.policy is not None:
            prompt = WRITE_PROMPT.format(
                city=self.city.name,
                destination=destination.name,
                facing=compass_word(nav.init_heading),
                milestones=milestone_info_text(nav, init_heading=nav.init_heading),
            )

            def check(parsed: Any) -> list[str]:
                items = parsed.get("instructions") if isinstance(parsed, dict) else parsed
                if isinstance(items, str):
                    items = [s for s in re.split(r"(?<=[.!?])\s+", items) if s.strip()]
                if not isinstance(items, list) or not items:
                    raise ValueError("expected a non-empty list `instructions`")
                return [str(s).strip() for s in items if str(s).strip()]

            (written,) = ask_json(
                self.policy,
                [prompt],
                step="write",
                experts=[{"instructions": sentences}],
                check=check,
                log=self.log,
                task=f"agent:{LOCAL}",
            )
            if written is not None:
                if written != sentences:
                    nav.instruction = written
                sentences, source = written, "llm"
        return {"route": route, "nav_route": nav, "instructions": sentences, "source": source}

    def run(self, *, out_dir: str | Path | None = None) -> AgentResult:
        """Answer the question with directions; write the run folder and map with `out_dir`.

        Returns
        -------
        AgentResult
            ``data``: ``destination`` (place dict), ``instructions`` (sentences),
            ``length_m``, ``duration_min``, ``route_record`` (V-IRL's §4 route record, with
            this instruction), ``nav_route`` (the navigation env's route dict) and the LLM log.

        Raises
        ------
        PlaceNotFoundError
            The start or the asked-for place is not in the city (closest names listed).
        """
        cfg = self.config
        origin = resolve_place(self.city, cfg.start, what="start")
        dest = self.destination(origin, cfg.question)
        answer = self.directions(origin, dest, init_heading=cfg.init_heading)
        route: Route = answer["route"]
        nav: NavRoute = answer["nav_route"]
        record = route.to_virl_dict(init_heading=cfg.init_heading)
        record["instruction"] = " ".join(answer["instructions"])
        data = {
            "city": self.city.name,
            "question": cfg.question,
            "start": origin.to_dict(),
            "destination": dest.to_dict(),
            "instructions": answer["instructions"],
            "instruction_source": answer["source"],
            "length_m": round(route.length_m, 1),
            "duration_min": round(route.duration_s / 60.0, 1),
            "turns": nav.n_turns,
            "route_record": record,
            "nav_route": nav.to_dict(),
            "llm": self.log.to_list(),
        }
        metrics = {
            "length_m": data["length_m"],
            "turns": nav.n_turns,
            "landmarks": record["route_results"]["n_landmarks"],
            **self.log.summary(),
        }
        result = AgentResult(LOCAL, data, metrics=metrics)
        if out_dir is not None:
            out = Path(out_dir)
            result.map_png = self.city.route_map(
                route, out / "map.png", title=f"Local: to {dest.name} ({route.length_m:.0f} m)"
            )
            result.out_dir = out
            summary = [
                f"**Q:** {cfg.question}",
                "",
                f"**To:** {dest.name} "
                f"({route.length_m:.0f} m, {route.duration_s / 60:.0f} min walk)",
                "",
            ]
            summary += [f"{k}. {s}" for k, s in enumerate(answer["instructions"], 1)]
            write_agent_run(
                out,
                agent=LOCAL,
                title="Direction giver (Local)",
                config=cfg,
                policy=self.policy,
                data=data,
                metrics=metrics,
                summary=summary,
                images=[result.map_png],
            )
        return result


# ---------------------------------------------------------------------------- Ling
@dataclass
class TouristConfig:
    """Options of Ling, the tourist.

    Attributes
    ----------
    city
        The city (`City.load` name or path).
    start
        Where Ling starts: a place name or "lat, lon".
    question
        Where Ling wants to go, asked of Local ("How do I get to Bryant Park?").
    init_heading
        Ling's heading at the start, degrees clockwise from north.
    max_asks
        Directions asked of Local in all (the first plus the re-asks after failures).
    actions
        The navigation env's action space: "absolute" (compass words) or "relative".
    max_attempts
        Answers allowed per rail position before a failure (V-IRL: 1, no revision).
    forward_points, drop_rate
        The env's forward positions per leg and the chance of dropping each.
    seed
        Seed of the env's resets (the forward positions kept).
    """

    city: str = "manhattan"
    start: str | tuple[float, float] = "Empire State Building"
    question: str = "How do I get to Bryant Park?"
    init_heading: int = 0
    max_asks: int = 3
    actions: str = "absolute"
    max_attempts: int = 1
    forward_points: int = 5
    drop_rate: float = 0.5
    seed: int = 0

    def validate(self) -> None:
        """Raise `ValueError` naming a bad option."""
        if self.max_asks < 1:
            raise ValueError(f"`max_asks` must be at least 1, got {self.max_asks}.")
        if self.max_attempts < 1:
            raise ValueError(f"`max_attempts` must be at least 1, got {self.max_attempts}.")


class Tourist:
    """Ling: follow Local's directions in the navigation env, asking again after a failure.

    Examples
    --------
    >>> from openvirl.agents import Tourist, TouristConfig
    >>> from openvirl.policies.registry import make_policy
    >>> ling = Tourist(TouristConfig(question="How do I get to Bryant Park?"),
    ...                policy=make_policy("oracle"))
    >>> ling.run().data["success"]                                    # doctest: +SKIP
    True

    Parameters
    ----------
    config
        The options (`TouristConfig`).
    policy
        Answers the env at every rail position; None: the rail's expert (oracle).
    local_policy
        Local's policy (reading the question, writing directions); None: Local's baseline.
    city
        An already loaded city.
    """

    def __init__(
        self,
        config: TouristConfig | None = None,
        policy: Policy | None = None,
        *,
        local_policy: Policy | None = None,
        city: City | None = None,
    ) -> None:
        self.config = config or TouristConfig()
        self.config.validate()
        self.policy = policy
        self.city = city if city is not None else load_city(self.config.city)
        self.log = LLMLog()
        self.local = DirectionGiver(
            DirectionGiverConfig(
                city=self.city.name,
                start=self.config.start,
                question=self.config.question,
                init_heading=self.config.init_heading,
            ),
            local_policy,
            city=self.city,
            log=self.log,
        )

    def _walk(self, nav: NavRoute, seed: int) -> dict[str, Any]:
        """One episode of the env on `nav`; returns the steps and where it ended."""
        from openvirl.envs.navigation.env import NavigationEnv
        from openvirl.policies.oracle import OraclePolicy

        cfg = self.config
        policy = self.policy or OraclePolicy()
        env = NavigationEnv(
            routes=[nav],
            city=self.city.name,
            actions=cfg.actions,
            max_attempts=cfg.max_attempts,
            forward_points=cfg.forward_points,
            drop_rate=cfg.drop_rate,
            order="fixed",
        )
        env.use_city(self.city)  # reuse the loaded city (visual views)
        _, info = env.reset(seed=seed, options={"route_index": 0})
        poses = [(info["lat"], info["lon"], info["heading"])]
        steps: list[dict[str, Any]] = []
        reset_info = {
            k: info[k] for k in ("route_id", "instruction", "rail_length", "init_heading")
        }
        terminated = False
        while not terminated:
            request = {"messages": env.messages(), "info": info}
            (reply,) = policy.act([request])
            entry = env.entry
            assert entry is not None
            _, reward, terminated, truncated, info = env.step(reply)
            steps.append(
                {
                    "attempt": len(steps) + 1,
                    "action": reply,
                    "gt_action": info.get("answered_gt_action"),
                    "outcome": info.get("outcome"),
                    "reward": reward,
                    "feedback": info.get("feedback"),
                    "entry_kind": entry.kind,
                    "position": [info["lat"], info["lon"]],
                    "heading": info["heading"],
                }
            )
            poses.append((info["lat"], info["lon"], info["heading"]))
            terminated = terminated or truncated
        end = env.entry
        assert end is not None
        return {
            "success": bool(info.get("success")),
            "steps": steps,
            "reset_info": reset_info,
            "end": (end.lat, end.lon),
            "end_heading": int(end.heading),
            "poses": poses,
        }

    def run(self, *, out_dir: str | Path | None = None) -> AgentResult:
        """Ask the way and walk it; write the run folder and map when `out_dir` is given.

        Returns
        -------
        AgentResult
            ``data``: ``success``, ``asks`` (how many times Local was asked), ``destination``,
            ``attempts`` (per ask: ``start``, ``instructions``, ``success``, ``steps`` with
            each action, outcome and position) and the LLM log.

        Raises
        ------
        PlaceNotFoundError
            The start or the destination is not in the city (closest names listed).
        """
        cfg = self.config
        origin = resolve_place(self.city, cfg.start, what="start")
        dest = self.local.destination(origin, cfg.question)
        here: Any = origin
        heading = cfg.init_heading
        attempts: list[dict[str, Any]] = []
        success = False
        for ask in range(cfg.max_asks):
            answer = self.local.directions(here, dest, init_heading=heading)
            walk = self._walk(answer["nav_route"], cfg.seed + ask)
            attempts.append(
                {
                    "ask": ask + 1,
                    "start": list(answer["nav_route"].points()[0]),
                    "start_heading": heading,
                    "instructions": answer["instructions"],
                    "route_length_m": round(answer["route"].length_m, 1),
                    "route": [list(p) for p in answer["route"].polyline],
                    "success": walk["success"],
                    "steps": walk["steps"],
                    "reset_info": walk["reset_info"],
                    "end": list(walk["end"]),
                }
            )
            if walk["success"]:
                success = True
                break
            here, heading = walk["end"], walk["end_heading"]
        data = {
            "city": self.city.name,
            "question": cfg.question,
            "start": origin.to_dict(),
            "destination": dest.to_dict(),
            "success": success,
            "asks": len(attempts),
            "attempts": attempts,
            "llm": self.log.to_list(),
        }
        n_steps = sum(len(a["steps"]) for a in attempts)
        n_correct = sum(s["outcome"] == "correct" for a in attempts for s in a["steps"])
        metrics = {
            "success": float(success),
            "asks": len(attempts),
            "steps": n_steps,
            "step_accuracy": n_correct / n_steps if n_steps else 0.0,
            **self.log.summary(),
        }
        result = AgentResult(LING, data, metrics=metrics)
        if out_dir is not None:
            out = Path(out_dir)
            colours = ("#1f6fd1", "#ef6c00", "#8e24aa", "#00838f")
            lines = [
                (
                    a["route"],
                    colours[k % len(colours)],
                    f"ask {a['ask']}: {'reached' if a['success'] else 'failed'}",
                )
                for k, a in enumerate(attempts)
            ]
            ends = [
                (a["end"][0], a["end"][1], "#d64541" if not a["success"] else "#2e9b4e", "")
                for a in attempts
            ]
            result.map_png = draw_map(
                self.city,
                out / "map.png",
                lines=lines,
                points=ends,
                start=(origin.lat, origin.lon, origin.name),
                title=f"Ling: to {dest.name} — {'reached' if success else 'not reached'} "
                f"after {len(attempts)} ask(s)",
            )
            result.out_dir = out
            episodes = out / "episodes.jsonl"
            with episodes.open("w", encoding="utf-8") as fh:
                for k, a in enumerate(attempts):
                    record = {
                        "index": k,
                        "task": "navigation",
                        "city": self.city.name,
                        "success": a["success"],
                        "route": a["route"],
                        "reset_info": {
                            **a["reset_info"],
                            "task": "navigation",
                            "city": self.city.name,
                            "position": a["start"],
                            "heading": a["start_heading"],
                        },
                        "steps": a["steps"],
                        "policy": policy_name(self.policy),
                    }
                    # _jsonable: model text may hold lone surrogates no encoder takes.
                    fh.write(json.dumps(_jsonable(record), ensure_ascii=False) + "\n")
            summary = [
                f"**Q:** {cfg.question} → {dest.name}",
                "",
                f"**{'Reached' if success else 'Not reached'}** after {len(attempts)} "
                f"ask(s), {n_steps} answers; policy `{policy_name(self.policy)}`.",
                "",
            ]
            for a in attempts:
                summary += [
                    f"### Ask {a['ask']} ({'reached' if a['success'] else 'failed'})",
                    "",
                    *[f"- {s}" for s in a["instructions"]],
                    "",
                ]
            write_agent_run(
                out,
                agent=LING,
                title="Tourist (Ling)",
                config=cfg,
                policy=self.policy,
                data=data,
                metrics=metrics,
                summary=summary,
                images=[result.map_png],
            )
        return result


__all__ = [
    "DirectionGiver",
    "DirectionGiverConfig",
    "Tourist",
    "TouristConfig",
    "question_query",
]
