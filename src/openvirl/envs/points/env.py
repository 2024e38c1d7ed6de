"""GeneralPoints: reach a target number with four playing cards, with verifier feedback."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import gymnasium as gym

from openvirl.envs.points.cards import RANK_LABELS, SUIT_POOLS, Card, card_value, deal_hand
from openvirl.envs.points.parsing import parse_answer
from openvirl.envs.points.solver import solution_table
from openvirl.envs.points.splits import DEFAULT_TEST_PERCENT, SPLIT_UNITS, SPLITS, split_of
from openvirl.envs.points.verifier import REWARDS, Outcome, Verdict, check
from openvirl.envs.spaces import FreeText, OptionalImage
from openvirl.policies.base import Message, text_message
from openvirl.prompts import feedback_message, render

RULES = ("id", "ood")
DEALS = ("replacement", "deck")
MAX_REDRAWS = 10_000
"""Guard for split-restricted dealing; a split holds hundreds of multisets, so this never binds."""

_RULE_SENTENCES = {
    "id": "'A' counts as 1, and 'J', 'Q' and 'K' each count as 10.",
    "ood": "'A' counts as 1, and 'J', 'Q' and 'K' count as 11, 12 and 13 respectively.",
}
_UNSOLVABLE_SENTENCE = (
    '\nSome hands cannot reach {target}; for such a hand answer with the formula "no solution".'
)


@dataclass
class PointsConfig:
    """Every option of a GeneralPoints environment.

    `validate()` raises `ValueError` naming the bad option and its allowed values.
    """

    rule: str = "id"  # "id": J/Q/K count 10; "ood": 11/12/13 and a face card in every hand
    visual: bool = False  # GP-VL: the cards come as an image and must be recognised
    suits: str = "mixed"  # suit pool for every card: "mixed", "black" or "red"
    target: int = 24  # the value the formula must reach
    max_attempts: int = 5  # verified attempts per hand (sequential revision)
    deal: str = "replacement"  # "replacement": iid ranks (reference); "deck": distinct cards
    allow_unsolvable: bool = False  # deal unsolvable hands too; "no solution" is then the answer
    split: str | None = None  # None: any hand; "train"/"test": hashed split of multisets
    split_by: str = "values"  # multisets of "values" (strict) or "ranks" (paper-like ID)
    test_percent: int = DEFAULT_TEST_PERCENT  # share of multisets held out for "test"
    n_cards: int = 4  # cards per hand (difficulty: fewer is easier)
    ranks: tuple[int, int] = (1, 13)  # rank range [lo, hi] dealt (keep 13 for face cards)
    image_size: int = 1200  # side of the square card-table image in pixels

    def validate(self) -> None:
        """Check every option; raise `ValueError` with the allowed values."""
        if self.rule not in RULES:
            raise ValueError(f"`rule` must be one of {RULES}, got {self.rule!r}.")
        if self.suits not in SUIT_POOLS:
            raise ValueError(f"`suits` must be one of {tuple(SUIT_POOLS)}, got {self.suits!r}.")
        if self.deal not in DEALS:
            raise ValueError(f"`deal` must be one of {DEALS}, got {self.deal!r}.")
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"`split` must be None or one of {SPLITS}, got {self.split!r}.")
        if not isinstance(self.target, int) or not 1 <= self.target <= 10_000:
            raise ValueError(f"`target` must be an integer in 1..10000, got {self.target!r}.")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"`max_attempts` must be an integer >= 1, got {self.max_attempts!r}.")
        if self.split_by not in SPLIT_UNITS:
            raise ValueError(f"`split_by` must be one of {SPLIT_UNITS}, got {self.split_by!r}.")
        if not 0 < self.test_percent < 100:
            raise ValueError(f"`test_percent` must be in 1..99, got {self.test_percent!r}.")
        if not isinstance(self.n_cards, int) or not 1 <= self.n_cards <= 4:
            raise ValueError(f"`n_cards` must be an integer in 1..4, got {self.n_cards!r}.")
        ranks = tuple(self.ranks) if isinstance(self.ranks, (list, tuple)) else ()
        if len(ranks) != 2 or not all(isinstance(r, int) for r in ranks):
            raise ValueError(f"`ranks` must be two integers [lo, hi], got {self.ranks!r}.")
        if not 1 <= ranks[0] <= ranks[1] <= 13:
            raise ValueError(f"`ranks` must satisfy 1 <= lo <= hi <= 13, got {self.ranks!r}.")
        self.ranks = ranks
        if not 64 <= self.image_size <= 4096:
            raise ValueError(f"`image_size` must be in 64..4096 pixels, got {self.image_size!r}.")


def expert_answer(cards: list[Card], numbers: list[int], formula: str, target: int) -> str:
    """The reference answer for a hand: one line of JSON (the SFT target).

    `formula` is a solution string, or ``"no solution"`` for an unsolvable hand.
    """
    shown = formula if formula == "no solution" else f"{formula}={target}"
    payload = {"cards": [c.label for c in cards], "number": numbers, "formula": shown}
    return json.dumps(payload, ensure_ascii=False)


def simplest_solution(solutions: tuple[str, ...]) -> str:
    """The solution an expert would write: fewest parentheses, then shortest, then sorted."""
    return min(solutions, key=lambda s: (s.count("("), len(s), s))


class GeneralPointsEnv(gym.Env[dict[str, Any], str]):
    """
    ## Description
    The GeneralPoints card game of "SFT Memorizes, RL Generalizes" (Chu et al., 2025): four
    playing cards are dealt and the agent must write a formula that uses each card's number
    exactly once and evaluates to the target (24). Answers are free text containing a JSON
    object ``{"cards": [...], "number": [...], "formula": "..."}``; a safe verifier parses the
    formula (never `eval`) and computes it with exact fractions. A wrong answer comes back as
    ``You failed this trial because <message>`` and the agent may revise it (sequential
    revision) until it is correct or `max_attempts` answers were verified.

    Variants: ``rule="id"`` (J/Q/K count 10) or ``"ood"`` (11/12/13, at least one face card
    per hand); ``visual=True`` shows the cards only as an image (GP-VL) and first checks the
    recognised cards; ``suits`` picks the suit pool (GP-VL trains on black, visual-OOD is red).

    ## Action Space
    `FreeText`: any string (the model's whole reply).

    ## Observation Space
    A dict: ``"prompt"`` (`FreeText`, the task prompt of the first turn) and ``"image"``
    (`OptionalImage`: the ``image_size``² card table in GP-VL, ``None`` in GP-L). The whole
    conversation so far (prompt, answers, feedback turns) is `messages()`.

    ## Rewards
    | outcome            | reward | when                                                      |
    |--------------------|--------|-----------------------------------------------------------|
    | correct            | +5     | legal formula, each card once, equals the target exactly  |
    | wrong_value        | -1     | legal formula with the right numbers, wrong value         |
    | wrong_numbers      | -2     | numbers not on the cards, used too often, or unused       |
    | illegal_formula    | -3     | illegal characters, syntax, parentheses, division by zero |
    | no_answer          | -3     | no formula could be extracted from the reply              |
    | wrong_cards        | -1.5   | GP-VL only: the recognised cards are not the dealt ones   |
    | attempts_exhausted | -1     | added to the last attempt's reward when it also fails     |

    All values come from `openvirl.envs.points.verifier.REWARDS`.

    ## Starting State
    A hand drawn from `self.np_random` (solvable unless ``allow_unsolvable``), restricted to
    the hashed ``split`` when one is given. ``reset(options={"cards": [(rank, suit), ...]})``
    deals a given hand instead.

    ## Episode End
    1. Termination: the answer is correct.
    2. Termination: the ``max_attempts``-th verified answer is wrong (the budget is part of
       the task, so nothing is bootstrapped past it; the reference instead truncated and
       trained a discarded extra generation).
    3. Truncation: only by a `TimeLimit` wrapper (``max_episode_steps`` at registration).

    ## Arguments
    ```python
    >>> import gymnasium as gym, openvirl
    >>> env = gym.make("openvirl/GeneralPoints-v0", rule="id", visual=False, suits="mixed",
    ...                target=24, max_attempts=5, deal="replacement")
    >>> obs, info = env.reset(seed=0)
    ```
    See `PointsConfig` for every option.

    ## Info
    ``task``, ``cards`` (labels), ``card_codes``, ``numbers``, ``target``, ``rule``,
    ``solutions``, ``solvable``, ``difficulty``, ``split``, ``attempt``, ``max_attempts``,
    ``expert_answer``; after a step also ``outcome``, ``feedback``, ``value``,
    ``recognized_cards``, ``parse_error``, and ``episode_outcome`` once the episode ends.

    ## Version History
    * v0: initial release.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 1}

    def __init__(self, render_mode: str | None = None, **options: Any):
        self.config = PointsConfig(**options)
        self.config.validate()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"`render_mode` must be None or 'rgb_array', got {render_mode!r}.")
        self.render_mode = render_mode
        cfg = self.config
        self._table = solution_table(cfg.target, cfg.n_cards)
        size = (cfg.image_size, cfg.image_size)
        self.observation_space = gym.spaces.Dict(
            {"prompt": FreeText(), "image": OptionalImage(size if cfg.visual else None)}
        )
        self.action_space = FreeText()
        template = "points_vision" if cfg.visual else "points_language"
        self._template = template
        self._rule_sentence = _RULE_SENTENCES[cfg.rule]
        self._unsolvable_sentence = (
            _UNSOLVABLE_SENTENCE.format(target=cfg.target) if cfg.allow_unsolvable else ""
        )
        self._cards: list[Card] = []
        self._image: Any = None
        self._messages: list[Message] = []
        self._prompt_text = ""
        self._info: dict[str, Any] = {}
        self._attempt = 0
        self._done = True

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """The env without its solution table (about 800 KB): vector-env workers and
        copies look the table up by ``(target, n_cards)`` in their own process instead."""
        state = self.__dict__.copy()
        state["_table"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._table = solution_table(self.config.target, self.config.n_cards)

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        cfg = self.config
        if options and options.get("cards") is not None:
            cards = self._cards_from_option(options["cards"])
        else:
            cards = self._deal()
        self._cards = cards
        numbers = [card_value(c.rank, cfg.rule) for c in cards]
        solutions = self._table.solutions(numbers)
        difficulty = self._table.difficulty(numbers)
        prompt = self._prompt(cards)
        self._image = self._render_image() if cfg.visual else None
        self._prompt_text = prompt
        self._messages = [text_message("user", prompt, self._image)]
        self._attempt = 0
        self._done = False
        answer = simplest_solution(solutions) if solutions else "no solution"
        self._info = {
            "task": "points",
            "cards": [c.label for c in cards],
            "card_codes": [c.code for c in cards],
            "numbers": numbers,
            "target": cfg.target,
            "rule": cfg.rule,
            "visual": cfg.visual,
            "solutions": list(solutions),
            "solvable": bool(solutions),
            "difficulty": difficulty,
            "split": self._split_of(cards),
            "attempt": 0,
            "max_attempts": cfg.max_attempts,
            "expert_answer": expert_answer(cards, numbers, answer, cfg.target),
        }
        return {"prompt": prompt, "image": self._image}, self._info_copy()

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        obs = {"prompt": self._prompt_text, "image": self._image}
        if self._done:
            if not self._cards:
                raise RuntimeError("Call `reset()` before `step()`.")
            warnings.warn(
                "step() called after the episode ended; call reset(). Returning reward 0.",
                stacklevel=2,
            )
            return obs, 0.0, True, False, self._info_copy()
        cfg = self.config
        # A non-text answer counts as no answer, never a crash (its repr may recurse or raise).
        text = action if isinstance(action, str) else ""
        self._attempt += 1
        verdict, parsed_cards, parse_error = self._verify(text)
        reward = verdict.reward
        terminated = verdict.outcome is Outcome.CORRECT
        info = dict(self._info)
        info.update(
            attempt=self._attempt,
            outcome=verdict.outcome.value,
            feedback=verdict.message,
            value=None if verdict.value is None else str(verdict.value),
            recognized_cards=parsed_cards,
            parse_error=parse_error,
        )
        if terminated:
            info["episode_outcome"] = Outcome.CORRECT.value
        elif self._attempt >= cfg.max_attempts:
            terminated = True
            reward += REWARDS[Outcome.ATTEMPTS_EXHAUSTED]
            info["episode_outcome"] = Outcome.ATTEMPTS_EXHAUSTED.value
        self._messages.append(text_message("assistant", text))
        if not terminated:
            self._messages.append(text_message("user", feedback_message(verdict.message)))
        self._done = terminated
        self._info = info
        return obs, float(reward), terminated, False, self._info_copy()

    def render(self) -> Any:
        """The card table as an ``(H, W, 3)`` uint8 array (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'.")
            return None
        import numpy as np

        image = self._image if self._image is not None else self._render_image()
        return np.asarray(image)

    # ------------------------------------------------------------------ conversation
    def messages(self) -> list[Message]:
        """The conversation so far as chat messages (image first in the first user turn).

        The first user turn is the prompt; every wrong attempt adds the assistant's reply
        and a user turn ``You failed this trial because <message>``.
        """
        return list(self._messages)

    @property
    def cards(self) -> list[Card]:
        """The dealt hand."""
        return list(self._cards)

    @property
    def image(self) -> Any:
        """The card-table image of the current hand (rendered on demand in GP-L)."""
        return self._image if self._image is not None else self._render_image()

    # ------------------------------------------------------------------ internals
    def _info_copy(self) -> dict[str, Any]:
        """A fresh info dict: callers keep what they get, so no list or dict is shared."""
        return {k: v.copy() if isinstance(v, (list, dict)) else v for k, v in self._info.items()}

    def _deal(self) -> list[Card]:
        cfg = self.config
        for _ in range(MAX_REDRAWS):
            cards = deal_hand(
                self.np_random,
                rule=cfg.rule,
                suits=cfg.suits,
                deal=cfg.deal,
                target=cfg.target,
                allow_unsolvable=cfg.allow_unsolvable,
                n_cards=cfg.n_cards,
                ranks=cfg.ranks,
            )
            if cfg.split is None or self._split_of(cards) == cfg.split:
                return cards
        raise RuntimeError(f"could not deal a {cfg.split!r} hand in {MAX_REDRAWS} draws")

    def _split_of(self, cards: list[Card]) -> str:
        """The hashed split side of a hand, by the configured unit (values or ranks)."""
        cfg = self.config
        if cfg.split_by == "ranks":
            unit = tuple(sorted(c.rank for c in cards))
        else:
            unit = tuple(sorted(card_value(c.rank, cfg.rule) for c in cards))
        return split_of(unit, cfg.target, cfg.test_percent)

    def _cards_from_option(self, spec: Any) -> list[Card]:
        cards = []
        pool = SUIT_POOLS[self.config.suits]
        for i, item in enumerate(spec):
            if isinstance(item, Card):
                cards.append(item)
            elif hasattr(item, "rank") and hasattr(item, "suit"):
                cards.append(Card(int(item.rank), str(item.suit)))
            else:
                rank, suit = (item, pool[i % len(pool)]) if isinstance(item, int) else item
                cards.append(Card(int(rank), str(suit)))
        for card in cards:
            if card.rank not in RANK_LABELS or card.suit not in "SHDC":
                raise ValueError(f"invalid card {card!r} in `options['cards']`")
        return cards

    def _prompt(self, cards: list[Card]) -> str:
        return render(
            self._template,
            n_cards=_NUMBER_WORDS.get(len(cards), str(len(cards))),
            rule_sentence=self._rule_sentence,
            target=self.config.target,
            unsolvable_sentence=self._unsolvable_sentence,
            cards=repr([c.label for c in cards]),
        )

    def _render_image(self) -> Any:
        from openvirl.envs.points.render import render_hand

        return render_hand(self._cards, size=self.config.image_size)

    def _verify(self, text: str) -> tuple[Verdict, list[str] | None, str | None]:
        """Recognition gate (GP-VL), then the formula check."""
        cfg = self.config
        parsed = parse_answer(text)
        numbers = self._info["numbers"]
        if cfg.visual and parsed.cards is None and parsed.formula is None:
            # Garbage gets GP-L's penalty in GP-VL too (not the milder wrong-cards one), so
            # the two tasks rank an unreadable answer alike and it counts as a format error.
            message = parsed.error or "no formula was found in your answer."
            verdict = Verdict(Outcome.NO_ANSWER, None, message, REWARDS[Outcome.NO_ANSWER])
            return verdict, None, parsed.error
        if cfg.visual:
            truth = sorted(self._info["cards"])
            seen = parsed.cards
            if seen is None or sorted(seen) != truth:
                shown = "nothing" if not seen else ", ".join(seen)
                message = (
                    f"you recognized the wrong cards (you wrote {shown}); "
                    "look at the image again and list the four cards you see."
                )
                outcome = Outcome.WRONG_CARDS
                return Verdict(outcome, None, message, REWARDS[outcome]), seen, parsed.error
        if parsed.formula is None:
            message = parsed.error or "no formula was found in your answer."
            verdict = Verdict(Outcome.NO_ANSWER, None, message, REWARDS[Outcome.NO_ANSWER])
            return verdict, parsed.cards, parsed.error
        verdict = check(parsed.formula, numbers, cfg.target, solutions=self._info["solutions"])
        return verdict, parsed.cards, parsed.error


_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def config_dict(env: gym.Env) -> dict[str, Any]:
    """The JSON-able configuration of a (possibly wrapped) GeneralPoints env."""
    return asdict(env.unwrapped.config)
