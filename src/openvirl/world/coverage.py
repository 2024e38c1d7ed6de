"""How much of a city's street scene its extract actually holds: building coverage.

A street view is drawn from the extract's buildings; an extract with streets but few
buildings (the bundled Tokyo Shibuya streets file has 2, Singapore's 31) renders as an empty
plain with floating signs, not a streetscape. `building_coverage` measures the share of
street frontage that has a building next to it, so evaluations can say which cities' views
look like streets (`is_streetscape`) and which need a caveat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from openvirl.world.city import City

FRONTAGE_STEP_M = 20.0
"""Street centre-lines are sampled every this many metres."""

FRONTAGE_RADIUS_M = 30.0
"""A sample point has frontage when a building lies within this distance, metres."""

STREETSCAPE_MIN_FRONTAGE = 0.6
"""Least frontage share for a city's rendered views to count as streetscapes (Manhattan
0.97, Helsinki 0.93, Monaco 0.79; Singapore 0.45 and Tokyo Shibuya 0.003 fall below)."""


def building_coverage(city: City) -> dict[str, Any]:
    """Building coverage of a loaded city.

    Returns
    -------
    dict
        ``buildings`` (footprints in the extract), ``frontage`` (share of street sample
        points, every `FRONTAGE_STEP_M` along street centre-lines, with a building within
        `FRONTAGE_RADIUS_M`; 0..1, rounded to 3 places), ``streetscape`` (frontage >=
        `STREETSCAPE_MIN_FRONTAGE`) and ``note`` (a caveat when it is not).
    """
    from openvirl.world.city import STREET_HIGHWAYS

    points = []
    for _, _, data in city.graph.edges(data=True):
        if data["highway"] not in STREET_HIGHWAYS:
            continue
        geom = data["geometry"]
        n = max(1, int(geom.length // FRONTAGE_STEP_M))
        points.extend(geom.interpolate((k + 0.5) / n, normalized=True) for k in range(n))
    frontage = 0.0
    if points and city.buildings:
        hits = city.building_tree.query_nearest(
            np.array(points, dtype=object), max_distance=FRONTAGE_RADIUS_M, all_matches=False
        )
        frontage = len(set(hits[0].tolist())) / len(points)
    frontage = round(float(frontage), 3)
    streetscape = frontage >= STREETSCAPE_MIN_FRONTAGE
    note = (
        ""
        if streetscape
        else (
            f"only {frontage:.0%} of street frontage has a building in this extract "
            f"({len(city.buildings)} buildings): its street views show open ground with "
            "floating signs, not a streetscape"
        )
    )
    return {
        "buildings": len(city.buildings),
        "frontage": frontage,
        "streetscape": streetscape,
        "note": note,
    }


def is_streetscape(city: City) -> bool:
    """Whether the city's rendered views look like streets (see `building_coverage`)."""
    return bool(building_coverage(city)["streetscape"])


__all__ = [
    "FRONTAGE_RADIUS_M",
    "FRONTAGE_STEP_M",
    "STREETSCAPE_MIN_FRONTAGE",
    "building_coverage",
    "is_streetscape",
]
