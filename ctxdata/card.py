"""The dataset card (`README.md`) of a pushed dataset, generated from the build's own files.

The YAML header (license, task categories, tags, configs, features, size category) and the body
(provenance, the real counts from `report.json`, the schema table, snippets, citation) are derived
from `ctxdata.schema`, `config.json` and `report.json`: nothing in here is typed by hand per build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ctxdata import __version__
from ctxdata.audit.report import audit_markdown
from ctxdata.io import CITATION
from ctxdata.schema import COLUMNS, SCHEMA_VERSION
from ctxdata.pipeline import stage_label
from ctxdata.schema_doc import schema_table

# Column kind -> `dtype` in the card's `dataset_info.features` (the `datasets` YAML form).
YAML_DTYPE = {"string": "string", "json": "string", "float": "float64", "image": "image"}

TASK_CATEGORIES = {
    "coding": ["text-generation", "question-answering"],
    "vision": ["visual-question-answering", "image-text-to-text"],
}
TAGS = {
    "coding": ["agent-trajectories", "software-engineering", "swe-bench"],
    "vision": ["image-editing", "vision-language"],
}
BASE_TAGS = ["contextrl", "contrastive-context", "grpo", "ctxdata"]

# (upper bound, label) as in the Hub's size_categories vocabulary.
SIZE_CATEGORIES = [
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
]


@dataclass
class CardConfig:
    """One `configs` entry of the card: a name, its Parquet glob and what the shards hold."""

    name: str
    data_glob: str
    num_examples: int
    num_bytes: int
    default: bool = False
    files: list[str] = field(default_factory=list)


def size_category(n: int) -> str:
    for bound, label in SIZE_CATEGORIES:
        if n < bound:
            return label
    return "n>1T"


def yaml_features() -> list[dict[str, str]]:
    """`dataset_info.features` in the card's YAML form, generated from `ctxdata.schema.COLUMNS`."""
    return [{"name": c.name, "dtype": YAML_DTYPE[c.kind]} for c in COLUMNS]


def card_metadata(configs: list[CardConfig], *, domains: list[str], license: str, pretty_name: str) -> dict[str, Any]:
    """The YAML header as a dict (dumped with `yaml.safe_dump`)."""
    tasks = sorted({t for d in domains for t in TASK_CATEGORIES[d]})
    tags = BASE_TAGS + [t for d in domains for t in TAGS[d]]
    total = sum(c.num_examples for c in configs if not c.default)
    return {
        "license": license,
        "pretty_name": pretty_name,
        "task_categories": tasks,
        "tags": tags,
        "size_categories": [size_category(total)],
        "configs": [
            {"config_name": c.name, "data_files": [{"split": "train", "path": c.data_glob}], **({"default": True} if c.default else {})}
            for c in configs
        ],
        "dataset_info": [
            {
                "config_name": c.name,
                "features": yaml_features(),
                "splits": [{"name": "train", "num_bytes": c.num_bytes, "num_examples": c.num_examples}],
                "download_size": c.num_bytes,
                "dataset_size": c.num_bytes,
            }
            for c in configs
        ],
    }


def _rows_table(header: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "_none_\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def counts_markdown(report: dict[str, Any]) -> str:
    """The build's real counts: stages, methods, labels and rejection reasons, from report.json."""
    stages = [[f"`{stage_label(s)}`", s["in"], s["out"], ", ".join(f"{k}: {v}" for k, v in s.get("dropped", {}).items()) or "-"] for s in report.get("stages", [])]
    methods = [[f"`{m}`", n] for m, n in report.get("methods", {}).items()]
    rejected = [[f"`{r}`", n] for r, n in report.get("rejected", {}).items()]
    labels = report.get("labels", {})
    return (
        f"- inputs read: **{report.get('inputs', 0)}** (inputs rejected: {report.get('inputs_rejected', 0)}, "
        f"candidates rejected: {report.get('candidates_rejected', 0)})\n"
        f"- pairs written: **{report.get('pairs', 0)}** (label A/B: {labels.get('A', 0)}/{labels.get('B', 0)})\n\n"
        "**By stage**\n\n" + _rows_table(["stage", "in", "out", "dropped (reason: n)"], stages)
        + "\n**By method**\n\n" + _rows_table(["method", "pairs"], methods)
        + "\n**By rejection reason**\n\n" + _rows_table(["reason", "rejected"], rejected)
    )


def _snippets(repo_id: str, configs: list[CardConfig]) -> str:
    name = next((c.name for c in configs if not c.default), configs[0].name if configs else "default")
    return f"""```python
from datasets import load_dataset

ds = load_dataset("{repo_id}", "{name}", split="train")
row = ds[0]
print(row["query"], row["answer"], row["label"])
```

Build the selection prompt the paper trains on (the model must answer `A` or `B`):

```python
from ctxdata.train.prompts import selection_messages

messages = selection_messages(row)  # vision rows: structured content with two image parts
target = row["label"]
```

Export and train with ctxdata (see its docs for every option):

```bash
pip install "ctxdata[all]"
ctxdata export --help   # verl/EasyR1, SkyRL and TRL layouts
ctxdata train --help    # GRPO with the context-awareness loss
```
"""


def render_card(
    *,
    repo_id: str,
    configs: list[CardConfig],
    domains: list[str],
    report: dict[str, Any],
    config: dict[str, Any],
    license: str,
) -> str:
    """The full README.md: YAML header, provenance, counts, schema, snippets, citation."""
    import yaml

    pretty = repo_id.split("/")[-1]
    meta = card_metadata(configs, domains=domains, license=license, pretty_name=pretty)
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    resolved = {k: v for k, v in config.items() if k != "_fingerprint"}
    config_list = "\n".join(f"- `{c.name}`: {c.num_examples} pairs in `{c.data_glob}`" + (" (default: every domain)" if c.default else "") for c in configs)
    return f"""---
{header}---

# {pretty}

Contrastive-context pairs built with ctxdata for context-aware RL
([ContextRL, arXiv 2606.17053](https://arxiv.org/abs/2606.17053)). Each row shows a query Q, an answer A and two near-identical contexts;
exactly one context (the anchor) supports A, the other (the confounder) supports `answer_confounder`.
`label` says which slot, `A` or `B`, holds the anchor.

Configs:

{config_list}

## Load it

{_snippets(repo_id, configs)}
## Provenance

- built by `ctxdata {report.get('command', config.get('command', ''))}` with ctxdata {config.get('ctxdata_version', report.get('ctxdata_version', '?'))}
  (schema version {report.get('schema_version', SCHEMA_VERSION)}); card written by ctxdata {__version__}
- license: `{license}` (chosen by the publisher with `ctxdata push --license`; the inputs' own licenses still apply)
- the resolved build config (`config.json`):

```json
{json.dumps(resolved, indent=2, sort_keys=True, default=str)}
```

## Counts of this build (from `report.json`)

{counts_markdown(report)}
## Shortcut audit (from `report.json`)

{audit_markdown(report.get("audit"))}
## Schema

{schema_table()}
`checks` is a JSON list of `{{name, passed, score, detail}}`; `meta` is a JSON object.

## Citation

```bibtex
{CITATION}
```
"""
