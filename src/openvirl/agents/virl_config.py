"""V-IRL's YAML task configs (``tools/cfgs/<agent>/*.yaml``) read as options of our agents.

`openvirl agent <name> --config peng.yaml` reads the fields that have a counterpart here;
options given on the command line win over the file. `FIELDS` is the whole mapping (also
in the README): V-IRL's GPT model names, prompt templates, street-view, detector, memory and
output settings have no counterpart (the policy is chosen with ``--policy``; perception is
OSM's) and are ignored. ``_BASE_CONFIG_`` is not followed: the base file holds only such
platform settings.

V-IRL's ``AGENT.CITY`` is a city name ("New York"): a bundled city or alias ("new york" is
`manhattan`) or a fetched one (`openvirl city fetch`) is used; any other stops with a line
that says how to fetch it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "route_optimizer": {
        "city": ("AGENT.CITY",),
        "start": ("AGENT.START_POSITION",),
        "stops": ("PIPELINE.NAVIGATION.WAY_POINTS",),
        "sentence": ("PIPELINE.NAVIGATION.WAY_POINTS_LANGUAGE",),
        "round_trip": ("PIPELINE.NAVIGATION.END_POSITION",),
    },
    "place_recommender": {
        "city": ("TASK_INFO.AGENT.CITY", "AGENT.CITY"),
        "start": ("TASK_INFO.AGENT.START_POSITION", "AGENT.START_POSITION"),
        "persona": ("TASK_INFO.AGENT.BACKGROUND",),
        "intention": ("TASK_INFO.AGENT.INTENTION",),
        "top_k": ("PIPELINE.SEARCH_NEARBY.TOPK",),
    },
    "estate": {
        "city": ("AGENT.CITY",),
        "homes": ("PIPELINE.FIND_ESTATE_CANDIDATES.ESTATE_INFO",),
        "min_rent": ("PIPELINE.FIND_ESTATE_CANDIDATES.MIN_PRICE",),
        "max_rent": ("PIPELINE.FIND_ESTATE_CANDIDATES.MAX_PRICE",),
        "radius_m": ("PIPELINE.NEARBY_INFO.SEARCH.RADIUS",),
        "requirements": ("TASK_INFO.AGENT.INTENTION",),
    },
    "direction_giver": {
        "city": ("AGENT.CITY",),
        "start": ("AGENT.START_POSITION",),
        "question": ("TASK_INFO.QUESTION",),
        "heading": ("INIT_HEADING",),
    },
    "tourist": {
        "city": ("AGENT.CITY",),
        "start": ("AGENT.START_POSITION",),
        "question": ("TASK_INFO.USER_QUESTION", "AGENT.INTENTION"),
    },
    "urban_counter": {
        "city": ("AGENT.CITY",),
        "start": ("AGENT.START_POSITION",),
        "end": ("PIPELINE.NAVIGATION.END_POSITION",),
        "kind": ("PIPELINE.CHECK_SURROUNDING.CARED_LABELS",),
    },
    "explorer": {
        "city": ("AGENT.CITY",),
        "start": ("AGENT.START_POSITION",),
        "intention": ("AGENT.INTENTION_SUPPL", "AGENT.INTENTION"),
    },
    "concierge": {
        "city": ("TASK_INFO.AGENT.CITY", "AGENT.CITY"),
        "start": ("TASK_INFO.AGENT.START_POSITION", "AGENT.START_POSITION"),
        "persona": ("TASK_INFO.AGENT.BACKGROUND",),
    },
}
"""Our agent -> our CLI option -> the V-IRL keys read for it, first present wins."""

TASKS = {
    "RouteOptimizer": "route_optimizer",
    "PlaceRecommender": "place_recommender",
    "EstateRecommender": "estate",
    "Local": "direction_giver",
    "VLNMultiround": "tourist",
    "Tourist": "tourist",
    "RobotRX399": "urban_counter",
    "IntentionalExplorer": "explorer",
    "InteractiveConcierge": "concierge",
}
"""V-IRL's ``TASK`` -> our agent, to catch a config given to the wrong agent."""

LABELS = {
    "trash bin": "waste_basket",
    "trash can": "waste_basket",
    "hydrant": "fire_hydrant",
    "fire hydrant": "fire_hydrant",
    "bench": "bench",
}
"""RX-399's ``CARED_LABELS`` -> our street-object kinds."""

MAX_BYTES = 1_000_000


def _get(cfg: dict[str, Any], dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, str) and value.strip() in ("None", "null", ""):
        return None
    return value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A V-IRL YAML config as a dict (``yaml.safe_load``: no tags, no code).

    Raises
    ------
    ValueError
        Unreadable, too large, not YAML, or not a mapping.
    """
    import yaml

    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ValueError(f"{path}: a V-IRL config is a small YAML file, this one is too big.")
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"cannot read config {path}: {err.strerror or err}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "invalid"
        raise ValueError(f"{path}: not YAML ({first}).") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping like V-IRL's tools/cfgs files.")
    return data


def _position(value: Any, where: str) -> str:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"`{where}` must be [lat, lng] or a place name, got {value!r}.")
        try:
            lat, lon = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            raise ValueError(f"`{where}` must be [lat, lng], got {value!r}.") from None
        return f"{lat},{lon}"
    return " ".join(str(value).split())


def _convert(option: str, value: Any, key: str, base: Path) -> Any:
    if option in ("start", "end"):
        return _position(value, key)
    if option == "stops":
        if not isinstance(value, list) or not value:
            raise ValueError(f"`{key}` must be a list of places, got {value!r}.")
        return [_position(v, key) for v in value]
    if option == "kind":
        labels = value if isinstance(value, list) else [value]
        kinds = []
        for label in labels:
            text = str(label).strip().lower()
            if not text:
                continue
            kinds.append(LABELS.get(text, text.replace(" ", "_")))
        return kinds or None
    if option == "homes":
        path = Path(str(value)).expanduser()
        for candidate in (path, base / path, base.parent / path, base.parent.parent / path):
            if candidate.is_file():
                return candidate.resolve()
        raise ValueError(
            f"`{key}` names {value}, which is neither beside the config nor here; pass --homes."
        )
    if option in ("top_k", "heading"):
        return int(value)
    if option in ("min_rent", "max_rent", "radius_m"):
        return float(value)
    return " ".join(str(value).split())


def options_from_yaml(path: str | Path, agent: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The options of `agent` that a V-IRL config sets, and which V-IRL key gave each.

    Returns
    -------
    tuple[dict, dict]
        ``{option: value}`` (CLI parameter names; ``city`` raw, see `map_city`) and
        ``{option: "V-IRL.KEY"}``.

    Raises
    ------
    ValueError
        Unreadable file, a config of another agent (its ``TASK``), or a malformed value.
    """
    if agent not in FIELDS:
        raise ValueError(f"agent `{agent}` reads no V-IRL config; those that do: {sorted(FIELDS)}.")
    path = Path(path)
    cfg = read_yaml(path)
    task = cfg.get("TASK")
    if isinstance(task, str) and TASKS.get(task, agent) != agent:
        raise ValueError(
            f"{path.name} is a V-IRL `{task}` config, for `openvirl agent "
            f"{TASKS[task].replace('_', '-')}`, not `{agent.replace('_', '-')}`."
        )
    options: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option, keys in FIELDS[agent].items():
        if option == "round_trip":
            # V-IRL's PointNavigator loops back to the start unless END_POSITION is set.
            options[option] = _get(cfg, keys[0]) is None
            sources[option] = keys[0]
            continue
        for key in keys:
            value = _get(cfg, key)
            if value is None:
                continue
            converted = _convert(option, value, key, path.parent)
            if converted is None:
                continue
            options[option] = converted
            sources[option] = key
            break
    if "stops" in options:
        options.pop("sentence", None)
        sources.pop("sentence", None)
    return options, sources


def map_city(name: str) -> str:
    """V-IRL's ``AGENT.CITY`` ("New York") as a `City.load` name, or a ValueError saying how
    to fetch it."""
    from openvirl.world import catalog
    from openvirl.world.errors import WorldError
    from openvirl.world.fetch import slug

    for candidate in (name, slug(name)):
        try:
            return catalog.resolve(candidate).name
        except WorldError:
            continue
    raise ValueError(
        f"the config's city `{name}` is not loaded here; fetch the area first, e.g. "
        f'`openvirl city fetch "{name}" --radius 1000 --name {slug(name)}`, or pass --city.'
    )


__all__ = ["FIELDS", "LABELS", "TASKS", "map_city", "options_from_yaml", "read_yaml"]
