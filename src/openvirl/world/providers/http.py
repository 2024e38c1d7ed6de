"""The HTTP plumbing every provider shares: where to send, how to retry, what to cache.

Keys never leave for a host other than the provider's own base URL, and never over plain http
except to a loopback address (a user's local mirror, or the tests' fake server). Answers are
cached on disk by a hash of the request *without* the key, so a rerun, or another user of the
same cache, costs no request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from openvirl._paths import cache_dir
from openvirl.world.providers.errors import (
    KeyMissingError,
    ProviderError,
    ProviderUnavailableError,
    QuotaExceededError,
)

USER_AGENT = "openvirl (https://github.com/openvirl/openvirl)"
TIMEOUT_S = 20.0
MAX_RESPONSE_BYTES = 20 * 1024 * 1024  # a 2048 px panorama is ~1 MB; refuse anything absurd
RETRIES = 2  # transport errors and 5xx are retried with backoff; 4xx never


def resolve_key(given: str | None, env_vars: tuple[str, ...], *, provider: str, how: str) -> str:
    """The key passed, else the first environment variable set; `KeyMissingError` otherwise."""
    if given:
        return given
    for var in env_vars:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    raise KeyMissingError(
        f"{provider} needs a key: set {' or '.join(env_vars)} (or pass it); {how}"
    )


def resolve_base_url(given: str | None, env_var: str, default: str) -> str:
    """The base URL passed, else `env_var`, else the provider's public endpoint."""
    url = (given or os.environ.get(env_var, "") or default).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProviderError(f"`{url}` is not an http(s) URL (from {env_var} or the option).")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ProviderError(
            f"refusing to send an API key over plain http to {parts.hostname}; use https "
            "(plain http is allowed only to a loopback address)."
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ResponseCache:
    """Answers and images on disk, keyed by a hash of the request (never of the key).

    Parameters
    ----------
    provider
        Sub-folder name ("google", "mapillary").
    max_age_s
        Entries older than this are refetched (None: keep forever).
    root
        Cache folder; default the user cache (`OPENVIRL_CACHE`) `providers/<provider>`.
    """

    def __init__(
        self, provider: str, *, max_age_s: float | None = None, root: Path | None = None
    ) -> None:
        self.root = Path(root) if root is not None else cache_dir("providers", provider)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s

    @staticmethod
    def key(*parts: Any) -> str:
        """A stable hash of the request's parts (JSON-encoded, sorted)."""
        blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:40]

    def _fresh(self, path: Path) -> bool:
        if not path.is_file():
            return False
        if self.max_age_s is None:
            return True
        return time.time() - path.stat().st_mtime < self.max_age_s

    def get_json(self, key: str) -> Any | None:
        """The cached JSON answer, or None."""
        path = self.root / f"{key}.json"
        if not self._fresh(path):
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # a torn entry is refetched

    def put_json(self, key: str, value: Any) -> None:
        """Store a JSON answer atomically."""
        self._atomic(self.root / f"{key}.json", json.dumps(value).encode("utf-8"))

    def get_bytes(self, key: str, suffix: str = ".jpg") -> bytes | None:
        """The cached bytes (an image), or None."""
        path = self.root / f"{key}{suffix}"
        if not self._fresh(path):
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None

    def put_bytes(self, key: str, data: bytes, suffix: str = ".jpg") -> None:
        """Store bytes atomically."""
        self._atomic(self.root / f"{key}{suffix}", data)

    @staticmethod
    def _atomic(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


class ProviderHTTP:
    """A small httpx client: one base URL, a User-Agent, bounded retries and sizes.

    Parameters
    ----------
    provider
        Name used in error messages ("Google Street View").
    base_url
        Where every request goes (see `resolve_base_url`).
    transport
        An httpx transport (tests may pass one; the default is the network).
    """

    def __init__(self, provider: str, base_url: str, *, transport: Any = None) -> None:
        import httpx

        self.provider = provider
        self.base_url = base_url
        self._client = httpx.Client(
            timeout=TIMEOUT_S,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
            follow_redirects=False,
        )
        self.requests = 0  # how many requests went out (a cache hit makes none)

    def get(
        self,
        path_or_url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes, str]:
        """GET a path under the base URL (or an absolute URL on the base URL's host).

        Returns (status, body, content type). Raises `ProviderUnavailableError` when the
        host cannot be reached after retries, `QuotaExceededError` on HTTP 429.
        """
        import httpx

        url = self._url(path_or_url)
        delay = 0.5
        for attempt in range(RETRIES + 1):
            try:
                with self._client.stream("GET", url, params=params, headers=headers) as resp:
                    body = self._read_bounded(resp)
                    status = resp.status_code
                    ctype = resp.headers.get("content-type", "")
            except httpx.HTTPError as err:
                if attempt == RETRIES:
                    raise ProviderUnavailableError(
                        f"{self.provider} could not be reached at {self.base_url} "
                        f"({type(err).__name__}); check the network or the base URL."
                    ) from None
                time.sleep(delay)
                delay *= 2
                continue
            self.requests += 1
            if status == 429:
                raise QuotaExceededError(
                    f"{self.provider} says the key is over its rate limit or quota (HTTP 429); "
                    "wait, or raise the quota in the provider's console."
                )
            if status >= 500 and attempt < RETRIES:
                time.sleep(delay)
                delay *= 2
                continue
            return status, body, ctype
        raise AssertionError("unreachable")  # pragma: no cover

    def _url(self, path_or_url: str) -> str:
        if "://" not in path_or_url:
            return f"{self.base_url}/{path_or_url.lstrip('/')}"
        # Image URLs returned by an API (Mapillary's CDN) carry their own signature and need
        # no key; they are fetched without one (headers are per request).
        parts = urlsplit(path_or_url)
        if parts.scheme not in ("http", "https"):
            raise ProviderUnavailableError(f"{self.provider} returned a non-http URL.")
        return path_or_url

    def _read_bounded(self, resp: Any) -> bytes:
        chunks: list[bytes] = []
        total = 0
        for chunk in resp.iter_bytes():
            total += len(chunk)
            if total > MAX_RESPONSE_BYTES:
                raise ProviderUnavailableError(
                    f"{self.provider} sent more than {MAX_RESPONSE_BYTES // 2**20} MB; refused."
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def json(self, body: bytes) -> Any:
        """Parse a JSON body, or say the provider answered garbage."""
        try:
            return json.loads(body)
        except ValueError:
            raise ProviderUnavailableError(
                f"{self.provider} answered something that is not JSON; is the base URL right?"
            ) from None
