"""Readers for TREC-format test collections (documents, topics, qrels).

Used to turn a classic IR collection (e.g. the bundled Vaswani collection in tests) into
our JSONL corpus format and into ``{query_id: {doc_id: gain}}`` qrels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

_DOC = re.compile(r"<DOC>(.*?)</DOC>", re.S)
_DOCNO = re.compile(r"<DOCNO>\s*(.*?)\s*</DOCNO>", re.S)
_TOP = re.compile(r"<top>(.*?)</top>", re.S)
_NUM = re.compile(r"<num>\s*(?:Number:)?\s*(.*?)\s*(?:</num>|\n|<)", re.S)
_TITLE = re.compile(r"<title>\s*(.*?)\s*(?:</title>|<desc>|</top>)", re.S)


def read_trec_docs(path: str | Path) -> Iterator[tuple[str, str]]:
    """Yield ``(docno, text)`` from a ``<DOC><DOCNO>..</DOCNO> text </DOC>`` file."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    for match in _DOC.finditer(text):
        body = match.group(1)
        docno = _DOCNO.search(body)
        if docno is None:
            raise ValueError(f"{path}: a <DOC> without <DOCNO> at offset {match.start()}")
        content = _DOCNO.sub(" ", body)
        yield docno.group(1), " ".join(content.split())


def read_trec_topics(path: str | Path) -> dict[str, str]:
    """Return ``{topic_id: title}`` from a ``<top><num>..<title>..`` file."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    topics: dict[str, str] = {}
    for match in _TOP.finditer(text):
        body = match.group(1)
        num, title = _NUM.search(body), _TITLE.search(body)
        if num is None or title is None:
            raise ValueError(f"{path}: a <top> without <num> or <title> at offset {match.start()}")
        topics[num.group(1).strip()] = " ".join(title.group(1).split())
    return topics


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Return ``{query_id: {doc_id: relevance}}`` from a ``qid 0 docid rel`` file."""
    qrels: dict[str, dict[str, int]] = {}
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4:
            raise ValueError(f"{path}:{line_no}: expected 'qid iter docid rel', got {line!r}")
        qid, _, docid, rel = parts
        qrels.setdefault(qid, {})[docid] = int(rel)
    return qrels


def trec_docs_to_jsonl(src: str | Path, dst: str | Path) -> int:
    """Write a TREC document file as our JSONL corpus (``id``/``contents``); return the count."""
    count = 0
    with Path(dst).open("w", encoding="utf-8") as out:
        for docno, text in read_trec_docs(src):
            out.write(json.dumps({"id": docno, "contents": text}, ensure_ascii=False) + "\n")
            count += 1
    return count
