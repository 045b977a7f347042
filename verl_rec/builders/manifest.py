"""Counts of what a builder kept and dropped, and why: nothing is dropped silently."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Manifest:
    builder: str
    settings: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, int] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)
    outputs: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # facts about the kept data (neither input nor drop)

    def note(self, name: str, value: Any) -> None:
        self.notes[name] = value

    def drop(self, reason: str, count: int = 1) -> None:
        if count:
            self.dropped[reason] += int(count)

    def write(self, out_dir: str | Path) -> Path:
        path = Path(out_dir) / "manifest.json"
        body = {"builder": self.builder, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "settings": self.settings,
                "inputs": self.inputs, "dropped": dict(sorted(self.dropped.items())), "outputs": self.outputs}
        if self.notes:
            body["notes"] = self.notes
        path.write_text(json.dumps(body, indent=2, default=str) + "\n")
        return path

    def summary(self) -> str:
        """A short human-readable report for the command's output."""
        lines = [f"{self.builder}: inputs {self.inputs}"]
        lines += [f"  dropped {n:>8} x {reason}" for reason, n in sorted(self.dropped.items())]
        lines += [f"  wrote   {n:>8} x {name}" + ("   <- EMPTY" if n == 0 and name.endswith(".parquet") else "")
                  for name, n in self.outputs.items()]
        lines += [f"  note    {name}: {value}" for name, value in self.notes.items()]
        return "\n".join(lines)
