"""What can go wrong with an online provider, each as one line a user can act on."""

from __future__ import annotations

from openvirl.world.errors import WorldError


class ProviderError(WorldError):
    """Base class of every provider failure (a `WorldError`, so the CLIs print one line)."""


class KeyMissingError(ProviderError):
    """The provider needs a key or token and none was given."""


class KeyRejectedError(ProviderError):
    """The provider refused the key (invalid, API not enabled, billing off)."""


class QuotaExceededError(ProviderError):
    """The key is over its quota or rate limit."""


class NoImageryError(ProviderError):
    """The provider has no image (or no place) for the request."""


class ProviderUnavailableError(ProviderError):
    """The provider could not be reached or answered garbage (network down, server error)."""
