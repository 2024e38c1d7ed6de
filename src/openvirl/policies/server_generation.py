"""Watching `HFPolicy.generate` token by token: streaming, log-probabilities and cancelling.

The model server passes `TokenWatch.generate_kwargs` to `HFPolicy.generate`, which hands them to
transformers' ``model.generate``. Two hooks ride along, both called at every decoding step:

- when log-probabilities are asked for, a logits processor, which sees the model's raw
  next-token logits before any temperature or top-p warping (so reported log-probabilities are
  the model's own, as vLLM's default ``raw_logprobs``); without it a greedy request reads only
  each row's argmax and may take the embedded model's exact shortlist (`policies.fast`), and
- a stopping criterion, which sees the token just chosen for every row. It decodes the new text
  incrementally (`RowText`) and reports it, and it ends the whole batch when the request is
  cancelled (the client left, the server is shutting down) or its time limit has passed.

So streaming is real token-by-token streaming from the decoding loop, not a finished answer
cut into pieces, and a request whose client disconnects stops within one decoding step.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from openvirl.policies.hf import truncate_at_stop

ZERO_PROBABILITY_LOGPROB = -9999.0
"""What a token of probability 0 reports as its log-probability (OpenAI's convention)."""

TokenCallback = Callable[[int, str, "dict[str, Any] | None"], None]
"""Called as ``(row, new_text, logprob_entry)`` for every generated token of every row."""


def held_back(text: str, stop: Sequence[str]) -> int:
    """How many trailing characters of `text` could be the start of a stop string.

    A stream must not send them yet: if the stop string completes, they are not part of the
    answer.
    """
    longest = 0
    for s in stop:
        for k in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:k]):
                longest = k
                break
    return longest


class RowText:
    """The text of one generated row, decoded incrementally as tokens arrive.

    Decoding a window of recent tokens (the offsets technique of text-generation-inference)
    keeps each step cheap and handles tokenizers whose pieces only make sense together (a
    multi-byte character split over tokens decodes to U+FFFD until it is complete).
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str]):
        self.tokenizer = tokenizer
        self.stop = list(stop)
        self.ids: list[int] = []
        self.text = ""
        self.visible = ""
        """The part of the answer that may be sent: before any stop string, and without a
        trailing piece that could still become one."""
        self.stopped = False
        """Whether a stop string has appeared (the answer is complete)."""
        self._prefix_offset = 0
        self._read_offset = 0

    def push(self, token: int) -> str:
        """Add a token; return the newly visible text (often empty)."""
        self.ids.append(token)
        decode = self.tokenizer.decode
        before = decode(self.ids[self._prefix_offset : self._read_offset], skip_special_tokens=True)
        after = decode(self.ids[self._prefix_offset :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before) :]
            self._prefix_offset, self._read_offset = self._read_offset, len(self.ids)
        cut = truncate_at_stop(self.text, self.stop)
        if len(cut) < len(self.text):
            self.stopped = True
            visible = cut
        else:
            visible = cut[: len(cut) - held_back(cut, self.stop)]
        new = visible[len(self.visible) :] if visible.startswith(self.visible) else ""
        self.visible = visible if new else self.visible
        return new


class TokenWatch:
    """Per-step hooks for one `HFPolicy.generate` call over `rows` rows.

    Parameters
    ----------
    tokenizer
        The policy's tokenizer (decodes tokens as they come).
    rows
        How many requests the call holds (``n`` copies of one prompt); `HFPolicy` may split
        them into several ``model.generate`` calls of ``batch_size`` rows, in order.
    end_ids, pad_id
        Tokens that end a row (`HFPolicy` stops decoding a row there, as here).
    stop
        Stop strings, as `HFPolicy` applies them.
    top_logprobs
        None: no log-probabilities. Else record each token's log-probability and this many
        most likely alternatives.
    events
        Any of them set cancels the generation at the next step.
    deadline
        `time.monotonic()` value at which generation stops (``timed_out`` then turns True).
    on_token
        Called for every token of every row, from the generating thread.
    """

    def __init__(
        self,
        tokenizer: Any,
        rows: int,
        *,
        end_ids: set[int],
        pad_id: int | None,
        stop: Sequence[str],
        top_logprobs: int | None = None,
        events: Sequence[threading.Event] = (),
        deadline: float = math.inf,
        on_token: TokenCallback | None = None,
    ):
        self.tokenizer = tokenizer
        self.rows = [RowText(tokenizer, stop) for _ in range(rows)]
        self.logprobs: list[list[dict[str, Any]]] = [[] for _ in range(rows)]
        self.ended = [False] * rows
        """Whether each row produced an end token or a stop string (finish reason "stop")."""
        self.end_ids = set(end_ids)
        self.pad_id = pad_id
        self.top_logprobs = top_logprobs
        self.events = list(events)
        self.deadline = deadline
        self.on_token = on_token
        self.timed_out = False
        self.cancelled = False
        self._offset = 0
        self._chunk_rows = 0
        self._last_length: int | None = None
        self._step_logprobs: torch.Tensor | None = None
        self._token_text: dict[int, str] = {}

    def generate_kwargs(self) -> dict[str, Any]:
        """The `generate_kwargs` for `HFPolicy.generate`.

        The logits processor is there only when log-probabilities were asked for: a greedy
        request without them reads nothing but each row's argmax, so `HFPolicy` may take the
        embedded model's exact argmax shortlist (`openvirl.policies.fast`).
        """
        kwargs: dict[str, Any] = {"stopping_criteria": StoppingCriteriaList([_Steps(self)])}
        if self.top_logprobs is not None:
            kwargs["logits_processor"] = LogitsProcessorList([_Scores(self)])
        return kwargs

    def finish_reason(self, row: int) -> str:
        """OpenAI's finish reason: "stop" at an end token or stop string, else "length"."""
        return "stop" if self.ended[row] or self.rows[row].stopped else "length"

    # -------------------------------------------------------------- the two hooks
    def scores(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.top_logprobs is not None:
            self._step_logprobs = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def step(self, input_ids: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1]
        if self._last_length is None or length != self._last_length + 1:
            # A new model.generate call: HFPolicy's next sub-batch of rows.
            self._offset += self._chunk_rows
            self._chunk_rows = input_ids.shape[0]
        self._last_length = length
        tokens = input_ids[:, -1].tolist()
        for i, token in enumerate(tokens):
            row = self._offset + i
            if row >= len(self.rows) or self.ended[row] or self.rows[row].stopped:
                continue
            if token in self.end_ids or token == self.pad_id:
                self.ended[row] = True
                continue
            entry = self._entry(i, token) if self._step_logprobs is not None else None
            new_text = self.rows[row].push(token)
            if entry is not None:
                self.logprobs[row].append(entry)
            if self.on_token is not None and (new_text or entry is not None):
                self.on_token(row, new_text, entry)
        if any(event.is_set() for event in self.events):
            self.cancelled = True
        elif time.monotonic() > self.deadline:
            self.timed_out = True
        stop_all = self.cancelled or self.timed_out
        return torch.full(
            (input_ids.shape[0],), stop_all, dtype=torch.bool, device=input_ids.device
        )

    # -------------------------------------------------------------- log-probabilities
    def _entry(self, i: int, token: int) -> dict[str, Any]:
        assert self._step_logprobs is not None
        logprobs = self._step_logprobs[i]
        entry = self._token(token, float(logprobs[token]))
        entry["top_logprobs"] = []
        if self.top_logprobs:
            values, ids = torch.topk(logprobs, min(self.top_logprobs, logprobs.shape[-1]))
            pairs = zip(ids.tolist(), values.tolist(), strict=True)
            entry["top_logprobs"] = [self._token(int(t), float(v)) for t, v in pairs]
        return entry

    def _token(self, token: int, logprob: float) -> dict[str, Any]:
        text = self._token_text.get(token)
        if text is None:
            text = self.tokenizer.decode([token], skip_special_tokens=False)
            self._token_text[token] = text
        if not math.isfinite(logprob):
            logprob = ZERO_PROBABILITY_LOGPROB
        return {
            "token": text,
            "logprob": max(logprob, ZERO_PROBABILITY_LOGPROB),
            "bytes": list(text.encode("utf-8", "replace")),
        }


class _Scores(LogitsProcessor):
    """The watch's logits processor (returns the scores unchanged)."""

    def __init__(self, watch: TokenWatch):
        self.watch = watch

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.watch.scores(input_ids, scores)


class _Steps(StoppingCriteria):
    """The watch's stopping criterion (ends every row on cancel or time-out)."""

    def __init__(self, watch: TokenWatch):
        self.watch = watch

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return self.watch.step(input_ids)


def context_length(policy: Any) -> int | None:
    """The most tokens (prompt and completion) the policy's model can attend to, if known."""
    model = getattr(policy, "model", None)
    config = getattr(model, "config", None)
    found = []
    for part in (config, getattr(config, "text_config", None)):
        value = getattr(part, "max_position_embeddings", None)
        if isinstance(value, int) and value > 0:
            found.append(value)
    limit = getattr(getattr(policy, "tokenizer", None), "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 10**8:  # tokenizers without one say 1e30
        found.append(limit)
    return min(found) if found else None


def max_chars_per_token(tokenizer: Any) -> int:
    """An upper bound on the characters one token covers (its longest vocabulary entry).

    A prompt of more than ``context x`` this many characters cannot fit the context whatever
    it says, so it is refused without being tokenized.
    """
    try:
        vocabulary = tokenizer.get_vocab()
    except Exception:  # a tokenizer without a listable vocabulary: assume long tokens
        return 64
    return max((len(token) for token in vocabulary), default=1) or 1
