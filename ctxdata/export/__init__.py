"""Export a pair folder as the selection task in the format of an RL trainer, with its scorer beside it.

Every row is the selection prompt (`prompts.selection_text` / `selection_messages`) with ground
truth = the anchor's letter ("A"/"B"). One module per target (`TARGETS`): verl, easyr1, skyrl, trl,
contextrl-paper. Each export

* measures every prompt with a real tokenizer (`--tokenizer`, default the packaged SmolLM2) under
  the chat template the consumer applies, and reports the max and p95;
* with `max_prompt_length` set, fits each row under it by trimming both contexts alike, or rejects
  it with a reason (`fit.py`); without it, keeps every row whole and reports the length to set;
* writes the consumer's scorer (self-contained, standard library only) next to the data and
  `<stem>.export.json` with the counts, lengths, rejects and the exact settings to train with.

Inputs = rows written + rejects, always; an export that writes no row is an error.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.export import easyr1, paper, skyrl, trl, verl
from ctxdata.export.common import Target, scorer_source
from ctxdata.export.fit import RowRejected, fit_pair
from ctxdata.tokens import DEFAULT_TOKENIZER, TokenCounter

TARGETS: dict[str, Target] = {t.name: t for t in (verl.TARGET, easyr1.TARGET, skyrl.TARGET, trl.TARGET, paper.TARGET)}
DOCS = {name: t.docs for name, t in TARGETS.items()}
NO_SYSTEM_PROMPT = ("easyr1", "contextrl-paper")  # their readers build the one user message themselves


@dataclass
class ExportConfig:
    """How pairs become trainer rows."""

    target: str  # one of TARGETS
    split: str = "train"  # written into extra_info.split (verl, skyrl)
    data_source: str = "ctxdata/contrastive-context"  # verl/skyrl `data_source`
    env_class: str = "ctxdata_selection"  # skyrl `env_class`: the environment skyrl_env.py registers
    system_prompt: bool = False  # prepend prompts.SYSTEM as a system message (verl, skyrl, trl)
    limit: int | None = None  # export only the first N pairs
    tokenizer: str = DEFAULT_TOKENIZER  # counts prompt tokens: alias, tokenizer folder or cached hub id
    max_prompt_length: int | None = None  # fit rows under N tokens (trim contexts) or reject; None: keep all whole
    image_tokens: int | None = None  # tokens one image costs in the target VLM (added per image); None: text only

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"unknown export target {self.target!r}; choose one of: {', '.join(TARGETS)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("limit must be >= 1 (or unset)")
        if self.max_prompt_length is not None and self.max_prompt_length < 64:
            raise ConfigError("max_prompt_length must be >= 64 tokens (or unset to keep every prompt whole)")
        if self.image_tokens is not None and self.image_tokens < 0:
            raise ConfigError(
                "image_tokens must be >= 0 (the tokens one image costs in your VLM at your resize settings)"
            )
        if self.system_prompt and self.target in NO_SYSTEM_PROMPT:
            raise ConfigError(
                f"--system-prompt does not apply to {self.target}: its reader builds the user message itself"
            )
        if self.env_class != "ctxdata_selection" and self.target == "skyrl":
            raise ConfigError("env_class must stay ctxdata_selection: that is the environment skyrl_env.py registers")


def percentile(values: list[int], q: float) -> int:
    """Nearest-rank percentile (an observed value, never interpolated)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def image_tokens(pair: dict[str, Any], config: ExportConfig) -> int:
    """What the two images add to a vision prompt: a VLM's processor decides it, so the user states it."""
    return 2 * (config.image_tokens or 0) if pair["domain"] == "vision" else 0


def sidecar_path(out: Path) -> Path:
    return out.parent / f"{out.stem if out.suffix else out.name}.export.json"


def export_pairs(pairs_dir: str | Path, out: str | Path, config: ExportConfig) -> dict[str, Any]:
    """Export one pair folder; returns the report also written to `<stem>.export.json`."""
    from ctxdata.train.probe import load_pairs

    target, out = TARGETS[config.target], Path(out)
    pairs = load_pairs([pairs_dir], config.limit)
    if not pairs:
        raise CtxdataError(f"{pairs_dir} holds no pairs")
    counter = TokenCounter(config.tokenizer)
    records, lengths, rejects, trimmed, vision_rows = [], [], [], 0, 0
    for index, pair in enumerate(pairs):
        try:
            fitted = fit_pair(
                pair,
                lambda p: target.make(p, index, config),
                lambda p, r: target.measure(counter, p, r, config) + image_tokens(p, config),
                counter,
                config.max_prompt_length,
            )
        except RowRejected as exc:
            rejects.append({"pair_id": pair["pair_id"], "reason": exc.reason, "detail": exc.detail})
            continue
        records.append(fitted.record)
        lengths.append(fitted.prompt_tokens)
        trimmed += fitted.trimmed_tokens > 0
        vision_rows += pair["domain"] == "vision"
    by_reason: dict[str, int] = {}
    for reject in rejects:
        by_reason[reject["reason"]] = by_reason.get(reject["reason"], 0) + 1
    if not records:
        reasons = "; ".join(f"{reason}: {n}" for reason, n in by_reason.items())
        raise CtxdataError(f"nothing to export to {config.target}: all {len(pairs)} pairs were rejected ({reasons})")
    files = target.write(records, out, config)
    if target.scorer:
        scorer = out.parent / target.scorer
        scorer.write_text(scorer_source(target.scorer), encoding="utf-8")
        files["scorer"] = scorer
    assert len(records) + len(rejects) == len(pairs), "every input is written or rejected with a reason"
    report: dict[str, Any] = {
        "target": config.target,
        "inputs": len(pairs),
        "exported": len(records),
        "rejected": by_reason,
        "trimmed_rows": trimmed,
        "vision_rows": vision_rows,
        "tokenizer": config.tokenizer,
        "prompt_tokens": {"max": max(lengths), "p95": percentile(lengths, 95), "min": min(lengths)},
        "max_prompt_length": config.max_prompt_length or max(lengths),
        "env_class": config.env_class,
        "files": {k: str(v) for k, v in files.items()},
        "docs": target.docs,
        "limit_note": target.limit_note,
        "config": asdict(config),
    }
    if vision_rows and config.image_tokens is None:
        report["image_tokens_note"] = (
            "vision prompt lengths count text only: a VLM trainer also counts each image's tokens, so set"
            " --image-tokens to what one image costs in your VLM (at your trainer's resize settings)"
        )
    report["settings"] = target.settings(report)
    report["rejects"] = rejects
    from ctxdata.io import atomic_write_text

    atomic_write_text(sidecar_path(out), json.dumps(report, indent=2) + "\n")
    report["report_file"] = str(sidecar_path(out))
    return report
