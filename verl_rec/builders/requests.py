"""Verbose, natural-language requests built from a test collection's terse queries.

Classic collections (Vaswani, CACM, ...) hold keyword-like topic titles; what a researcher
types into a chat-style search box is a sentence around that topic, with words that match
nothing in the abstracts ("thesis", "talk", "thanks"). The rewrite task is then the one Rec-R1
trains for: turn what the user wrote into the query the engine needs.

Two fixed sets of templates, both written before any request was scored: changing one is a
new task, so the builder's manifest records them. The policy trains on
:data:`REQUEST_TEMPLATES`; :data:`UNSEEN_REQUEST_TEMPLATES` phrase the held-out queries in ways
training never shows, so a held-out gain cannot come from deleting known phrases. A user's
own phrasings come from a file (:func:`read_templates`). The topic goes in verbatim
(lower-cased, as people type), never shortened or reworded, so the request holds every word of
the original query.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from pathlib import Path

from verl_rec.errors import InputError

REQUEST_TEMPLATES: tuple[str, ...] = (
    "Hi! I'm a graduate student and my thesis touches on {topic}. Could you point me to papers on this? "
    "Thanks in advance.",
    "Can you help me find articles about {topic}? I need them for a literature review I'm writing this month.",
    "I'm preparing a talk for our group meeting and want some background reading on {topic}. "
    "Anything relevant would be great.",
    "Looking for published work on {topic}. Both experimental and theoretical studies are welcome.",
    "My manager asked me to collect references on {topic} for a new project. Where should I start?",
    "Please find me research on the following topic: {topic}. I am mostly interested in the main results.",
    "Hello, I work in an engineering lab and we are looking into {topic}. Could you suggest some relevant papers?",
    "I'd like to read up on {topic}. What are the key papers I should know about?",
)

UNSEEN_REQUEST_TEMPLATES: tuple[str, ...] = (
    "For a review article I'm drafting, I need the literature on {topic}. What would you recommend?",
    "Our reading group picks a new subject every month and this time it is {topic}. "
    "Which papers should we start with?",
    "Quick question: are there good references on {topic}? A colleague mentioned it yesterday and I want to catch up.",
    "{topic}: that's what I need sources for. Older and recent work both count.",
    "I teach an undergraduate course and next week's lecture covers {topic}. Could you dig up some readings for me?",
    "Do you know of any studies dealing with {topic}? I'd especially like ones with measurements.",
    "Searching the literature for {topic} before we design our experiment; please list whatever seems most relevant.",
    "We are writing a grant proposal involving {topic} and need to cite prior work. Can you find it?",
)


def check_template(template: str, where: str) -> str:
    """``template`` if it holds ``{topic}`` exactly once and no other field; else an error naming ``where``."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise InputError(f"{where}: {exc} in {template!r}; write literal braces as {{{{ and }}}}") from None
    if fields != ["topic"]:
        raise InputError(f"{where}: a template needs {{topic}} exactly once and no other field, got {template!r}")
    return template


def read_templates(path: str | Path) -> tuple[str, ...]:
    """Templates from a text file, one per line (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--templates {path}: no such file")
    templates = tuple(check_template(line.strip(), f"{path}:{number}")
                      for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                      if line.strip() and not line.lstrip().startswith("#"))
    if not templates:
        raise InputError(f"--templates {path}: no template in the file; write one {{topic}} template per line")
    return templates


def topic_text(query: str) -> str:
    """The query as a person would type it inside a sentence: lower-case, single spaces."""
    return " ".join(query.lower().split())


def render_request(query: str, template: int, templates: Sequence[str] = REQUEST_TEMPLATES) -> str:
    """The request of template number ``template`` around ``query``."""
    return templates[template].format(topic=topic_text(query))


def seeded_template(query_id: str, seed: int, templates: Sequence[str] = REQUEST_TEMPLATES) -> int:
    """One template per query, fixed by (seed, query id): the held-out queries' request."""
    return random.Random(f"{seed}:{query_id}").randrange(len(templates))
