"""What a preflight found: one finding per check, and what the run will need from the cluster."""

from __future__ import annotations

from dataclasses import dataclass, field

OK, FAIL, WARN, INFO = "ok", "FAIL", "warn", "info"


@dataclass(frozen=True)
class Finding:
    """One check's verdict: ``key`` is the config key to change, ``fix`` a value that would work."""

    check: str
    status: str
    message: str
    key: str = ""
    fix: str = ""

    def render(self) -> str:
        head = f"[{self.status:<4}] {self.check}: {self.message}"
        return head + (f"\n       fix: {self.fix}" if self.fix else "")


@dataclass
class Report:
    """The findings and the needs (label -> value) of one recipe at one cluster size."""

    recipe: str
    gpus_per_node: int
    nodes: int
    findings: list[Finding] = field(default_factory=list)
    needs: dict[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.status == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failures

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def render(self) -> str:
        lines = [f"preflight: recipe {self.recipe} on {self.nodes} node(s) x {self.gpus_per_node} GPU(s)"]
        lines += [f.render() for f in self.findings]
        if self.needs:
            lines.append("the run needs:")
            width = max(len(k) for k in self.needs)
            lines += [f"  {k:<{width}}  {v}" for k, v in self.needs.items()]
        verdict = "would start" if self.ok else f"would die: {len(self.failures)} check(s) failed"
        lines.append(f"preflight: {self.recipe} {verdict}")
        return "\n".join(lines)
