"""One reader per trajectory format; `READERS` is the registry (`--format` keys).

A reader has `name`, `matches(obj) -> bool` (structural detection on a parsed record),
`parse(obj, location, path) -> Trajectory` (raises `RecordError(reason, detail)` on a bad record)
and `many_per_list` (whether a top-level JSON list holds one trajectory per element).
"""

from __future__ import annotations

from ctxdata.coding.formats._text import RecordError, parse_instance_id
from ctxdata.coding.formats.hf_messages import HfMessagesReader
from ctxdata.coding.formats.mini_swe_agent import MiniSweAgentReader
from ctxdata.coding.formats.nebius import NebiusReader
from ctxdata.coding.formats.openhands import OpenHandsReader
from ctxdata.coding.formats.results import load_results, outcome_from_report, outcomes_from_json
from ctxdata.coding.formats.swe_agent import SweAgentReader

READERS = {
    "mini-swe-agent": MiniSweAgentReader(),
    "hf-messages": HfMessagesReader(),
    "swe-agent": SweAgentReader(),
    "openhands": OpenHandsReader(),
    "swe-agent-nebius": NebiusReader(),
}

# Structural detection order: most specific first (mini-swe-agent and hf rows both carry `messages`).
DETECT_ORDER = ["mini-swe-agent", "swe-agent-nebius", "swe-agent", "openhands", "hf-messages"]

__all__ = ["READERS", "DETECT_ORDER", "RecordError", "load_results", "outcome_from_report", "outcomes_from_json", "parse_instance_id"]
