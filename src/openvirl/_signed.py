"""Cache files that only this user's openvirl can have written: HMAC-signed before unpickling.

Built cities are too rich (networkx graphs, shapely geometry) for a plain data format, so they
stay pickles; but a pickle runs code when loaded, so a cache file must never be loaded unless
we wrote it. Every signed file starts with `MAGIC`, then an HMAC-SHA256 tag over a *purpose*
string and the payload, then the payload. The key is 32 random bytes in ``cache-key`` at the
root of the cache directory, created on first use with mode 0600. The purpose names the file's
role and contents (``city-cache v7 <sha256>``), so a valid file cannot be swapped in for
another. A file whose tag does not verify is never unpickled; the caller rebuilds.

What this protects against: cache files copied in from elsewhere (a shared or downloaded cache
folder, a crafted file dropped into it). What it cannot protect against: someone who can
already read your key file, i.e. who has your account.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import warnings
from pathlib import Path

from openvirl._paths import cache_dir

MAGIC = b"OPENVIRL-SIGNED-1\n"
"""First bytes of every signed file (a file without them is never unpickled)."""

KEY_FILE = "cache-key"
"""Name of the per-user secret key file at the root of the cache directory."""

_KEY_BYTES = 32
_TAG_BYTES = hashlib.sha256().digest_size
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, stacklevel=3)


def _key_is_private(path: Path) -> str | None:
    """Why the key file at `path` cannot be trusted, or None if it can."""
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return "it belongs to another user"
    if os.name == "posix" and info.st_mode & 0o077:
        return f"others may read or write it (mode {stat.S_IMODE(info.st_mode):o})"
    if info.st_size != _KEY_BYTES:
        return f"it holds {info.st_size} bytes, not {_KEY_BYTES}"
    return None


def cache_key() -> bytes | None:
    """This user's cache key (created on first use), or None when it cannot be trusted.

    None (with a warning) means signed caches are neither read nor written: everything is
    rebuilt, which is slow but safe.
    """
    path = cache_dir() / KEY_FILE
    if not path.exists() and not path.is_symlink():
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(_KEY_BYTES))
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic and never overwrites: a racing process's key wins
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links
            if not path.exists():
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    try:
        problem = _key_is_private(path)
        if problem is None:
            return path.read_bytes()
    except OSError as exc:
        problem = str(exc)
    _warn_once(f"ignoring the cache key {path}: {problem}; caches are rebuilt, not read.")
    return None


def _tag(key: bytes, purpose: str, payload: bytes | memoryview) -> bytes:
    mac = hmac.new(key, purpose.encode("utf-8") + b"\0", hashlib.sha256)
    mac.update(payload)
    return mac.digest()


def write_signed(path: Path, payload: bytes, purpose: str) -> bool:
    """Write `payload` to `path` (atomically) with a tag binding it to `purpose`.

    Returns False, writing nothing, when there is no trusted key or the write fails.
    """
    key = cache_key()
    if key is None:
        return False
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(MAGIC)
            fh.write(_tag(key, purpose, payload))
            fh.write(payload)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True


def read_signed(path: Path, purpose: str) -> memoryview | None:
    """The payload of `path` if we signed it for `purpose`; None otherwise (never raises).

    The whole file is read once and verified in memory, so it cannot change between the check
    and the use.
    """
    key = cache_key()
    if key is None:
        return None
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        data = path.read_bytes()
    except OSError:
        return None
    head = len(MAGIC)
    if not data.startswith(MAGIC) or len(data) < head + _TAG_BYTES:
        return None
    view = memoryview(data)  # slices without copying a payload of tens of megabytes
    tag, payload = view[head : head + _TAG_BYTES], view[head + _TAG_BYTES :]
    if not hmac.compare_digest(tag, _tag(key, purpose, payload)):
        return None
    return payload


__all__ = ["KEY_FILE", "MAGIC", "cache_key", "read_signed", "write_signed"]
