"""Parameters of study notebooks: read from the tagged cell, checked, never silently coerced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sandbox import StudyError
from sandbox._private.kernel.studies.params import ParameterSpec, load_params_file, read_parameters

CELL = """\
epsilon = 1.0
label = "x"
n = 5
features = ["income_band", "housing"]
weights = [1, 2.5]
options = {"depth": 3}
flag = True
threshold = None  # type: float | None
anything = None
model_type: str = "logistic_regression"
"""


def notebook(source: str | None, *, tags: list[str] | None = None, extra: int = 0) -> dict[str, Any]:
    cells: list[dict[str, Any]] = [{"cell_type": "code", "metadata": {}, "source": "import os"}] * extra
    if source is not None:
        cells.append({"cell_type": "code", "metadata": {"tags": tags or ["parameters"]}, "source": source})
    return {"cells": cells, "metadata": {}}


@pytest.fixture(scope="module")
def spec() -> ParameterSpec:
    return read_parameters(notebook(CELL, extra=2))


def test_types_are_inferred_from_defaults_and_declarations(spec: ParameterSpec) -> None:
    got = {p.name: p.type_label for p in spec.parameters}
    assert got == {
        "epsilon": "float",
        "label": "str",
        "n": "int",
        "features": "list[str]",
        "weights": "list[float]",
        "options": "dict",
        "flag": "bool",
        "threshold": "float | None",
        "anything": "any",
        "model_type": "str",
    }
    assert spec.cell_index == 2
    assert spec.defaults["features"] == ["income_band", "housing"]


def test_source_as_list_of_lines_is_read_like_papermill_stores_it() -> None:
    nb = notebook(None)
    nb["cells"].append({"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ["a = 1\n", "b = 'x'"]})
    assert read_parameters(nb).names == ("a", "b")


def test_no_parameters_cell_names_the_fix() -> None:
    with pytest.raises(StudyError, match=r"no parameters cell.*tag it 'parameters'"):
        read_parameters(notebook(None, extra=1))


def test_two_parameters_cells_are_refused() -> None:
    nb = notebook("a = 1")
    nb["cells"].append(nb["cells"][0])
    with pytest.raises(StudyError, match=r"Cells \[0, 1\] are all tagged 'parameters'"):
        read_parameters(nb)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import os\na = 1", "may only assign literal defaults.*line 1"),
        ("a = os.getenv('X')", "not a literal"),
        ("a = 1\na = 2", r"assigns \['a'\] more than once"),
        ("a = (", "not valid Python"),
        ("a = 1  # type: int | str", "use one type"),
        ("a = 'x'  # type: int", "expects int but the default 'x' is str"),
        ("a = 1  # type: complex", "has type 'complex'"),
        ("a = (1, 2)", "only None, bool, int, float, str, list and dict"),
    ],
)
def test_bad_parameters_cells(source: str, message: str) -> None:
    with pytest.raises(StudyError, match=message):
        read_parameters(notebook(source))


def test_unknown_name_lists_known_ones_and_suggests(spec: ParameterSpec) -> None:
    with pytest.raises(StudyError, match=r"Unknown parameter 'epsilom'\. Did you mean 'epsilon'\?.*epsilon, label, n"):
        spec.parse_cli([("epsilom", "1")])


def test_str_parameter_keeps_the_string_007(spec: ParameterSpec) -> None:
    assert spec.parse_cli([("label", "007"), ("model_type", "no")]) == {"label": "007", "model_type": "no"}


def test_int_parameter_refuses_leading_zeros(spec: ParameterSpec) -> None:
    with pytest.raises(StudyError, match=r"'n' expects int; '007' is not a plain decimal integer \(write 7\)"):
        spec.parse_cli([("n", "007")])
    assert spec.parse_cli([("n", "-12")]) == {"n": -12}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("n", "1.5", "expects int"),
        ("epsilon", "abc", "expects float; 'abc' is not a number"),
        ("epsilon", "inf", "finite float"),
        ("flag", "yes", "write true or false"),
        ("features", "a,b", "written as JSON"),
        ("features", "[1, 2]", r"list\[str\], but item 1 is int"),
        ("options", "[1]", "expects dict"),
    ],
)
def test_wrong_cli_values_name_parameter_and_types(spec: ParameterSpec, name: str, text: str, message: str) -> None:
    with pytest.raises(StudyError, match=message):
        spec.parse_cli([(name, text)])


def test_cli_values_by_type(spec: ParameterSpec) -> None:
    got = spec.parse_cli(
        [("epsilon", "2"), ("flag", "false"), ("features", '["a"]'), ("threshold", "null"), ("anything", "[1]")]
    )
    assert got == {"epsilon": 2.0, "flag": False, "features": ["a"], "threshold": None, "anything": [1]}
    assert isinstance(got["epsilon"], float)


def test_yaml_values_keep_their_types(tmp_path: Path, spec: ParameterSpec) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("label: 007\n")
    values = load_params_file(path)
    assert values == {"label": 7}  # YAML 1.1 reads an unquoted 007 as the int 7 ...
    with pytest.raises(StudyError, match=r"'label' expects str but the YAML value 7 is int.*quote it"):
        spec.resolve(file_values=values)  # ... and it is refused, never turned back into a string
    path.write_text("label: '007'\nepsilon: 1\nweights: [1, 2]\n")
    assert spec.resolve(file_values=load_params_file(path)) == {"label": "007", "epsilon": 1.0, "weights": [1.0, 2.0]}


def test_cli_overrides_file(spec: ParameterSpec) -> None:
    assert spec.resolve(cli=[("n", "3")], file_values={"n": 4, "label": "a"}) == {"n": 3, "label": "a"}


@pytest.mark.parametrize("content", ["- 1\n- 2\n", "a: [\n", "1: x\n"])
def test_bad_params_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(content)
    with pytest.raises(StudyError, match="Parameters file"):
        load_params_file(path)


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="does not exist"):
        load_params_file(tmp_path / "nope.yaml")


@given(st.text())
def test_any_string_round_trips_for_a_str_parameter(text: str) -> None:
    spec = read_parameters(notebook('s = "x"'))
    assert spec.parse_cli([("s", text)]) == {"s": text}


@given(st.integers())
def test_decimal_ints_round_trip_and_padded_ones_are_refused(value: int) -> None:
    spec = read_parameters(notebook("n = 1"))
    assert spec.parse_cli([("n", str(value))]) == {"n": value}
    padded = ("-0" if value < 0 else "0") + str(abs(value))
    with pytest.raises(StudyError, match="not a plain decimal integer"):
        spec.parse_cli([("n", padded)])


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip_through_repr(value: float) -> None:
    spec = read_parameters(notebook("x = 0.5"))
    assert spec.parse_cli([("x", repr(value))]) == {"x": value}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.lists(json_values, max_size=4))
def test_lists_round_trip_through_json(value: list[Any]) -> None:
    spec = read_parameters(notebook("xs = []"))
    assert spec.parse_cli([("xs", json.dumps(value))]) == {"xs": value}


@given(json_values.filter(lambda v: not isinstance(v, str)))
def test_non_strings_are_refused_for_a_str_parameter(value: Any) -> None:
    spec = read_parameters(notebook('s = "x"'))
    with pytest.raises(StudyError, match="'s' expects str"):
        spec.validate({"s": value})


@given(st.dictionaries(st.sampled_from(["a", "b"]), st.text() | st.integers(), max_size=2))
def test_yaml_round_trip_of_typed_values(values: dict[str, Any]) -> None:
    spec = read_parameters(notebook("a = 'x'\nb = 'y'"))
    loaded = yaml.safe_load(yaml.safe_dump(values))
    if all(isinstance(v, str) for v in values.values()):
        assert spec.validate(loaded) == values
    else:
        with pytest.raises(StudyError, match="expects str"):
            spec.validate(loaded)
