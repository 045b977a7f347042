"""Verbose, natural-language requests built from a test collection's terse queries.

Classic collections (Vaswani, CACM, ...) hold keyword-like topic titles; what a researcher
types into a chat-style search box is a sentence around that topic, with words that match
nothing in the abstracts ("thesis", "talk", "thanks"). The rewrite task is then the one Rec-R1
trains for: turn what the user wrote into the query the engine needs.

The templates were written before any request was scored, and are fixed: changing one is a
new task, so the builder's manifest records them. The topic goes in verbatim (lower-cased, as
people type), never shortened or reworded, so the request holds every word of the original
query.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

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


def topic_text(query: str) -> str:
    """The query as a person would type it inside a sentence: lower-case, single spaces."""
    return " ".join(query.lower().split())


def render_request(query: str, template: int, templates: Sequence[str] = REQUEST_TEMPLATES) -> str:
    """The request of template number ``template`` around ``query``."""
    return templates[template].format(topic=topic_text(query))


def seeded_template(query_id: str, seed: int, templates: Sequence[str] = REQUEST_TEMPLATES) -> int:
    """One template per query, fixed by (seed, query id): the held-out queries' request."""
    return random.Random(f"{seed}:{query_id}").randrange(len(templates))
