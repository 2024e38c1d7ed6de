"""Shared pytest setup: a per-checkout cache so every fresh clone tests the cold paths.

City caches, solver tables for other targets and prepared models go to
`<repo>/.cache/openvirl-test` (git-ignored) unless `OPENVIRL_CACHE` is set, so CI on a fresh
clone builds them from scratch, exactly as a new user's first run does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("OPENVIRL_CACHE", str(_REPO / ".cache" / "openvirl-test"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and the test machine's cores are shared; a test
    module opts in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
