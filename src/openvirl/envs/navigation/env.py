"""V-IRL street navigation on real OSM cities: follow an instruction along a rail of positions."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import gymnasium as gym

from openvirl.envs.navigation.actions import (
    ACTION_SPACES,
    FEEDBACK,
    FORWARD,
    REWARDS,
    STOP,
    Outcome,
    ParsedAnswer,
    action_space_text,
    claims_intersection,
    parse_answer,
    valid_actions,
)
from openvirl.envs.navigation.rail import (
    INSTRUCTION_STYLES,
    Rail,
    RailEntry,
    build_rail,
    facing_text,
)
from openvirl.envs.navigation.routes import NO_LANDMARK, NavRoute, read_routes, split_landmark
from openvirl.envs.navigation.splits import ROUTE_SETS, load_route_set, preset_options
from openvirl.envs.spaces import FreeText, OptionalImage
from openvirl.policies.base import Message, text_message
from openvirl.prompts import feedback_message, render

ORDERS = ("random", "fixed")
VL_OBSERVATION = "You observe an image of 4 views"
"""What a VL history line says instead of the landmark text (no oracle text leaks, §10.8)."""
INTERSECTION_TEXT = "You observe an intersection"
GRID_SEPARATOR_PX = 5
"""Black pixels between the four views of the grid (as in the reference's 2405 px grid)."""


@dataclass
class NavigationConfig:
    """Every option of a navigation environment.

    `validate()` raises `ValueError` naming the bad option and its allowed values. A
    ``preset`` (see `openvirl.envs.navigation.splits.PRESETS`) fills in the options it
    defines; options given explicitly win.
    """

    preset: str | None = None  # named preset: train, id, rule-ood, rule-ood-hard, visual-ood, human
    city: str = "manhattan"  # city of the train/test routes (visual-ood and human name their own)
    split: str = "train"  # route set: "train", "test" (held out), "visual-ood" or "human"
    actions: str = "absolute"  # "absolute": 8 compass words; "relative": left/right/slightly...
    instructions: str = "reference"  # "reference" or "headings" (no relative word; rule-OOD-hard)
    visual: bool = False  # VL: a 2x2 street-view grid replaces the landmark text
    max_attempts: int = 2  # verified attempts per rail position (sequential revision)
    forward_points: int = 5  # candidate forward positions per leg
    drop_rate: float = 0.5  # chance of dropping each candidate forward position
    routes: Any = None  # a JSONL / V-IRL route_infos.json path, or NavRoute objects or dicts
    order: str = "random"  # "random": draw per reset; "fixed": route i for episode_index=i
    stop_radius_m: float = 0.0  # stop() this close to the goal succeeds anywhere (human: 30)
    image_size: int = 1029  # side of the 2x2 view grid, pixels (VL): two 512 px views + 5 px
    intersection_hint: bool = True  # VL: the text still says when you are at an intersection
    imagery: str | None = None  # VL: "rendered" (default), "google" or "mapillary" (needs a key)
    imagery_fallback: bool = False  # VL: draw from the map where the provider has no imagery

    def validate(self) -> None:
        """Check every option; raise `ValueError` with the allowed values."""
        if self.actions not in ACTION_SPACES:
            raise ValueError(f"`actions` must be one of {ACTION_SPACES}, got {self.actions!r}.")
        if self.instructions not in INSTRUCTION_STYLES:
            raise ValueError(
                f"`instructions` must be one of {INSTRUCTION_STYLES}, got {self.instructions!r}."
            )
        if self.split not in ROUTE_SETS:
            raise ValueError(f"`split` must be one of {ROUTE_SETS}, got {self.split!r}.")
        if self.order not in ORDERS:
            raise ValueError(f"`order` must be one of {ORDERS}, got {self.order!r}.")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"`max_attempts` must be an integer >= 1, got {self.max_attempts!r}.")
        if not isinstance(self.forward_points, int) or not 0 <= self.forward_points <= 50:
            raise ValueError(f"`forward_points` must be in 0..50, got {self.forward_points!r}.")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"`drop_rate` must be in [0, 1), got {self.drop_rate!r}.")
        if self.stop_radius_m < 0:
            raise ValueError(f"`stop_radius_m` must be >= 0, got {self.stop_radius_m!r}.")
        if not 64 <= self.image_size <= 4096:
            raise ValueError(f"`image_size` must be in 64..4096 pixels, got {self.image_size!r}.")
        if self.imagery not in (None, "rendered", "google", "mapillary"):
            raise ValueError(
                "`imagery` must be one of None, 'rendered', 'google', 'mapillary', "
                f"got {self.imagery!r}."
            )


def _first_person(text: str) -> str:
    """An oracle observation as the walker says it: "your" → "my", "You observe" → "I observe"."""
    return (
        text.replace("You observe", "I observe")
        .replace("You are facing", "I am facing")
        .replace(" your ", " my ")
    )


def landmark_correct(stated: str | None, truth: str) -> bool:
    """Whether a stated observation recognises the landmark of the oracle text `truth`.

    With a landmark, its name must appear in the statement (case-insensitive, fuzzy with
    rapidfuzz when installed, so "Aritzia store" or a small typo still counts); without
    one, the statement must not name any landmark ("No landmarks nearby", or no
    "... is on my/your ..." clause).
    """
    if not stated:
        return False
    low = stated.lower()
    name, _ = split_landmark(truth)
    if name is None:
        return "no landmark" in low or not any(
            k in low for k in (" is on ", " on my ", " on your ")
        )
    target = name.lower()
    if target in low:
        return True
    try:
        from rapidfuzz import fuzz
    except ImportError:  # pragma: no cover - rapidfuzz comes with the world extra
        return False
    return fuzz.partial_ratio(target, low) >= 85.0


def _warn_non_streetscapes(routes: Sequence[NavRoute]) -> None:
    """Say once per city when visual routes lie in an extract with few buildings."""
    from openvirl.envs.navigation.splits import VISUAL_OOD_CAVEATS

    for city in dict.fromkeys(r.city for r in routes):
        if city in VISUAL_OOD_CAVEATS:
            warnings.warn(
                f"visual routes in {city}: {VISUAL_OOD_CAVEATS[city]}; results there do not "
                f"measure street-view navigation (`openvirl city info {city}`).",
                stacklevel=3,
            )


class NavigationEnv(gym.Env[dict[str, Any], str]):
    """
    ## Description
    The V-IRL navigation task of "SFT Memorizes, RL Generalizes" (Chu et al., 2025), on real
    OpenStreetMap cities. An episode follows one route: a numbered instruction ("First, turn
    slightly left to face northwest. Move forward until you reach the next intersection,
    where Prince St is ahead of you. ...") and a *rail* of ground-truth positions along the
    real streets: the start, forward positions along each leg, a turn at each turning point
    and a stop at the destination. At each position the agent answers with its current
    observation, the instruction sentence it executes and an action; a correct action moves
    it to the next position, a wrong one comes back as ``You failed this trial because
    <message>`` and it may revise (sequential revision) up to `max_attempts` times.

    Variants: ``actions="absolute"`` (the 8 compass words; training rule) or ``"relative"``
    (left, right, slightly left, slightly right; rule OOD); ``instructions="headings"``
    removes the relative words so they must be derived from headings; ``visual=True``
    replaces the landmark text with a 2x2 grid of rendered street views (front, right / back,
    left). Named presets (`preset=`): train, id, rule-ood, rule-ood-hard, visual-ood, human.

    ## Action Space
    `FreeText`: the model's whole reply, ideally ``{"current observation": ..., "current
    instruction": ..., "action": "turn_direction(north)"}``. Actions: ``forward()``,
    ``turn_direction(x)``, ``stop()``; parsing tolerates case, quotes, spaces and variants
    such as ``turn_direction('north-east')`` or ``NE``.

    ## Observation Space
    A dict: ``"prompt"`` (`FreeText`: task, instruction, action space, the history of
    executed observations and actions, output format) and ``"image"`` (`OptionalImage`: the
    ``image_size``² view grid in VL, ``None`` in L). The conversation so far at the current
    position is `messages()`.

    ## Rewards
    | outcome            | reward | when                                                         |
    |--------------------|--------|--------------------------------------------------------------|
    | correct            | +1     | the action is the rail's action (or a stop within             |
    |                    |        | `stop_radius_m` of the goal)                                  |
    | wrong_action       | -1     | any other action, or no readable action                       |
    | wrong_observation  | -1.5   | wrong action, and the stated observation claims an            |
    |                    |        | intersection where there is none, or misses a real one        |
    | attempts_exhausted | -1     | added to the last attempt at a position when it also fails    |

    All values come from `openvirl.envs.navigation.actions.REWARDS`.

    ## Starting State
    A route drawn from `self.np_random` out of the split's routes (``order="fixed"``: route
    ``i`` for ``options={"episode_index": i}``, so an evaluation plays every route once, in
    order, without replacement), and a rail: forward positions dropped with
    `drop_rate`, and a random initial heading (stated in the first observation) when the
    route has none. ``reset(options={"route_index": i})`` or ``{"route_id": ...}`` picks a
    route; ``{"init_heading": deg}`` fixes the heading.

    ## Episode End
    1. Termination: a correct ``stop()`` (success).
    2. Termination: the ``max_attempts``-th answer at one position is wrong (no success; the
       budget is part of the task, so nothing is bootstrapped past it).
    3. Truncation: only by a `TimeLimit` wrapper (``max_episode_steps`` at registration).

    ## Arguments
    ```python
    >>> import gymnasium as gym, openvirl
    >>> env = gym.make("openvirl/Navigation-v0", city="manhattan", actions="absolute",
    ...                visual=False, split="train")
    >>> obs, info = env.reset(seed=0)
    ```
    See `NavigationConfig` for every option.

    ## Info
    ``task`` ("navigation"), ``city``, ``route_id``, ``split``, ``actions``, ``visual``,
    ``instruction``, ``position``, ``rail_length``, ``entry_kind``, ``at_intersection``,
    ``attempt`` (at this position), ``max_attempts``, ``gt_action``, ``expert_answer``,
    ``wrong_answer``, ``valid_actions``, ``success``, ``difficulty``; after a step also
    ``outcome``, ``feedback``, ``parsed_action``, ``parse_error``, ``stated_observation``,
    ``landmark_correct``, ``intersection_correct`` (for the stated observation),
    ``answer_attempt``, ``answered_position``, ``answered_gt_action``, ``moved``, and
    ``episode_outcome`` once the episode ends. After a correct move the position keys describe
    the new position (``attempt`` restarts at 0), so the next request carries what it needs.

    ## Version History
    * v0: initial release.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 1}

    def __init__(self, render_mode: str | None = None, **options: Any):
        preset = options.get("preset")
        merged = {**(preset_options(preset) if preset else {}), **options}
        self.config = NavigationConfig(**merged)
        self.config.validate()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"`render_mode` must be None or 'rgb_array', got {render_mode!r}.")
        self.render_mode = render_mode
        cfg = self.config
        if cfg.routes is not None:
            self.routes: tuple[NavRoute, ...] = _coerce_routes(cfg.routes, city=cfg.city)
            if not _trusted(cfg.routes):
                # A file or dicts from outside: every point must lie on its city's map, in
                # text mode too (a San Francisco route must not play as Manhattan).
                from openvirl.envs.navigation.virl_io import check_routes_inside

                check_routes_inside(self.routes)
        else:
            self.routes = load_route_set(cfg.city, cfg.split)
        if cfg.visual:
            _warn_non_streetscapes(self.routes)
        if not self.routes:
            raise ValueError("the route set is empty; pass another `split` or `routes` file.")
        self._by_id = {r.route_id: i for i, r in enumerate(self.routes)}
        size = (cfg.image_size, cfg.image_size)
        self.observation_space = gym.spaces.Dict(
            {"prompt": FreeText(), "image": OptionalImage(size if cfg.visual else None)}
        )
        self.action_space = FreeText()
        self._template = "navigation_vision" if cfg.visual else "navigation_language"
        self._space_text = action_space_text(cfg.actions)
        self._valid = valid_actions(cfg.actions)
        self._cities: dict[str, Any] = {}
        self._view_sources: dict[str, Any] = {}  # imagery providers by city (config.imagery)
        self._route: NavRoute | None = None
        self._rail: Rail | None = None
        self._pos = 0
        self._attempt = 0
        self._history: list[tuple[str, str]] = []
        self._prompt_text = ""
        self._image: Any = None
        self._messages: list[Message] = []
        self._info: dict[str, Any] = {}
        self._done = True
        self._steps = 0

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """The env without its cities and, for a named split, its route set: vector-env
        workers and copies load them by name in their own process (`City.load` reads its
        cache) instead of receiving megabytes through a pipe."""
        state = self.__dict__.copy()
        state["_cities"] = {}
        state["_view_sources"] = {}  # imagery clients reconnect in the worker
        if self.config.routes is None:
            state["routes"] = None
            state["_by_id"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_view_sources", {})
        if self.routes is None:
            self.routes = load_route_set(self.config.city, self.config.split)
            self._by_id = {r.route_id: i for i, r in enumerate(self.routes)}

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        cfg = self.config
        options = options or {}
        index = self._route_index(options)
        route = self.routes[index]
        init = options.get("init_heading")
        self._route = route
        self._rail = build_rail(
            route,
            self.np_random,
            init_heading=None if init is None else int(init),
            forward_points=cfg.forward_points,
            drop_rate=cfg.drop_rate,
            style=cfg.instructions,
        )
        self._pos = 0
        self._attempt = 0
        self._steps = 0
        self._history = []
        self._done = False
        self._enter_position()
        return self._observation(), self._info_copy()

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._done:
            if self._rail is None:
                raise RuntimeError("Call `reset()` before `step()`.")
            warnings.warn(
                "step() called after the episode ended; call reset(). Returning reward 0.",
                stacklevel=2,
            )
            return self._observation(), 0.0, True, False, self._info_copy()
        cfg = self.config
        assert self._rail is not None
        entry = self._rail.entries[self._pos]
        # A non-text answer is verifier feedback, never a crash: its repr may recurse without
        # end (a 100k-deep list) or raise, so only its type is shown.
        text = action if isinstance(action, str) else f"<{type(action).__name__}>"
        self._attempt += 1
        self._steps += 1
        parsed = parse_answer(action if isinstance(action, str) else None)
        outcome, message = self._verify(parsed, entry)
        reward = REWARDS[outcome]
        info = dict(self._info)
        info.update(
            attempt=self._attempt,
            answer_attempt=self._attempt,
            answered_position=self._pos,
            answered_gt_action=entry.action(cfg.actions),
            outcome=outcome.value,
            feedback=message,
            parsed_action=parsed.action,
            parse_error=parsed.error,
            stated_observation=parsed.observation,
            landmark_correct=landmark_correct(parsed.observation, entry.landmark),
            answered_has_landmark=split_landmark(entry.landmark)[0] is not None,
            intersection_correct=(
                parsed.observation is not None
                and claims_intersection(parsed.observation) == entry.intersection
            ),
            moved=False,
            steps=self._steps,
        )
        terminated = False
        if outcome is Outcome.CORRECT:
            if parsed.action == STOP:
                terminated = True
                info.update(success=True, episode_outcome=Outcome.CORRECT.value)
                self._messages.append(text_message("assistant", text))
            else:
                self._history.append((self._observation_text(entry), entry.action(cfg.actions)))
                self._pos += 1
                self._attempt = 0
                self._enter_position()
                # The info now describes the new position (what the next answer is about),
                # plus what the verified answer was; `attempt` restarts at 0 there.
                info = {**self._info, **{k: info[k] for k in _STEP_KEYS}, "moved": True}
        elif self._attempt >= cfg.max_attempts:
            terminated = True
            reward += REWARDS[Outcome.ATTEMPTS_EXHAUSTED]
            info.update(success=False, episode_outcome=Outcome.ATTEMPTS_EXHAUSTED.value)
            self._messages.append(text_message("assistant", text))
        else:
            self._messages.append(text_message("assistant", text))
            self._messages.append(text_message("user", feedback_message(message)))
        self._done = terminated
        self._info = info
        return self._observation(), float(reward), terminated, False, self._info_copy()

    def render(self) -> Any:
        """The current view grid as an ``(H, W, 3)`` uint8 array (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'.")
            return None
        import numpy as np

        image = self._image if self._image is not None else self.view_grid()
        return np.asarray(image)

    # ------------------------------------------------------------------ conversation
    def messages(self) -> list[Message]:
        """The conversation at the current position as chat messages.

        A correct move starts a new conversation: one user turn with the rebuilt prompt (and
        the view grid first, in VL). Every wrong attempt adds the assistant's reply and a
        user turn ``You failed this trial because <message>`` (spec §4.3).
        """
        return list(self._messages)

    @property
    def position(self) -> int:
        """Index of the current rail position (0 at the start)."""
        return self._pos

    @property
    def done(self) -> bool:
        """Whether the current episode has ended (call `reset`)."""
        return self._done

    def use_city(self, city: Any) -> None:
        """Reuse an already loaded `City` (by its name) instead of loading it again."""
        self._cities[city.name] = city

    @property
    def route(self) -> NavRoute | None:
        """The route of the current episode."""
        return self._route

    @property
    def rail(self) -> Rail | None:
        """The rail of the current episode."""
        return self._rail

    @property
    def entry(self) -> RailEntry | None:
        """The current rail entry."""
        return None if self._rail is None else self._rail.entries[self._pos]

    def view_grid(self, entry: RailEntry | None = None) -> Any:
        """The 2x2 street-view grid (front, right / back, left) at a rail entry (PIL image).

        Raises
        ------
        ImportError
            When the street-view renderer (`openvirl.world.streetview`) is not installed.
        """
        entry = entry or self.entry
        if entry is None or self._route is None:
            raise RuntimeError("Call `reset()` before `view_grid()`.")
        try:
            from openvirl.world.streetview import view_grid
        except ImportError as err:  # the renderer lands separately
            raise ImportError(
                "visual navigation needs the street-view renderer `openvirl.world.streetview` "
                f"and the world extra (pip install 'openvirl[world]'): {err}"
            ) from None
        city = self._city(self._route.city)
        side = self.config.image_size
        view = (side - GRID_SEPARATOR_PX) // 2
        # No heading labels: the prompt states the layout, and the reference had none.
        grid = view_grid(
            city,
            entry.lat,
            entry.lon,
            entry.view_heading,
            size=(view, view),
            labels=False,
            source=self._view_source(city),
        )
        if grid.size != (side, side):  # an even `image_size`: pad with the separator colour
            from PIL import Image

            canvas = Image.new("RGB", (side, side), (0, 0, 0))
            canvas.paste(grid, (0, 0))
            grid = canvas
        return grid

    # ------------------------------------------------------------------ internals
    def _route_index(self, options: dict[str, Any]) -> int:
        n = len(self.routes)
        if options.get("route_id") is not None:
            rid = str(options["route_id"])
            if rid not in self._by_id:
                raise ValueError(f"unknown `route_id` {rid!r} in this route set ({n} routes).")
            return self._by_id[rid]
        if options.get("route_index") is not None:
            return int(options["route_index"]) % n
        if self.config.order == "fixed" and options.get("episode_index") is not None:
            return int(options["episode_index"]) % n
        # Without an episode index (or in random order) the seed decides; a per-env counter
        # would hand route 0 to every env of a batched evaluation.
        return int(self.np_random.integers(n))

    def _view_source(self, city: Any) -> Any:
        """The imagery provider of `config.imagery` (else `$OPENVIRL_IMAGERY`, so that
        `openvirl eval` and training take it without an option) for `city`; None: the city's
        own source, rendered unless `set_view_source` chose another. Built once per city."""
        name = self.config.imagery or os.environ.get("OPENVIRL_IMAGERY") or None
        if name is None:
            return None
        if city.name not in self._view_sources:
            from openvirl.world.providers import view_source_for

            fallback = self.config.imagery_fallback or os.environ.get(
                "OPENVIRL_IMAGERY_FALLBACK", ""
            ).strip().lower() in ("1", "true", "yes")
            self._view_sources[city.name] = view_source_for(name, city, fallback=fallback)
        return self._view_sources[city.name]

    def _city(self, name: str) -> Any:
        if name not in self._cities:
            from openvirl.world import City

            self._cities[name] = City.load(name)
        return self._cities[name]

    def _observation_text(self, entry: RailEntry) -> str:
        """The O-line of an entry: oracle text in L; no landmark text in VL (§10.8)."""
        cfg = self.config
        parts = [VL_OBSERVATION if cfg.visual else entry.landmark]
        if entry.intersection and (not cfg.visual or cfg.intersection_hint):
            parts.append(INTERSECTION_TEXT)
        if entry.kind == "start":
            parts.append(facing_text(entry.heading))
        return "; ".join(parts)

    def _oracle_observation(self, entry: RailEntry) -> str:
        """What an expert states as its observation (first person, always with the landmark)."""
        parts = [entry.landmark]
        if entry.intersection:
            parts.append(INTERSECTION_TEXT)
        if entry.kind == "start":
            parts.append(facing_text(entry.heading))
        return _first_person("; ".join(parts))

    def _answer(self, entry: RailEntry, action: str) -> str:
        assert self._rail is not None
        payload = {
            "current observation": self._oracle_observation(entry),
            "current instruction": self._rail.sentences[entry.sentence],
            "action": action,
        }
        return json.dumps(payload, ensure_ascii=False)

    def _history_text(self, entry: RailEntry) -> str:
        lines = []
        for i, (obs, act) in enumerate(self._history, 1):
            lines += [f"O_{i}: {obs}", f"A_{i}: {act}"]
        n = len(self._history) + 1
        lines += [f"O_{n}: {self._observation_text(entry)}", f"A_{n}: "]
        return "\n".join(lines)

    def _enter_position(self) -> None:
        """Build the prompt, image, conversation and info of the current position."""
        cfg = self.config
        assert self._rail is not None and self._route is not None
        rail, route = self._rail, self._route
        entry = rail.entries[self._pos]
        instruction = "\n".join(f"{i}. {s}" for i, s in enumerate(rail.sentences, 1))
        self._prompt_text = render(
            self._template,
            instruction=instruction,
            action_space=self._space_text,
            history=self._history_text(entry),
        )
        self._image = self.view_grid(entry) if cfg.visual else None
        self._messages = [text_message("user", self._prompt_text, self._image)]
        gt = entry.action(cfg.actions)
        wrong = FORWARD if gt != FORWARD else next(a for a in self._valid if a != FORWARD)
        n_landmarks = sum(1 for m in route.milestones if m.landmark != NO_LANDMARK)
        self._info = {
            "task": "navigation",
            "city": route.city,
            "route_id": route.route_id,
            "split": cfg.split,
            "actions": cfg.actions,
            "instructions": cfg.instructions,
            "visual": cfg.visual,
            "instruction": instruction,
            "init_heading": rail.init_heading,
            "position": self._pos,
            "rail_length": len(rail),
            "entry_kind": entry.kind,
            "at_intersection": entry.intersection,
            "landmark": entry.landmark,
            "lat": entry.lat,
            "lon": entry.lon,
            "heading": entry.heading,
            "goal_distance_m": round(entry.goal_distance_m, 1),
            "attempt": 0,
            "max_attempts": cfg.max_attempts,
            "gt_action": gt,
            "expert_answer": self._answer(entry, gt),
            "wrong_answer": self._answer(entry, wrong),
            "valid_actions": [self._answer(entry, a) for a in self._valid],
            "success": False,
            "steps": self._steps,
            "difficulty": {
                "n_turns": route.n_turns,
                "length_m": round(route.length_m, 1),
                "rail_length": len(rail),
                "n_landmarks": n_landmarks,
            },
        }

    def _verify(self, parsed: ParsedAnswer, entry: RailEntry) -> tuple[Outcome, str]:
        """The outcome of one answer at `entry` and the verifier's message."""
        cfg = self.config
        gt = entry.action(cfg.actions)
        action = parsed.action
        if action == gt:
            return Outcome.CORRECT, FEEDBACK["correct"]
        if action == STOP and cfg.stop_radius_m > 0 and entry.goal_distance_m <= cfg.stop_radius_m:
            return Outcome.CORRECT, FEEDBACK["correct"]
        if action is None:
            return Outcome.WRONG_ACTION, FEEDBACK["no_action"].replace(
                "{problem}", str(parsed.error)
            )
        if parsed.observation is not None:
            # Fixed §10.5: the truth includes the intersection flag, so both messages are
            # reachable and neither is ever false.
            claimed = claims_intersection(parsed.observation)
            if claimed and not entry.intersection:
                return Outcome.WRONG_OBSERVATION, FEEDBACK["not_at_intersection"]
            if entry.intersection and not claimed:
                return Outcome.WRONG_OBSERVATION, FEEDBACK["missed_intersection"]
        if action not in self._valid:
            return Outcome.WRONG_ACTION, FEEDBACK["outside_space"].replace("{action}", action)
        return Outcome.WRONG_ACTION, FEEDBACK["wrong_action"]

    def _observation(self) -> dict[str, Any]:
        return {"prompt": self._prompt_text, "image": self._image}

    def _info_copy(self) -> dict[str, Any]:
        """A fresh info dict: callers keep what they get, so no list or dict is shared."""
        return {k: v.copy() if isinstance(v, (list, dict)) else v for k, v in self._info.items()}


_STEP_KEYS = (
    "answer_attempt",
    "answered_position",
    "answered_gt_action",
    "outcome",
    "feedback",
    "parsed_action",
    "parse_error",
    "stated_observation",
    "landmark_correct",
    "answered_has_landmark",
    "intersection_correct",
    "steps",
)
"""Keys describing the answer just verified; kept in the info of the position moved to."""


def _trusted(routes: Any) -> bool:
    """Whether `routes` are `NavRoute` objects (built by openvirl in their city, not read)."""
    if isinstance(routes, NavRoute):
        return True
    return isinstance(routes, (list, tuple)) and all(isinstance(r, NavRoute) for r in routes)


def _coerce_routes(routes: Any, *, city: str) -> tuple[NavRoute, ...]:
    """Routes from a file path, or from a sequence of `NavRoute` objects or their dicts."""
    from pathlib import Path

    if isinstance(routes, (str, Path)):
        return tuple(read_routes(routes, city=city))
    if isinstance(routes, NavRoute):
        return (routes,)
    try:
        items = list(routes)
    except TypeError:
        raise ValueError(
            "`routes` must be a route file path or a sequence of NavRoute objects or dicts, "
            f"got {type(routes).__name__}."
        ) from None
    return tuple(
        r if isinstance(r, NavRoute) else NavRoute.from_dict(r, where=f"routes[{i}]")
        for i, r in enumerate(items)
    )


def config_dict(env: gym.Env) -> dict[str, Any]:
    """The JSON-able configuration of a (possibly wrapped) navigation env."""
    return asdict(env.unwrapped.config)
