"""Request rows against a signature: types, names, both body forms, and serve options."""

from __future__ import annotations

import pytest

from fermion.entities import ColumnSpec, Signature
from fermion.errors import InvalidInputError
from fermion.serving.inputs import FieldError, InputChecker, columns_from_body
from fermion.serving.model_set import parse_refs
from fermion.serving.options import ServeOptions

SIGNATURE = Signature(
    (
        ColumnSpec("n", "integer", True),
        ColumnSpec("x", "float", True),
        ColumnSpec("ok", "boolean", True),
        ColumnSpec("city", "categorical", True),
        ColumnSpec("at", "datetime", True),
    ),
    "classification",
    ("a", "b"),
    "y",
)
ROW = {"n": 3, "x": 1.5, "ok": True, "city": "lyon", "at": "2024-05-01T10:00:00"}


def test_rows_become_columns_in_signature_order() -> None:
    checker = InputChecker(SIGNATURE)
    columns, rows = checker.from_rows([ROW, {**ROW, "n": 4.0, "x": 2, "at": None}])
    assert rows == 2
    assert list(columns) == ["n", "x", "ok", "city", "at"]
    assert columns["n"] == [3, 4.0] and columns["x"] == [1.5, 2] and columns["at"][1] is None


def test_the_table_form_takes_columns_in_any_order() -> None:
    names = ["at", "city", "ok", "x", "n"]
    body = {"columns": names, "data": [[ROW[n] for n in names]]}
    columns, rows = columns_from_body(InputChecker(SIGNATURE), body)
    assert rows == 1 and columns == {k: [v] for k, v in ROW.items()}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"n": True}, "rows[0].n"),
        ({"x": "1.5"}, "rows[0].x"),
        ({"ok": 1}, "rows[0].ok"),
        ({"city": 7}, "rows[0].city"),
        ({"at": "yesterday"}, "rows[0].at"),
    ],
)
def test_a_value_of_the_wrong_type_names_its_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(FieldError) as caught:
        InputChecker(SIGNATURE).from_rows([{**ROW, **change}])
    assert caught.value.field == field


def test_empty_requests_and_duplicate_columns() -> None:
    checker = InputChecker(SIGNATURE)
    assert checker.from_rows([]) == ({n: [] for n in ROW}, 0)
    with pytest.raises(FieldError, match="named twice"):
        checker.from_table(["n", "n", "x", "ok", "city", "at"], [])


def test_long_values_are_cut_in_messages() -> None:
    with pytest.raises(FieldError) as caught:
        InputChecker(SIGNATURE).from_rows([{**ROW, "n": "x" * 500}])
    assert len(str(caught.value)) < 150


def test_no_auth_is_refused_off_loopback() -> None:
    ServeOptions(auth=False, host="127.0.0.1")
    ServeOptions(auth=False, host="::1")
    ServeOptions(auth=False, host="localhost")
    with pytest.raises(InvalidInputError, match="loopback"):
        ServeOptions(auth=False, host="0.0.0.0")
    ServeOptions(auth=True, host="0.0.0.0")


def test_options_travel_to_workers_as_json() -> None:
    import json

    from fermion.serving.options import BatchOptions

    options = ServeOptions(
        workers=3, batch=BatchOptions(16, 5.0), model_batch={"m": BatchOptions(4)}
    )
    assert ServeOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options


def test_served_names_must_be_unique() -> None:
    assert [(r.name, r.ref) for r in parse_refs(["credit@production", "c2=credit@staging"])] == [
        ("credit", "credit@production"),
        ("c2", "credit@staging"),
    ]
    with pytest.raises(InvalidInputError, match="two references are served as 'credit'"):
        parse_refs(["credit@production", "credit@staging"])
    with pytest.raises(InvalidInputError, match="at least one model"):
        parse_refs([])


def test_fermion_serve_names_an_unknown_option() -> None:
    import fermion

    with pytest.raises(InvalidInputError, match="unknown serve option 'prot'"):
        fermion.serve("credit", prot=8080)


def test_fermion_serve_names_a_wrong_backend() -> None:
    import fermion

    with pytest.raises(InvalidInputError, match="backend must be uvicorn or ray"):
        fermion.serve("credit", backend="k8s")
    with pytest.raises(InvalidInputError, match="replicas is for backend='ray'"):
        fermion.serve("credit", replicas=2)
