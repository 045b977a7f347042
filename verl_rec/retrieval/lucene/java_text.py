"""Any Python text made safe to hand to Java (JNI strings) and Lucene's analyzer."""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def sanitize_text(text: Any) -> str:
    """Make any query text safe for JNI and the analyzer, without changing its terms.

    Lone surrogates (e.g. from a lossy tokenizer decode) cannot be encoded to a Java string:
    valid surrogate pairs are joined, lone ones become U+FFFD. Control characters, which the
    analyzer treats as separators anyway, become spaces (NUL included).
    """
    if text is None:
        return ""
    text = text if isinstance(text, str) else str(text)
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _CONTROL.sub(" ", text)
