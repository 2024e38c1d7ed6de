"""A person at the terminal as the policy: prints each prompt, reads the answer from stdin.

For each request it prints the last user message (the prompt, or the verifier's feedback on a
retry); each image of that message is saved as a PNG in a temporary folder and its path is
printed, so it can be opened in any viewer. Answers are one line, or, in multi-line mode,
lines until an empty one.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from openvirl.policies.base import (
    PolicyError,
    Request,
    as_requests,
    message_images,
    message_text,
)


class HumanPolicy:
    """Ask a human for every answer.

    Parameters
    ----------
    multiline
        Read lines until an empty line (True) or a single line (False).
    input_stream, output_stream
        Where answers are read and prompts written (stdin and stdout by default).
    image_dir
        Where images are saved; a fresh temporary folder by default.
    """

    name = "human"

    def __init__(
        self,
        *,
        multiline: bool = True,
        input_stream: IO[str] | None = None,
        output_stream: IO[str] | None = None,
        image_dir: Path | None = None,
    ):
        self.multiline = multiline
        self._input = input_stream
        self._output = output_stream
        self._image_dir = Path(image_dir) if image_dir is not None else None
        self._saved = 0

    @property
    def image_dir(self) -> Path:
        """The folder images are saved to (created on first use)."""
        if self._image_dir is None:
            self._image_dir = Path(tempfile.mkdtemp(prefix="openvirl-human-"))
        self._image_dir.mkdir(parents=True, exist_ok=True)
        return self._image_dir

    def act(self, requests: Sequence[Request]) -> list[str]:
        """Show each request in turn and read its answer."""
        requests = as_requests(requests)
        return [self._ask(request, i, len(requests)) for i, request in enumerate(requests)]

    def _ask(self, request: Request, index: int, total: int) -> str:
        out = self._output or sys.stdout
        messages = request.get("messages") or []
        user_turns = [m for m in messages if m["role"] == "user"]
        last = user_turns[-1] if user_turns else (messages[-1] if messages else None)
        header = f"--- request {index + 1} of {total}"
        if len(user_turns) > 1:
            header += f" (turn {len(user_turns)}; earlier turns not shown)"
        print(header + " ---", file=out)
        if last is not None:
            for image in message_images(last):
                print(f"[image: {self._save(image)}]", file=out)
            print(message_text(last), file=out)
        hint = "(end with an empty line)" if self.multiline else "(one line)"
        print(f"Your answer {hint}:", file=out, flush=True)
        return self._read()

    def _read(self) -> str:
        source = self._input or sys.stdin
        first = source.readline()
        if first == "":
            raise PolicyError("the human policy reached the end of its input (stdin closed)")
        lines = [first.rstrip("\n")]
        if self.multiline:
            if lines[0].strip() == "":
                return ""
            while True:
                line = source.readline()
                if line == "" or line.strip() == "":
                    break
                lines.append(line.rstrip("\n"))
        return "\n".join(lines).strip()

    def _save(self, image: object) -> Path:
        self._saved += 1
        path = self.image_dir / f"image-{self._saved:04d}.png"
        image.save(path)  # type: ignore[attr-defined]
        return path
