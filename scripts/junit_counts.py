"""Print "<passed> <failed>" from a pytest JUnit XML report (failed = failures + errors).

Used by scripts/test.sh; a missing or unreadable report (pytest crashed before writing it)
prints "0 0" and the caller counts the file's non-zero exit as one failure.
"""

import sys
import xml.etree.ElementTree as ET


def counts(path: str) -> tuple[int, int]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return 0, 0
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = failed = skipped = 0
    for suite in suites:
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return total - failed - skipped, failed


if __name__ == "__main__":
    print(*counts(sys.argv[1]))
