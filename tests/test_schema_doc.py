"""docs/schema.md is generated from ctxdata.schema and must not drift from it."""

from pathlib import Path

from ctxdata.schema import COLUMNS
from ctxdata.schema_doc import schema_markdown, schema_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "schema.md"


def test_docs_schema_md_matches_the_schema():
    assert DOC.read_text() == schema_markdown(), "docs/schema.md is stale: run `python -m ctxdata.schema_doc > docs/schema.md`"


def test_table_has_one_row_per_column_in_order():
    rows = [line for line in schema_table().splitlines()[2:]]
    assert [r.split("`")[1] for r in rows] == [c.name for c in COLUMNS]
    nullable = {c.name: c.nullable for c in COLUMNS}
    for r in rows:
        name = r.split("`")[1]
        assert ("| yes |" in r) == nullable[name]
