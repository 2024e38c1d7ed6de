"""The bundled cities and the user's own OSM extracts, by name.

User extracts are registered in `user_cities.json`, in `$OPENVIRL_CONFIG` if set, else in
`$OPENVIRL_CACHE` if set (so one variable isolates tests), else in the platform's user config
directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from openvirl._paths import data_dir
from openvirl.world.errors import MapFileError, UnknownCityError, WorldError

ATTRIBUTION = "© OpenStreetMap contributors"
"""The credit every map, view and text derived from OSM data must carry."""

LICENSE = "ODbL 1.0 (https://opendatacommons.org/licenses/odbl/1-0/)"
"""The licence of the OSM data and of any database derived from it."""

DEFAULT_CITY = "manhattan"
"""The training city, loaded when no city is named."""

OSM_SUFFIXES = (".osm", ".osm.pbf", ".pbf", ".osm.bz2", ".osm.xml")
"""File endings recognised as OSM extracts."""

# name -> (files in data/cities, description)
_BUNDLED: dict[str, tuple[tuple[str, ...], str]] = {
    "manhattan": (
        ("nyc_manhattan_midtown.osm.pbf",),
        "Midtown Manhattan, New York: 14th to 50th St, river to river (training city)",
    ),
    "helsinki": (("helsinki_center.osm.pbf",), "Central Helsinki, Finland"),
    "monaco": (("monaco.osm.pbf",), "Monaco (2016 snapshot)"),
    "tokyo-shibuya": (
        ("tokyo_shibuya_streets.osm", "tokyo_center_pois.osm.pbf"),
        "Shibuya station area, Tokyo: streets file + POI nodes clipped to the streets",
    ),
    "singapore": (("singapore_bayfront.osm.pbf",), "Bayfront and Marina Bay, Singapore"),
}

_ALIASES = {
    "nyc": "manhattan",
    "new-york": "manhattan",
    "new york": "manhattan",
    "tokyo": "tokyo-shibuya",
    "shibuya": "tokyo-shibuya",
}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class CityEntry:
    """A city the catalog knows: its name, its OSM files and where it came from.

    Attributes
    ----------
    name
        The city's name ("manhattan"); for a bare file path, the file's stem.
    files
        The OSM files, read in order and merged.
    description
        One line about the extract.
    source
        "bundled", "user" (registered with `add_city`) or "path" (a file passed directly).
    """

    name: str
    files: tuple[Path, ...]
    description: str = ""
    source: str = "bundled"
    added: str | None = field(default=None, compare=False)

    @property
    def size_bytes(self) -> int:
        """Total size of the files that exist, bytes."""
        return sum(f.stat().st_size for f in self.files if f.is_file())

    @property
    def provenance(self) -> str:
        """Where the data came from: the bundled SOURCES.md for a bundled city; for a user
        city its own file(s), when it was registered and the origin given to `add_city`."""
        if self.source == "bundled":
            return str(cities_dir() / "SOURCES.md")
        files = ", ".join(str(f) for f in self.files)
        if self.source == "path":
            return f"OSM file {files} (not registered; its origin is not recorded)"
        origin = _read_registry().get(self.name, {}).get("origin") or (
            "not recorded (pass --origin to `openvirl city add`)"
        )
        return f"user extract {files}, registered {self.added or '?'}; origin: {origin}"

    def to_dict(self) -> dict:
        """JSON-able summary."""
        return {
            "name": self.name,
            "files": [str(f) for f in self.files],
            "description": self.description,
            "source": self.source,
            "size_bytes": self.size_bytes,
            "added": self.added,
            "provenance": self.provenance,
        }


def cities_dir() -> Path:
    """Directory of the bundled extracts (with their SOURCES.md)."""
    return data_dir() / "cities"


def registry_path() -> Path:
    """Path of the user registry `user_cities.json` (see the module docstring)."""
    root = os.environ.get("OPENVIRL_CONFIG") or os.environ.get("OPENVIRL_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        from platformdirs import user_config_dir

        base = Path(user_config_dir("openvirl"))
    return base / "user_cities.json"


def _registry_problem(path: Path) -> tuple[dict[str, dict], str | None]:
    """The registry's cities and, when the file is unusable, why (then the cities are {})."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return {}, f"it cannot be read as JSON ({type(exc).__name__}: {exc})"
    cities = data.get("cities") if isinstance(data, dict) else None
    if not isinstance(cities, dict) or not all(isinstance(v, dict) for v in cities.values()):
        return {}, 'it is not {"cities": {name: {...}}}'
    return cities, None


def _read_registry(*, for_update: bool = False) -> dict[str, dict]:
    """The user's registered cities.

    A corrupt file reads as no cities, with a warning; with `for_update` (before a write) it
    raises instead, after copying it aside, so a `city add` never overwrites the entries a
    repair could still recover.
    """
    path = registry_path()
    if not path.is_file():
        return {}
    cities, problem = _registry_problem(path)
    if problem is None:
        return cities
    if not for_update:
        warnings.warn(f"ignoring the user city registry {path}: {problem}", stacklevel=3)
        return {}
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    backup = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        shutil.copy2(path, backup)
        kept = f"a copy is at {backup}"
    except OSError as exc:
        kept = f"could not copy it aside ({exc})"
    raise WorldError(
        f"refusing to change the user city registry {path}: {problem}; {kept}. Fix the file "
        "(or delete it to start an empty registry), then run the command again."
    )


def _write_registry(cities: dict[str, dict]) -> None:
    """Replace the registry atomically, keeping the previous version as ``.bak``."""
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        with contextlib.suppress(OSError):  # a backup is a courtesy, not a condition
            shutil.copy2(path, path.with_name(path.name + ".bak"))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"cities": cities}, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def bundled_cities() -> list[CityEntry]:
    """The cities shipped with openvirl, default first."""
    base = cities_dir()
    return [
        CityEntry(name, tuple(base / f for f in files), desc, "bundled")
        for name, (files, desc) in _BUNDLED.items()
    ]


def user_cities() -> list[CityEntry]:
    """The extracts the user registered with `add_city`, by name."""
    return [
        CityEntry(
            name,
            tuple(Path(f) for f in info.get("files", [])),
            info.get("description", ""),
            "user",
            info.get("added"),
        )
        for name, info in sorted(_read_registry().items())
    ]


def list_cities() -> list[CityEntry]:
    """Every known city: the bundled ones, then the user's."""
    return bundled_cities() + user_cities()


def known_names() -> list[str]:
    """Names of every known city."""
    return [c.name for c in list_cities()]


def _looks_like_path(text: str) -> bool:
    lowered = text.lower()
    return os.sep in text or "/" in text or lowered.endswith(OSM_SUFFIXES)


def file_stem(path: Path) -> str:
    """A city name for a bare OSM file: its name without the OSM endings, lower case."""
    name = path.name.lower()
    for suffix in sorted(OSM_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^a-z0-9_-]+", "-", name).strip("-") or "city"


def resolve(name_or_path: str | os.PathLike[str] | None = None) -> CityEntry:
    """Find a city by name (bundled or user-added) or by the path of an OSM file.

    Parameters
    ----------
    name_or_path
        A city name ("manhattan", case-insensitive; "tokyo" and "nyc" are aliases), or the
        path of an .osm, .osm.pbf or .osm.bz2 file. None means `DEFAULT_CITY`.

    Returns
    -------
    CityEntry
        The city's entry.

    Raises
    ------
    UnknownCityError
        The name is unknown and is no existing file; the message lists the known cities.
    MapFileError
        The argument looks like a path (has a slash or an OSM ending) but no file is there.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_CITY
    text = os.fspath(name_or_path)
    key = text.strip().lower()
    key = _ALIASES.get(key, key)
    for entry in list_cities():
        if entry.name == key:
            return entry
    path = Path(text).expanduser()
    if path.is_file():
        return CityEntry(file_stem(path), (path.resolve(),), f"OSM file {path.name}", "path")
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(text):
        raise MapFileError(path, "file not found")
    raise UnknownCityError(text, known_names())


def add_city(
    path: str | os.PathLike[str],
    name: str,
    *,
    description: str = "",
    replace: bool = False,
    origin: str = "",
) -> CityEntry:
    """Register a user OSM extract under a name, so `City.load(name)` finds it.

    The file is not read here; `openvirl city add` loads it once first to check it.

    Parameters
    ----------
    path
        An .osm, .osm.pbf or .osm.bz2 file; stored as an absolute path.
    name
        Lower-case letters, digits, `-` and `_`; not a bundled city's name.
    description
        One line shown by `openvirl city list`.
    replace
        Overwrite an existing user city of that name.
    origin
        Where the extract came from (a download URL, a tool and date), shown as the city's
        provenance by `openvirl city info`.

    Returns
    -------
    CityEntry
        The new entry.

    Raises
    ------
    MapFileError
        No file at `path`.
    WorldError
        The name is malformed, bundled, or already registered (without `replace`).
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise MapFileError(file, "file not found")
    key = name.strip().lower()
    if not _NAME_RE.match(key):
        raise WorldError(
            f"`name` must be lower-case letters, digits, '-' or '_' (got `{name}`), "
            "e.g. --name paris-centre."
        )
    if key in _BUNDLED or key in _ALIASES:
        raise WorldError(f"`{key}` is a bundled city; choose another `name`.")
    cities = _read_registry(for_update=True)
    if key in cities and not replace:
        raise WorldError(
            f"A user city `{key}` is already registered ({cities[key].get('files')}); "
            "pass replace=True (CLI: --replace) or choose another `name`."
        )
    added = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cities[key] = {
        "files": [str(file.resolve())],
        "description": description or f"user extract {file.name}",
        "added": added,
    }
    if origin:
        cities[key]["origin"] = origin
    _write_registry(cities)
    return CityEntry(key, (file.resolve(),), cities[key]["description"], "user", added)


def remove_city(name: str) -> bool:
    """Unregister a user city; return whether it was registered. The file is left alone."""
    cities = _read_registry(for_update=True)
    if cities.pop(name.strip().lower(), None) is None:
        return False
    _write_registry(cities)
    return True


__all__ = [
    "ATTRIBUTION",
    "DEFAULT_CITY",
    "LICENSE",
    "CityEntry",
    "add_city",
    "bundled_cities",
    "cities_dir",
    "known_names",
    "list_cities",
    "registry_path",
    "remove_city",
    "resolve",
    "user_cities",
]
