"""Virtual panoramas every ~10 m along the walk graph, with the headings an agent can move along.

V-IRL moves its agents from one Google Street View panorama to the next by clicking the arrows
of the Street View page (its `StreetViewMover`); offline, it maps GPS points to panorama ids
within a radius (`gps_pano_mapping`). openvirl has no photographs, so it puts a *virtual
panorama* on every node of the walk graph and every ~`PANO_SPACING_M` metres along each edge
(Google's car photographs about every 10 m). A panorama's navigable headings are the bearings
toward its neighbours along the graph, so its degree is 2 mid-edge and the node's degree at a
junction ("an N-way intersection"). Views at a panorama come from `openvirl.world.streetview`.

Ids:
- a graph node: its OSM node id, e.g. ``"42431099"``;
- a point inside edge (u, v): ``"<u>-<v>-<k>"`` with u < v and k = 1 .. n-1 counted from u,
  where the edge is cut into n = max(1, round(length / PANO_SPACING_M)) equal pieces.

Examples
--------
>>> from openvirl.world import City
>>> city = City.load("monaco")
>>> panos = city.panoramas
>>> pano = panos.nearest_pano(43.7396, 7.4271, radius_m=50)
>>> nxt = panos.move(pano.id, pano.headings_deg[0])
>>> nxt.id in pano.neighbours
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from openvirl.world.errors import WorldError, did_you_mean
from openvirl.world.geometry import haversine_m, heading_change_deg, xy_bearing_deg

if TYPE_CHECKING:
    from openvirl.world.city import City

PANO_SPACING_M = 10.0
"""Target distance between consecutive panoramas along an edge, metres."""

MAPPING_RADIUS_M = 20.0
"""Default radius of `nearest_pano` and `relocate`, metres (the SFT-vs-RL study's
`MAPPING_RADIUS`; V-IRL's base config uses 5 m)."""


class UnknownPanoramaError(WorldError):
    """A panorama id that is not in this city's virtual panoramas."""


@dataclass(frozen=True, slots=True)
class Panorama:
    """One virtual panorama: a position on the walk graph and where one can go from it.

    Attributes
    ----------
    id
        ``"<node>"`` or ``"<u>-<v>-<k>"`` (module docstring).
    lat, lon
        Position, degrees.
    x_m, y_m
        Position in the city's local metres.
    headings_deg
        Navigable headings, degrees clockwise from north, one per neighbour.
    neighbours
        The panorama reached along each heading (same order as `headings_deg`).
    """

    id: str
    lat: float
    lon: float
    x_m: float
    y_m: float
    headings_deg: tuple[float, ...]
    neighbours: tuple[str, ...]

    @property
    def degree(self) -> int:
        """Number of navigable headings."""
        return len(self.neighbours)

    @property
    def is_intersection(self) -> bool:
        """Whether three or more ways meet here (V-IRL's "N-way intersection", N >= 3)."""
        return self.degree >= 3

    @property
    def latlon(self) -> tuple[float, float]:
        """(lat, lon), degrees."""
        return (self.lat, self.lon)

    def to_dict(self) -> dict[str, object]:
        """JSON-able dict of every field."""
        return {
            "id": self.id,
            "lat": self.lat,
            "lon": self.lon,
            "headings_deg": list(self.headings_deg),
            "neighbours": list(self.neighbours),
        }


class Panoramas:
    """The virtual panoramas of a city (module docstring); `city.panoramas` holds one.

    Parameters
    ----------
    city
        The city whose walk graph they sit on.
    spacing_m
        Target spacing along edges, metres.
    """

    def __init__(self, city: City, *, spacing_m: float = PANO_SPACING_M) -> None:
        if not spacing_m > 0:
            raise WorldError(f"`spacing_m` must be positive, got {spacing_m!r}.")
        from openvirl.world.city import oriented_coords

        self.spacing_m = float(spacing_m)
        self._graph = city.graph
        ids: list[str] = []
        xs: list[float] = []
        ys: list[float] = []
        for node, d in city.graph.nodes(data=True):
            ids.append(str(node))
            xs.append(float(d["x"]))
            ys.append(float(d["y"]))
        self._pieces: dict[tuple[int, int], int] = {}
        for u, v, d in city.graph.edges(data=True):
            a, b = (u, v) if u < v else (v, u)
            coords = oriented_coords(d, a)
            seg = np.hypot(*np.diff(coords, axis=0).T)
            cum = np.concatenate([[0.0], np.cumsum(seg)])
            length = float(cum[-1])
            n = max(1, round(length / self.spacing_m))
            self._pieces[(a, b)] = n
            if n == 1:
                continue
            at = np.arange(1, n) * (length / n)
            px = np.interp(at, cum, coords[:, 0])
            py = np.interp(at, cum, coords[:, 1])
            ids.extend(f"{a}-{b}-{k}" for k in range(1, n))
            xs.extend(px.tolist())
            ys.extend(py.tolist())
        self.ids: list[str] = ids
        self.xs = np.asarray(xs, dtype=float)
        self.ys = np.asarray(ys, dtype=float)
        lats, lons = city.to_latlon(self.xs, self.ys)
        self.lats = np.atleast_1d(np.asarray(lats, dtype=float))
        self.lons = np.atleast_1d(np.asarray(lons, dtype=float))
        self._row = {pid: i for i, pid in enumerate(ids)}
        from openvirl.world.scene import GridIndex

        self._grid = GridIndex(self.xs, self.ys, cell_m=25.0)
        self._to_xy = city.to_xy

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, pano_id: object) -> bool:
        return pano_id in self._row

    def __iter__(self) -> Iterator[Panorama]:
        return (self.get(pid) for pid in self.ids)

    def __repr__(self) -> str:
        return f"Panoramas(n={len(self)}, spacing_m={self.spacing_m:g})"

    # Lookup -----------------------------------------------------------------------------

    def _neighbour_ids(self, pano_id: str) -> list[str]:
        parts = pano_id.split("-")
        if len(parts) == 1:
            node = int(parts[0])
            out = []
            for other in sorted(self._graph.neighbors(node)):
                a, b = (node, other) if node < other else (other, node)
                n = self._pieces[(a, b)]
                if n == 1:
                    out.append(str(other))
                elif node == a:
                    out.append(f"{a}-{b}-1")
                else:
                    out.append(f"{a}-{b}-{n - 1}")
            return out
        a, b, k = int(parts[0]), int(parts[1]), int(parts[2])
        n = self._pieces[(a, b)]
        prev = str(a) if k == 1 else f"{a}-{b}-{k - 1}"
        nxt = str(b) if k == n - 1 else f"{a}-{b}-{k + 1}"
        return [prev, nxt]

    def get(self, pano_id: str) -> Panorama:
        """The panorama with id `pano_id`.

        Raises
        ------
        UnknownPanoramaError
            For an id that is not a panorama of this city.
        """
        row = self._row.get(str(pano_id))
        if row is None:
            near = did_you_mean(str(pano_id), self.ids[:: max(1, len(self.ids) // 5000)])
            hint = f" Did you mean: {', '.join(f'`{m}`' for m in near)}?" if near else ""
            raise UnknownPanoramaError(
                f"Unknown panorama id `{pano_id}`.{hint} Ids are '<node>' or '<u>-<v>-<k>'; "
                "find one with `nearest_pano(lat, lon)`."
            )
        x, y = float(self.xs[row]), float(self.ys[row])
        neighbours = self._neighbour_ids(self.ids[row])
        headings = []
        for nb in neighbours:
            j = self._row[nb]
            headings.append(round(xy_bearing_deg(float(self.xs[j]) - x, float(self.ys[j]) - y), 3))
        return Panorama(
            self.ids[row],
            float(self.lats[row]),
            float(self.lons[row]),
            x,
            y,
            tuple(headings),
            tuple(neighbours),
        )

    def nearest_pano(
        self, lat: float, lon: float, radius_m: float = MAPPING_RADIUS_M
    ) -> Panorama | None:
        """The panorama nearest to (`lat`, `lon`) within `radius_m` metres, or None.

        Parameters
        ----------
        lat, lon
            The point, degrees.
        radius_m
            Search radius, metres.

        Returns
        -------
        Panorama or None
            None when no panorama lies within the radius (V-IRL's relocation then fails too).
        """
        if not (math.isfinite(lat) and math.isfinite(lon)) or not radius_m > 0:
            raise WorldError(
                f"`lat`, `lon` must be finite and `radius_m` positive, got ({lat}, {lon}), "
                f"{radius_m}."
            )
        x, y = self._to_xy(float(lat), float(lon))
        idx = self._grid.query(float(x), float(y), float(radius_m))
        if len(idx) == 0:
            return None
        d = np.hypot(self.xs[idx] - x, self.ys[idx] - y)
        k = int(np.argmin(d))
        if d[k] > radius_m:
            return None
        return self.get(self.ids[int(idx[k])])

    def move(self, pano_id: str, heading: float, *, max_turn_deg: float = 180.0) -> Panorama | None:
        """Step from `pano_id` to the neighbour along the navigable heading closest to `heading`.

        This is V-IRL's `move`: the agent follows the Street View arrow nearest to where it
        wants to go. With `max_turn_deg` below 180 the step is refused (None) when no navigable
        heading lies within that many degrees of `heading`.

        Parameters
        ----------
        pano_id
            Where the agent stands.
        heading
            Where it wants to go, degrees clockwise from north.
        max_turn_deg
            Largest accepted difference between `heading` and the chosen navigable heading.

        Returns
        -------
        Panorama or None
            The neighbour, or None when refused (or for an isolated panorama).
        """
        pano = self.get(pano_id)
        if not pano.neighbours:
            return None
        diffs = [abs(heading_change_deg(heading, h)) for h in pano.headings_deg]
        k = int(np.argmin(diffs))
        if diffs[k] > max_turn_deg:
            return None
        return self.get(pano.neighbours[k])

    # V-IRL's offline mapping -------------------------------------------------------------

    @cached_property
    def gps_to_pano(self) -> dict[tuple[float, float], str]:
        """{(lat, lon): pano_id} for every panorama, like V-IRL's `gps_pano_mapping.pkl`."""
        return {
            (float(la), float(lo)): pid
            for la, lo, pid in zip(self.lats.tolist(), self.lons.tolist(), self.ids, strict=True)
        }

    def relocate(
        self, lat: float, lon: float, *, radius_m: float = MAPPING_RADIUS_M
    ) -> tuple[tuple[float, float] | None, str | None]:
        """V-IRL's offline relocation: ((lat, lon), pano_id) of the panorama for a point.

        A point that is a key of `gps_to_pano` maps to itself; any other point maps to the
        nearest panorama closer than `radius_m` metres; otherwise (None, None).
        """
        key = (float(lat), float(lon))
        pid = self.gps_to_pano.get(key)
        if pid is not None:
            return key, pid
        pano = self.nearest_pano(lat, lon, radius_m=radius_m)
        if pano is None or haversine_m(lat, lon, pano.lat, pano.lon) >= radius_m:
            return None, None
        return (pano.lat, pano.lon), pano.id


__all__ = [
    "MAPPING_RADIUS_M",
    "PANO_SPACING_M",
    "Panorama",
    "Panoramas",
    "UnknownPanoramaError",
]
