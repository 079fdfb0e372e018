"""The one normalised trajectory record every reader produces, whatever the source format."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Step:
    """One agent turn: what it thought, what it ran, what came back."""

    thought: str = ""
    action: str = ""
    observation: str = ""
    returncode: int | None = None


@dataclass
class Outcome:
    """How the run ended, when known (from a SWE-bench report.json, a `target` flag, ...)."""

    resolved: bool | None = None
    exit_status: str | None = None
    tests: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # FAIL_TO_PASS -> {success, failure}


@dataclass
class Trajectory:
    """An agent trajectory on one task instance.

    `id` is the task instance id (e.g. `django__django-10097`, or a SWE-smith id
    `owner__repo.commit8.bugtype__hash`). `source` is `path[:line]` so rejects and pairs can name it.
    """

    id: str
    format: str  # "mini-swe-agent" | "hf-messages" | "swe-agent" | "openhands" | "synth"
    source: str
    repo: str = ""  # "owner/name" when known
    base_commit: str = ""  # full or short sha when known
    issue: str = ""  # the task / issue / PR description the agent was given
    steps: list[Step] = field(default_factory=list)
    patch: str = ""  # the final submitted unified diff ("" when unknown)
    outcome: Outcome = field(default_factory=Outcome)
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trajectory":
        d = dict(d)
        d["steps"] = [Step(**s) for s in d.get("steps", [])]
        d["outcome"] = Outcome(**d.get("outcome", {}))
        return cls(**d)
