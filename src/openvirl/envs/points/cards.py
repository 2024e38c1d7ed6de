"""Playing cards of the points game: ranks, suits, values under each face rule, and dealing.

Two face rules exist, as in the paper: ``"id"`` (in distribution) counts J, Q and K as 10;
``"ood"`` (rule out of distribution) counts them as 11, 12 and 13 and deals at least one
face card into every hand. An ace is always 1.

Dealing draws only from the caller's :class:`numpy.random.Generator` (the env's
``np_random``), so the same seed gives the same hands, and it is fast (a few microseconds):
hands are sampled directly from a precomputed list of acceptable rank orderings instead of
being redrawn until solvable (see :func:`deal_hand` for why this is the same distribution).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from itertools import accumulate, product
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

SUIT_POOLS: dict[str, tuple[str, ...]] = {
    "mixed": ("H", "S", "D", "C"),
    "black": ("S", "C"),
    "red": ("H", "D"),
}
"""Suits a hand's cards are drawn from (the reference's misnamed ``face_cards_color``)."""

RANK_LABELS: dict[int, str] = {
    1: "A",
    **{r: str(r) for r in range(2, 11)},
    11: "J",
    12: "Q",
    13: "K",
}
"""The plain card label of each rank, as the text prompt shows it (10 is ``"10"``)."""

FACE_RANKS = frozenset((11, 12, 13))
RULES = ("id", "ood")
DEALS = ("replacement", "deck")
OOD_SAMPLERS = ("conditional", "reference")

_SUIT_NAMES = {"spades": "S", "hearts": "H", "diamonds": "D", "clubs": "C"}
_SUIT_SYMBOLS = "♠♥♦♣♤♡♢♧"
_WORDS = {
    "a": 1, "ace": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "t": 10, "ten": 10, "j": 11, "jack": 11,
    "q": 12, "queen": 12, "k": 13, "king": 13,
}  # fmt: skip


@dataclass(frozen=True)
class Card:
    """One playing card.

    Parameters
    ----------
    rank
        1 (ace) to 13 (king).
    suit
        One of ``"S"``, ``"H"``, ``"D"``, ``"C"``.
    """

    rank: int
    suit: str

    def __post_init__(self) -> None:
        if self.rank not in RANK_LABELS:
            msg = f"`rank` must be 1..13, got {self.rank!r}."
            raise ValueError(msg)
        if not isinstance(self.suit, str) or len(self.suit) != 1 or self.suit not in "SHDC":
            msg = f"`suit` must be one of 'S', 'H', 'D', 'C', got {self.suit!r}."
            raise ValueError(msg)

    @property
    def label(self) -> str:
        """The plain card the prompt shows and recognition is graded on: A, 2..10, J, Q, K."""
        return RANK_LABELS[self.rank]

    @property
    def code(self) -> str:
        """The reference's file-style code, suit then rank with T for 10: ``"SA"``, ``"HT"``."""
        return self.suit + ("T" if self.rank == 10 else RANK_LABELS[self.rank])

    def value(self, rule: str = "id") -> int:
        """The card's number under a face rule (see :func:`card_value`)."""
        return card_value(self.rank, rule)

    @classmethod
    def from_code(cls, code: str) -> Card:
        """Parse a file-style code such as ``"SA"``, ``"HT"`` or ``"D10"``."""
        label = normalize_card_label(code[1:]) if isinstance(code, str) and code else None
        if label is None:
            msg = f"`code` must look like 'SA', 'HT' or 'DQ', got {code!r}."
            raise ValueError(msg)
        return cls(LABEL_RANKS[label], code[0].upper())


LABEL_RANKS: dict[str, int] = {label: rank for rank, label in RANK_LABELS.items()}
"""Inverse of :data:`RANK_LABELS`: ``"A"`` -> 1, ``"10"`` -> 10, ``"K"`` -> 13."""


def card_value(rank: int, rule: str) -> int:
    """A card's number in the game.

    Parameters
    ----------
    rank
        1 (ace) to 13 (king).
    rule
        ``"id"``: J, Q and K count as 10 (the training rule); ``"ood"``: they count as 11, 12
        and 13 (the held-out rule). An ace is 1 under both.

    Returns
    -------
    int
        The value used in formulas.
    """
    if rule == "id":
        return rank if rank < 10 else 10
    if rule == "ood":
        return rank
    msg = f"`rule` must be 'id' or 'ood', got {rule!r}."
    raise ValueError(msg)


def _rank_of_text(text: str) -> int | None:
    if text.isascii() and text.isdigit():  # str.isdigit() also accepts '¹' or '٣'
        rank = int(text) if len(text) <= 3 else 0
        return rank if 1 <= rank <= 13 else None
    return _WORDS.get(text)


def normalize_card_label(token: object) -> str | None:
    """Normalize what a model wrote for a card to a plain label, or None if unreadable.

    Tolerates ints (1..13), integral floats, any case, surrounding quotes and spaces, words
    (``"ace"``, ``"queen"``), ``T`` or ``10`` for ten, and suit decorations (``"A♠"``,
    ``"Ace of Spades"``, file codes ``"SA"``, ``"HT"``, ``"10D"``).

    Parameters
    ----------
    token
        One card as parsed from the model's answer.

    Returns
    -------
    str or None
        ``"A"``, ``"2"``..``"10"``, ``"J"``, ``"Q"`` or ``"K"``; None for anything else.
    """
    if isinstance(token, bool):
        return None
    if isinstance(token, int):
        return RANK_LABELS.get(token)
    if isinstance(token, float):
        return RANK_LABELS.get(int(token)) if token.is_integer() else None
    if not isinstance(token, str) or len(token) > 40:
        return None
    text = token.strip().strip("'\"`[](){}., ").lower()
    text = text.strip(_SUIT_SYMBOLS).strip()
    if " of " in text:  # "ace of spades"
        text = text.split(" of ", 1)[0].strip()
    rank = _rank_of_text(text)
    if rank is None and len(text) >= 2:
        # File-style codes: suit letter first ("sa", "ht", "d10") or last ("10d", "qs").
        if text[0] in "shdc":
            rank = _rank_of_text(text[1:].strip())
        if rank is None and text[-1] in "shdc":
            rank = _rank_of_text(text[:-1].strip())
    return RANK_LABELS.get(rank) if rank is not None else None


def rank_multiset_key(ranks: Iterable[int]) -> tuple[int, ...]:
    """Order-insensitive key of a hand: its ranks (or values) sorted."""
    return tuple(sorted(int(r) for r in ranks))


# --------------------------------------------------------------------------- dealing
@cache
def _pool_cards(suits: str, lo: int, hi: int) -> tuple[Card, ...]:
    """The pool's cards indexed by ``suit_index * n_ranks + (rank - lo)``."""
    pool = SUIT_POOLS[suits]
    return tuple(Card(rank, suit) for suit in pool for rank in range(lo, hi + 1))


@cache
def _acceptable(
    rule: str, target: int, n_cards: int, lo: int, hi: int, allow_unsolvable: bool
) -> bytes:
    """One byte per ordered rank tuple (mixed radix over ``rank - lo``): 1 if dealable."""
    from openvirl.envs.points.solver import solution_table

    table = None if allow_unsolvable else solution_table(target, n_cards)
    ranks = range(lo, hi + 1)
    need_face = rule == "ood"
    solvable: dict[tuple[int, ...], bool] = {}
    out = bytearray()
    for order in product(ranks, repeat=n_cards):
        if need_face and not any(r in FACE_RANKS for r in order):
            out.append(0)
            continue
        if table is None:
            out.append(1)
            continue
        key = tuple(sorted(card_value(r, rule) for r in order))
        ok = solvable.get(key)
        if ok is None:
            ok = solvable[key] = table.is_solvable(key)
        out.append(1 if ok else 0)
    return bytes(out)


@cache
def _replacement_sampler(
    rule: str,
    target: int,
    n_cards: int,
    lo: int,
    hi: int,
    allow_unsolvable: bool,
    ood_sampler: str,
) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """Acceptable rank orderings (offsets from ``lo``) and their cumulative weights."""
    accept = _acceptable(rule, target, n_cards, lo, hi, allow_unsolvable)
    radix = hi - lo + 1
    orders: list[tuple[int, ...]] = []
    weights: list[int] = []
    for code, flag in enumerate(accept):
        if not flag:
            continue
        digits = []
        for _ in range(n_cards):
            code, d = divmod(code, radix)
            digits.append(d)
        order = tuple(reversed(digits))
        orders.append(order)
        if rule == "ood" and ood_sampler == "reference":
            weights.append(sum(1 for d in order if d + lo in FACE_RANKS))
        else:
            weights.append(1)
    return tuple(orders), tuple(accumulate(weights))


def _check_deal_args(
    rule: str, suits: str, deal: str, n_cards: int, ranks: tuple[int, int], ood_sampler: str
) -> tuple[int, int]:
    if rule not in RULES:
        msg = f"`rule` must be one of {RULES}, got {rule!r}."
        raise ValueError(msg)
    if suits not in SUIT_POOLS:
        msg = f"`suits` must be one of {tuple(SUIT_POOLS)}, got {suits!r}."
        raise ValueError(msg)
    if deal not in DEALS:
        msg = f"`deal` must be one of {DEALS}, got {deal!r}."
        raise ValueError(msg)
    if ood_sampler not in OOD_SAMPLERS:
        msg = f"`ood_sampler` must be one of {OOD_SAMPLERS}, got {ood_sampler!r}."
        raise ValueError(msg)
    lo, hi = (int(r) for r in ranks)
    if not 1 <= lo <= hi <= 13:
        msg = f"`ranks` must be (lo, hi) with 1 <= lo <= hi <= 13, got {ranks!r}."
        raise ValueError(msg)
    if rule == "ood" and hi < 11:
        msg = f"rule 'ood' deals a face card, so `ranks` must reach 11..13, got {ranks!r}."
        raise ValueError(msg)
    if not 1 <= n_cards <= 4:
        msg = f"`n_cards` must be 1 to 4, got {n_cards!r}."
        raise ValueError(msg)
    if deal == "deck" and n_cards > len(SUIT_POOLS[suits]) * (hi - lo + 1):
        msg = f"a {suits!r} deck over ranks {ranks} has fewer than {n_cards} cards."
        raise ValueError(msg)
    return lo, hi


def deal_hand(
    rng: np.random.Generator,
    *,
    rule: str = "id",
    suits: str = "mixed",
    deal: str = "replacement",
    target: int = 24,
    allow_unsolvable: bool = False,
    n_cards: int = 4,
    ranks: tuple[int, int] = (1, 13),
    ood_sampler: str = "conditional",
) -> list[Card]:
    """Deal one hand, drawing only from ``rng``.

    ``deal="replacement"`` (the reference code) draws each card's rank uniformly from
    ``ranks`` and its suit uniformly from the pool, independently; the result is conditioned
    on the hand being acceptable: solvable under the rule's values and ``target`` (unless
    ``allow_unsolvable``) and, under ``rule="ood"``, holding at least one J, Q or K. Redrawing
    until acceptable makes every acceptable ordered hand equally likely, so this function
    samples that uniform distribution directly: one integer from ``rng`` picks an acceptable
    rank ordering from a precomputed list together with the suits. Same distribution, one draw,
    no loop.

    ``ood_sampler="reference"`` instead reproduces the reference's OOD dealer (three uniform
    ranks plus one face rank, shuffled, redrawn until solvable), whose hands are weighted by
    their number of face cards.

    ``deal="deck"`` (what the paper's text describes) deals distinct cards from the pool's
    deck (52 cards for ``"mixed"``, 26 for ``"black"`` or ``"red"``): one integer from ``rng``
    picks an ordered set of distinct cards, redrawn until acceptable (most hands are).

    Parameters
    ----------
    rng
        The caller's generator, e.g. the env's ``np_random``.
    rule
        ``"id"`` (J/Q/K count 10) or ``"ood"`` (11/12/13, at least one face card per hand).
    suits
        Suit pool name from :data:`SUIT_POOLS`.
    deal
        ``"replacement"`` or ``"deck"``.
    target
        Value the hand must be able to reach.
    allow_unsolvable
        Deal hands with no solution too (the answer is then "no solution").
    n_cards
        Cards per hand, 1 to 4 (the game uses 4; fewer is an easier difficulty).
    ranks
        Inclusive rank range ``(lo, hi)``; narrower ranges are another difficulty knob.
    ood_sampler
        ``"conditional"`` (uniform over acceptable hands) or ``"reference"``; only used with
        ``rule="ood"`` and ``deal="replacement"``.

    Returns
    -------
    list[Card]
        The hand, in dealing order.
    """
    lo, hi = _check_deal_args(rule, suits, deal, n_cards, ranks, ood_sampler)
    pool_cards = _pool_cards(suits, lo, hi)
    radix = hi - lo + 1
    n_suits = len(SUIT_POOLS[suits])
    if deal == "replacement":
        orders, cum = _replacement_sampler(
            rule, target, n_cards, lo, hi, allow_unsolvable, ood_sampler
        )
        if not orders:
            msg = f"no {n_cards}-card hand over ranks {ranks} can reach {target} ({rule=})."
            raise ValueError(msg)
        suit_combos = n_suits**n_cards
        x = int(rng.integers(0, cum[-1] * suit_combos))
        pick, suit_code = divmod(x, suit_combos)
        order = orders[bisect_right(cum, pick)]
        hand = []
        for offset in order:
            suit_code, s = divmod(suit_code, n_suits)
            hand.append(pool_cards[s * radix + offset])
        return hand

    accept = _acceptable(rule, target, n_cards, lo, hi, allow_unsolvable)
    if not any(accept):
        msg = f"no {n_cards}-card hand over ranks {ranks} can reach {target} ({rule=})."
        raise ValueError(msg)
    size = len(pool_cards)
    total = 1
    for i in range(n_cards):
        total *= size - i
    while True:
        # One draw decodes to an ordered tuple of distinct cards: digit i picks among the
        # size - i cards not yet dealt (a partial Fisher-Yates in mixed radix).
        x = int(rng.integers(0, total))
        picked: list[int] = []
        for i in range(n_cards):
            x, d = divmod(x, size - i)
            for c in sorted(picked):
                if d >= c:
                    d += 1
            picked.append(d)
        code = 0
        for idx in picked:
            code = code * radix + idx % radix
        if accept[code]:
            return [pool_cards[idx] for idx in picked]
