"""One reader per trajectory format; `READERS` is the registry (`--format` keys, its help, the docs' list).

Every reader keeps the `TrajectoryReader` contract below. Containers (JSON, JSONL, Parquet, gzip)
decode records; `dispatch.to_result` picks a reader and turns its errors into reject reasons.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from ctxdata.coding.trajectory import Trajectory

from ctxdata.coding.formats._text import RecordError, parse_instance_id
from ctxdata.coding.formats.hf_messages import HfMessagesReader
from ctxdata.coding.formats.mini_swe_agent import MiniSweAgentReader
from ctxdata.coding.formats.nebius import NebiusReader
from ctxdata.coding.formats.openhands import OpenHandsReader
from ctxdata.coding.formats.results import load_results, outcome_from_report, outcomes_from_json
from ctxdata.coding.formats.swe_agent import SweAgentReader


class TrajectoryReader(Protocol):
    """The contract of one trajectory format's reader."""

    name: ClassVar[str]  # the `--format` key
    many_per_list: ClassVar[bool]  # whether a top-level JSON list holds one trajectory per element

    def matches(self, obj: Any) -> bool:
        """Structural detection on one decoded record: does it look like this format?"""

    def parse(self, obj: Any, location: str, path: str) -> Trajectory:
        """One decoded record -> Trajectory (with its steps); raise `RecordError(reason, detail)` on a bad record.

        `location` names the record (`Trajectory.source`); `path` is its file's name without `.gz`
        (some formats find sidecars or an instance id from it).
        """


READERS: dict[str, TrajectoryReader] = {
    "mini-swe-agent": MiniSweAgentReader(),
    "hf-messages": HfMessagesReader(),
    "swe-agent": SweAgentReader(),
    "openhands": OpenHandsReader(),
    "swe-agent-nebius": NebiusReader(),
}


def formats_markdown() -> str:
    """The docs' list of formats, one line per `READERS` key with its module's summary (docs/formats.md embeds it)."""
    import sys

    lines = []
    for name, reader in READERS.items():
        summary = (sys.modules[type(reader).__module__].__doc__ or "").strip().split("\n\n")[0]
        lines.append(f"- `{name}`: {' '.join(summary.split())}")
    return "\n".join(lines) + "\n"


# Structural detection order: most specific first (mini-swe-agent and hf rows both carry `messages`).
DETECT_ORDER = ["mini-swe-agent", "swe-agent-nebius", "swe-agent", "openhands", "hf-messages"]

__all__ = [
    "READERS",
    "DETECT_ORDER",
    "TrajectoryReader",
    "formats_markdown",
    "RecordError",
    "load_results",
    "outcome_from_report",
    "outcomes_from_json",
    "parse_instance_id",
]
