"""Parse and check a model output: ``<think>...</think><answer>{json}</answer>``.

The checker returns the parsed answer or one named reason for rejection
(:class:`FormatError`); what it checks is the prompt format's
:class:`~verl_rec.tasks.formats.FormatSpec`. Rules, in the order they are checked:

1. **Special tokens.** Chat-template tokens of the form ``<|...|>`` (``<|im_end|>``,
   ``<|endoftext|>``, ``<|eot_id|>``) and ``</s>`` are end-of-turn markers, not text: they are
   removed wherever they appear before any other rule runs. Decode with
   ``skip_special_tokens=False`` or ``True``: the result is the same.
2. **Pre-filled ``<think>``.** When the prompt already opened the think block (the Rec-R1
   prompts pre-fill ``"Let me solve this step by step.\n<think>"`` in the assistant turn),
   pass ``think_prefilled=True``: the output is read as if it started with ``<think>``. A
   prefilled output that opens ``<think>`` again is a duplicated tag (as in the released code,
   which counts the pre-filled tag). A pre-fill that goes on after ``<think>``
   (``FormatSpec.prefill_after_think``) is read as written before the output too.
3. **Tags.** Exactly one each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` (tags
   are case-sensitive, counted wherever they appear), in that order. ``require_think=False``
   accepts an output made of the answer block alone (but still rejects a stray or partial
   think block).
4. **Text outside the tags** (``format_rule``). ``released`` (the default, the released
   Rec-R1 reward): allowed anywhere. ``strict``: only whitespace before ``<think>``, between
   ``</think>`` and ``<answer>``, and after ``</answer>``.
5. **Answer.** The text inside ``<answer>`` is a JSON object holding ``answer_key``
   (``strict`` also accepts it inside one Markdown code fence, ```` ```json ... ``` ````;
   ``released`` requires bare JSON, as ``json.loads`` did there). For ``query`` the value must
   be a string with a non-blank word; for ``reranked_items`` a non-empty list of strings and,
   when the prompt's candidate ids are given, a permutation of them (no duplicates, none
   missing, none unknown). Optionally the query may be capped at ``max_query_words`` words.

Where the released code raised or scored a malformed answer as a miss, we reject it as a
format failure (docs/fidelity.md): a JSON number, ``true``/``false`` or ``null`` (a
``TypeError`` there), a JSON list or string holding the word ``query`` (0 there), a
non-string or blank query (0 there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum
from typing import Any

from verl_rec.tasks.formats import FormatSpec

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
_SPECIAL_TOKEN = re.compile(r"<\|[^<>|\s]{1,64}\|>|</s>")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.S)


class FormatError(str, Enum):
    """Why an output was rejected. Each value is a stable name, used in logs and tests."""

    EMPTY_OUTPUT = "empty_output"
    MISSING_THINK = "missing_think"
    MISSING_ANSWER = "missing_answer"
    DUPLICATE_TAG = "duplicate_tag"
    WRONG_ORDER = "wrong_order"
    TEXT_OUTSIDE_TAGS = "text_outside_tags"
    BAD_JSON = "bad_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_KEY = "missing_key"
    WRONG_TYPE = "wrong_type"
    EMPTY_ANSWER = "empty_answer"
    QUERY_TOO_LONG = "query_too_long"
    NOT_A_PERMUTATION = "not_a_permutation"


@dataclass(frozen=True)
class ParsedOutput:
    """Either ``answer`` (the value under the answer key) or ``error`` is set."""

    answer: Any = None
    error: FormatError | None = None
    think: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def strip_special_tokens(text: str) -> str:
    """Remove chat-template control tokens (``<|im_end|>``, ``</s>``, ...) anywhere in ``text``."""
    return _SPECIAL_TOKEN.sub("", text)


def _reject(error: FormatError) -> ParsedOutput:
    return ParsedOutput(error=error)


def _check_tags(text: str, spec: FormatSpec) -> FormatError | None:
    counts = {tag: text.count(tag) for tag in _TAGS}
    if any(n > 1 for n in counts.values()):
        return FormatError.DUPLICATE_TAG
    if counts[ANSWER_OPEN] == 0 or counts[ANSWER_CLOSE] == 0:
        return FormatError.MISSING_ANSWER
    has_think = counts[THINK_OPEN] + counts[THINK_CLOSE]
    if has_think == 1 or (has_think == 0 and spec.require_think):
        return FormatError.MISSING_THINK
    order = [text.index(tag) for tag in _TAGS if counts[tag]]
    if order != sorted(order):
        return FormatError.WRONG_ORDER
    return None


def _outside_text(text: str) -> str:
    """Everything that is neither inside the think block nor inside the answer block."""
    head, _, rest = text.partition(ANSWER_OPEN)
    _, _, tail = rest.partition(ANSWER_CLOSE)
    if THINK_OPEN in head:
        before, _, after_open = head.partition(THINK_OPEN)
        _, _, between = after_open.partition(THINK_CLOSE)
        head = before + between
    return head + tail


def _parse_json_object(body: str, allow_fence: bool) -> tuple[dict | None, FormatError | None]:
    body = body.strip()
    fenced = _FENCE.match(body) if allow_fence else None
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None, FormatError.BAD_JSON
    if not isinstance(value, dict):
        return None, FormatError.NOT_AN_OBJECT
    return value, None


def _check_permutation(items: list[str], raw_length: int, candidates: Collection[str]) -> FormatError | None:
    """A re-ranked list must hold every candidate id exactly once and nothing else."""
    wanted = set(candidates)
    if raw_length != len(items) or len(set(items)) != len(items) or set(items) != wanted:
        return FormatError.NOT_A_PERMUTATION
    return None


def _check_value(value: Any, spec: FormatSpec, candidates: Collection[str] | None) -> tuple[Any, FormatError | None]:
    if spec.answer_key == "query":
        if not isinstance(value, str):
            return None, FormatError.WRONG_TYPE
        words = value.split()
        if not words:
            return None, FormatError.EMPTY_ANSWER
        if spec.max_query_words is not None and len(words) > spec.max_query_words:
            return None, FormatError.QUERY_TOO_LONG
        return value.strip(), None
    if isinstance(value, str):  # a list is expected for every other key
        return None, FormatError.WRONG_TYPE
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            return None, FormatError.WRONG_TYPE
        items = [item.strip() for item in value if item.strip()]
        if not items:
            return None, FormatError.EMPTY_ANSWER
        if candidates is not None:
            error = _check_permutation(items, len(value), candidates)
            if error is not None:
                return None, error
        return items, None
    return None, FormatError.WRONG_TYPE


def parse_output(text: Any, spec: FormatSpec = FormatSpec(), candidates: Collection[str] | None = None) -> ParsedOutput:
    """Check ``text`` against ``spec``; never raises on any input.

    ``candidates``: the ids a re-ranked list must be a permutation of (the prompt's ``Item_k``);
    ``None`` skips that check.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = strip_special_tokens(text)
    if spec.think_prefilled:
        text = THINK_OPEN + spec.prefill_after_think + text
    if not text.strip():
        return _reject(FormatError.EMPTY_OUTPUT)
    tag_error = _check_tags(text, spec)
    if tag_error is not None:
        return _reject(tag_error)
    strict = spec.format_rule == "strict"
    if strict and _outside_text(text).strip():
        return _reject(FormatError.TEXT_OUTSIDE_TAGS)
    body = text.split(ANSWER_OPEN, 1)[1].split(ANSWER_CLOSE, 1)[0]
    obj, json_error = _parse_json_object(body, allow_fence=strict)
    if json_error is not None:
        return _reject(json_error)
    if spec.answer_key not in obj:
        return _reject(FormatError.MISSING_KEY)
    answer, value_error = _check_value(obj[spec.answer_key], spec, candidates)
    if value_error is not None:
        return _reject(value_error)
    think = text.split(THINK_OPEN, 1)[1].split(THINK_CLOSE, 1)[0] if THINK_OPEN in text else ""
    return ParsedOutput(answer=answer, think=think.strip())
