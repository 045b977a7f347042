"""Short document texts (a product's title) by id: what a search result shows a reader.

An index maps text to ids; a policy that reads its results needs a few words per id. The
short text of a document is the first non-blank line of its corpus text (the corpus builders
put the title first), whitespace collapsed, cut to ``max_chars`` characters at a word
boundary. Only the short texts are kept: ~100 bytes per document.
"""

from __future__ import annotations

from pathlib import Path

from verl_rec.retrieval.corpus import CorpusFormat, iter_corpus


def short_text(text: str, max_chars: int) -> str:
    """The first non-blank line of ``text``, whitespace collapsed, cut at a word boundary."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    if len(line) <= max_chars:
        return line
    cut = line[:max_chars]
    space = cut.rfind(" ")
    return (cut[:space] if space > max_chars // 2 else cut).rstrip() + "..."


class DocTexts:
    """``id -> short text`` of every document of a corpus JSONL (:mod:`verl_rec.retrieval.corpus`)."""

    def __init__(self, texts: dict[str, str], source: str = "") -> None:
        self._texts = texts
        self.source = source

    @classmethod
    def from_corpus(cls, path: str | Path, max_chars: int = 120, fmt: CorpusFormat = CorpusFormat()) -> DocTexts:
        """Read ``path`` once; a missing or malformed file fails naming it (:class:`CorpusError`)."""
        if max_chars < 8:
            raise ValueError(f"doc_text_chars must be at least 8, got {max_chars}")
        return cls({doc_id: short_text(text, max_chars) for doc_id, text in iter_corpus(path, fmt)}, str(path))

    def get(self, doc_id: str) -> str:
        """The short text of ``doc_id``; an id the corpus lacks reads as empty."""
        return self._texts.get(doc_id, "")

    def __len__(self) -> int:
        return len(self._texts)
