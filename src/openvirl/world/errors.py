"""Exceptions of the real-city platform; each one says what went wrong and what to pass instead."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str], *, n: int = 3) -> list[str]:
    """Return up to `n` entries of `known` that look like `name`, closest first.

    Parameters
    ----------
    name
        The unknown name the caller typed.
    known
        The valid names.
    n
        Most suggestions to return.

    Returns
    -------
    list[str]
        The close matches (difflib ratio >= 0.5), possibly empty.
    """
    known = list(known)
    lowered = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def _suggestion(matches: list[str]) -> str:
    if not matches:
        return ""
    return " Did you mean: " + ", ".join(f"`{m}`" for m in matches) + "?"


class WorldError(ValueError):
    """Base class of every error the real-city platform raises on bad input."""


class UnknownCityError(WorldError):
    """The city name is neither bundled, nor user-added, nor a path to an OSM file."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        self.matches = did_you_mean(name, self.known)
        super().__init__(
            f"Unknown city `{name}`. Known cities: {', '.join(self.known)}."
            f"{_suggestion(self.matches)} Pass one of these names or the path of an "
            ".osm, .osm.pbf or .osm.bz2 file (add one with `openvirl city add PATH --name NAME`)."
        )


class UnknownCategoryError(WorldError):
    """The place category is not in the category vocabulary."""

    def __init__(self, category: str, known: Iterable[str]) -> None:
        self.category = category
        self.known = sorted(known)
        self.matches = did_you_mean(category, self.known)
        super().__init__(
            f"Unknown place category `{category}`.{_suggestion(self.matches)} "
            f"Known categories: {', '.join(self.known)}."
        )


class MapFileError(WorldError):
    """An OSM file is missing, empty, truncated, not OSM, or holds no walkable street."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"Map file {self.path}: {problem}")


class OutsideMapError(WorldError):
    """A point lies outside the city's map, or too far from any walkable street."""


class NoRouteError(WorldError):
    """Two points of the map have no walking connection."""


class PlaceNotFoundError(WorldError):
    """A text could not be geocoded with enough confidence; the message lists the best
    candidates (with their confidence) or the closest known names, and says when the place
    lies outside the extract's bounds where that can be told (a street number range)."""

    def __init__(
        self,
        text: str,
        matches: Iterable[str] = (),
        *,
        candidates: Iterable[str] = (),
        note: str = "",
        cutoff: float | None = None,
    ) -> None:
        self.text = text
        self.matches = list(matches)
        self.candidates = list(candidates)
        self.note = note
        self.cutoff = cutoff
        found = f" {note}" if note else ""
        if self.candidates:
            bar = f" {cutoff:g}/100" if cutoff is not None else ""
            found += (
                f" No candidate clears the confidence{bar}; best candidates: "
                + ", ".join(self.candidates)
                + "."
            )
        else:
            found += _suggestion(self.matches)
        super().__init__(
            f"No place, address or intersection matches `{text}` in this city.{found} "
            "Try `city.search(text)` to browse candidates."
        )

    def renamed(self, text: str) -> PlaceNotFoundError:
        """The same error about another wording of the query (an agent's own request)."""
        return PlaceNotFoundError(
            text, self.matches, candidates=self.candidates, note=self.note, cutoff=self.cutoff
        )


__all__ = [
    "MapFileError",
    "NoRouteError",
    "OutsideMapError",
    "PlaceNotFoundError",
    "UnknownCategoryError",
    "UnknownCityError",
    "WorldError",
    "did_you_mean",
]
