"""openvirl: offline V-IRL on OpenStreetMap, and an SFT-versus-RL lab for language and vision.

Importing the package only registers the gymnasium environments; everything heavy
(OSM parsing, torch, transformers) is imported where it is used.
"""

from __future__ import annotations

from openvirl.envs import register_envs

__version__ = "0.1.0"

register_envs()

__all__ = ["__version__"]
