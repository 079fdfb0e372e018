"""The pair record: defined once, here.

Everything else derives from `COLUMNS`: the Arrow schema every writer casts to, the
`datasets` features written into `dataset_info.json`, and `schemas/pair.schema.json`
(regenerate it with `python -m ctxdata.schema > schemas/pair.schema.json`; a test fails on drift).

A pair shows a model one query Q, one answer A and two near-identical contexts. Exactly one
context (the anchor) supports `answer`; the other (the confounder) supports `answer_confounder`.
`label` says which slot, A or B, holds the anchor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = "1.0"
DOMAINS = ("coding", "vision")
LABELS = ("A", "B")


@dataclass(frozen=True)
class Column:
    """One column of the pair record."""

    name: str
    kind: str  # "string" | "float" | "image" | "json"
    nullable: bool
    doc: str


COLUMNS: tuple[Column, ...] = (
    Column("pair_id", "string", False, "Stable content hash: the same inputs and seed give the same id."),
    Column("domain", "string", False, "`coding` or `vision`."),
    Column("query", "string", False, "Coding: the issue / PR description. Vision: the question."),
    Column("answer", "string", False, "What the anchor context supports (coding: the anchor's patch)."),
    Column("answer_confounder", "string", False, "What the confounder context supports (coding: its patch)."),
    Column("context_a_text", "string", True, "Context A as text (rendered, patch-masked trajectory); null for vision."),
    Column("context_b_text", "string", True, "Context B as text; null for vision."),
    Column("context_a_image", "image", True, "Context A as an image (`datasets` Image feature); null for coding."),
    Column("context_b_image", "image", True, "Context B as an image; null for coding."),
    Column("label", "string", False, "`A` or `B`: which context supports `answer`."),
    Column("method", "string", False, "How the pair was mined, e.g. `condition:function`, `edit:sdxl`, `retrieval:faiss`."),
    Column("similarity", "float", False, "Similarity of the two contexts in [0, 1] (method-specific measure, see `meta`)."),
    Column("anchor_id", "string", False, "Source record id of the anchor context."),
    Column("confounder_id", "string", False, "Source record id of the confounder context."),
    Column("checks", "json", False, "JSON list of every verification check: {name, passed, score, detail}."),
    Column("meta", "json", False, "JSON object with domain-specific provenance (repo, level, files, question type, ...)."),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
REQUIRED: tuple[str, ...] = tuple(c.name for c in COLUMNS if not c.nullable)

_FEATURE = {
    "string": {"dtype": "string", "_type": "Value"},
    "json": {"dtype": "string", "_type": "Value"},
    "float": {"dtype": "float64", "_type": "Value"},
    "image": {"_type": "Image"},
}
_JSON_TYPE = {
    "string": {"type": "string"},
    "json": {"type": "string", "contentMediaType": "application/json"},
    "float": {"type": "number"},
    "image": {
        "type": "object",
        "properties": {"bytes": {"type": ["string", "null"], "contentEncoding": "base64"}, "path": {"type": ["string", "null"]}},
        "required": ["bytes", "path"],
    },
}


def arrow_schema(metadata: dict[str, str] | None = None):
    """The Arrow schema every shard is cast to (pyarrow is imported here, not at package import)."""
    import pyarrow as pa

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    types = {"string": pa.string(), "json": pa.string(), "float": pa.float64(), "image": image}
    fields = [pa.field(c.name, types[c.kind], nullable=c.nullable) for c in COLUMNS]
    meta = {"ctxdata.schema_version": SCHEMA_VERSION, "huggingface": json.dumps({"info": {"features": features_dict()}})}
    meta.update(metadata or {})
    return pa.schema(fields, metadata=meta)


def features_dict() -> dict[str, Any]:
    """The `datasets.Features` of the record, in its JSON form (as in `dataset_info.json`)."""
    return {c.name: dict(_FEATURE[c.kind]) for c in COLUMNS}


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one pair row; `schemas/pair.schema.json` is this, generated."""
    props = {}
    for c in COLUMNS:
        spec = dict(_JSON_TYPE[c.kind])
        if c.nullable:
            spec = {"anyOf": [spec, {"type": "null"}]}
        spec["description"] = c.doc
        props[c.name] = spec
    props["domain"]["enum"] = list(DOMAINS)
    props["label"]["enum"] = list(LABELS)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://github.com/ctxdata/ctxdata/schemas/pair-{SCHEMA_VERSION}.schema.json",
        "title": "ctxdata contrastive-context pair",
        "description": __doc__.strip().split("\n\n")[1].replace("\n", " "),
        "x-schema-version": SCHEMA_VERSION,
        "type": "object",
        "properties": props,
        "required": list(COLUMN_NAMES),
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class Check:
    """The outcome of one verification check on one pair."""

    name: str
    passed: bool
    score: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": bool(self.passed), "score": None if self.score is None else float(self.score), "detail": self.detail}


def checks_json(checks: list[Check]) -> str:
    return json.dumps([c.to_dict() for c in checks], sort_keys=True)


def failed_checks(row: dict[str, Any]) -> list[str]:
    """Names of the checks a row failed (rows written by ctxdata pass all of theirs)."""
    return [c["name"] for c in json.loads(row["checks"]) if not c["passed"]]


def make_pair_id(*parts: Any) -> str:
    """A stable 16-hex-digit content hash of the JSON-serialisable `parts`."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def image_cell(png_bytes: bytes | None, path: str | None = None) -> dict[str, Any] | None:
    """An Image-feature cell: encoded bytes plus an optional original path."""
    if png_bytes is None:
        return None
    return {"bytes": png_bytes, "path": path}


@dataclass
class Pair:
    """One pair row, built by the pipelines and validated before it is written."""

    domain: str
    query: str
    answer: str
    answer_confounder: str
    label: str
    method: str
    similarity: float
    anchor_id: str
    confounder_id: str
    context_a_text: str | None = None
    context_b_text: str | None = None
    context_a_image: dict[str, Any] | None = None
    context_b_image: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    pair_id: str = ""

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {self.domain!r}")
        if self.label not in LABELS:
            raise ValueError(f"label must be 'A' or 'B', got {self.label!r}")
        if not self.pair_id:
            self.pair_id = make_pair_id(self.domain, self.method, self.anchor_id, self.confounder_id, self.label, self.query, self.answer, self.answer_confounder)

    def to_row(self) -> dict[str, Any]:
        """The row in `COLUMNS` order, with `checks` and `meta` serialised to JSON."""
        row = {
            "pair_id": self.pair_id,
            "domain": self.domain,
            "query": self.query,
            "answer": self.answer,
            "answer_confounder": self.answer_confounder,
            "context_a_text": self.context_a_text,
            "context_b_text": self.context_b_text,
            "context_a_image": self.context_a_image,
            "context_b_image": self.context_b_image,
            "label": self.label,
            "method": self.method,
            "similarity": float(self.similarity),
            "anchor_id": self.anchor_id,
            "confounder_id": self.confounder_id,
            "checks": checks_json(self.checks),
            "meta": json.dumps(self.meta, sort_keys=True, default=str),
        }
        assert tuple(row) == COLUMN_NAMES, "Pair.to_row must follow COLUMNS"
        return row

    def contexts(self) -> tuple[Any, Any]:
        """(anchor context, confounder context), whatever the label."""
        a = self.context_a_text if self.domain == "coding" else self.context_a_image
        b = self.context_b_text if self.domain == "coding" else self.context_b_image
        return (a, b) if self.label == "A" else (b, a)


def validate_row(row: dict[str, Any]) -> list[str]:
    """Problems with one row (empty when valid): missing columns, nulls, bad enums, domain mismatch."""
    problems = [f"missing column {n}" for n in COLUMN_NAMES if n not in row]
    problems += [f"unexpected column {n}" for n in row if n not in COLUMN_NAMES]
    problems += [f"{n} is null" for n in REQUIRED if n in row and row[n] is None]
    if row.get("domain") not in DOMAINS:
        problems.append(f"domain {row.get('domain')!r} not in {DOMAINS}")
    if row.get("label") not in LABELS:
        problems.append(f"label {row.get('label')!r} not in {LABELS}")
    if row.get("domain") == "coding" and (row.get("context_a_text") is None or row.get("context_b_text") is None):
        problems.append("coding pairs need context_a_text and context_b_text")
    if row.get("domain") == "vision" and (row.get("context_a_image") is None or row.get("context_b_image") is None):
        problems.append("vision pairs need context_a_image and context_b_image")
    return problems


if __name__ == "__main__":  # python -m ctxdata.schema > schemas/pair.schema.json
    print(json.dumps(json_schema(), indent=2))
