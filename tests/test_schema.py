import json

import pytest

from conftest import REPO, make_pair
from ctxdata import schema


def test_generated_json_schema_matches_schema_py():
    on_disk = json.loads((REPO / "schemas" / "pair.schema.json").read_text())
    assert on_disk == schema.json_schema(), "regenerate: python -m ctxdata.schema > schemas/pair.schema.json"


def test_required_columns_present_with_names_from_the_spec():
    required = {"pair_id", "domain", "query", "answer", "answer_confounder", "context_a_text", "context_b_text",
                "context_a_image", "context_b_image", "label", "method", "similarity", "anchor_id", "confounder_id", "checks"}
    assert required <= set(schema.COLUMN_NAMES)


def test_arrow_schema_and_features_agree_with_datasets():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features.from_dict(schema.features_dict())
    assert features.arrow_schema.names == schema.arrow_schema().names
    assert features.arrow_schema.types == schema.arrow_schema().types


def test_rows_validate_against_the_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    import base64

    for domain in ("coding", "vision"):
        row = make_pair(domain=domain).to_row()
        for col in ("context_a_image", "context_b_image"):
            if row[col] is not None:
                row[col] = {"bytes": base64.b64encode(row[col]["bytes"]).decode(), "path": None}
        jsonschema.validate(row, schema.json_schema())
        assert schema.validate_row(make_pair(domain=domain).to_row()) == []


def test_pair_id_is_stable_and_content_addressed():
    a, b = make_pair(), make_pair()
    assert a.pair_id == b.pair_id and len(a.pair_id) == 16
    assert make_pair(label="B").pair_id != a.pair_id
    assert make_pair(answer="other").pair_id != a.pair_id


def test_bad_values_are_rejected():
    with pytest.raises(ValueError, match="label"):
        make_pair(label="C")
    with pytest.raises(ValueError, match="domain"):
        make_pair(domain="audio")
    row = make_pair().to_row()
    row["context_b_text"] = None
    assert "coding pairs need context_a_text and context_b_text" in schema.validate_row(row)


def test_contexts_returns_anchor_first_whatever_the_label():
    p = make_pair(label="B")
    assert p.contexts() == (p.context_b_text, p.context_a_text)
