"""The parameters of a study notebook: read from its parameters cell, checked before anything runs.

A study notebook declares its parameters in the cell tagged ``parameters`` (as papermill does), one literal
assignment a line::

    epsilon = 1.0                      # float
    features = ["income_band", "housing"]   # list of str
    model_type = "logistic_regression"
    threshold = None  # type: float | None

The type of each parameter is the type of its default (``bool``, ``int``, ``float``, ``str``, ``list``,
``dict``); ``# type: T | None`` or an annotation (``threshold: float | None = None``) states it explicitly. A
``None`` default without a type accepts any literal.

Values are checked, never coerced behind the caller's back:

- ``-p NAME VALUE`` strings from the command line are parsed by the parameter's type. A ``str`` parameter keeps
  the string exactly (``"007"`` stays ``"007"``, ``"no"`` stays ``"no"``). An ``int`` parameter accepts only a
  plain decimal (``"007"`` is an error, because YAML would read it as octal and papermill as 7). ``bool``
  accepts ``true``/``false``; ``list`` and ``dict`` accept JSON; a nullable parameter reads ``null`` as None.
- ``-f params.yaml`` and ``-y 'name: value'`` values keep their YAML types and are checked as they are: an
  unquoted ``007`` in YAML is the int 7 and is refused for a ``str`` parameter, with the advice to quote it.
- The only widening is int to float for a ``float`` parameter (``epsilon: 1`` means 1.0).
"""

from __future__ import annotations

import ast
import difflib
import io
import json
import math
import re
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from sandbox._private.shared.errors import StudyError

__all__ = [
    "Parameter",
    "ParameterSpec",
    "read_parameters",
    "load_params_file",
    "load_params_yaml",
    "describe_parameters",
    "PARAMETERS_TAG",
]

PARAMETERS_TAG = "parameters"
_BASE_TYPES: dict[str, type | tuple[type, ...]] = {
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "list": list,
    "dict": dict,
}
_TYPE_COMMENT = re.compile(r"#\s*type:\s*(?P<type>[A-Za-z_][\w\[\], |]*?)\s*$")
_DECIMAL_INT = re.compile(r"^[+-]?(0|[1-9][0-9]*)$")
_NULLS = ("null", "None")
_TRUE, _FALSE = ("true", "True"), ("false", "False")


@dataclass(frozen=True)
class Parameter:
    """One parameter of a study notebook.

    Parameters
    ----------
    name : str
        The variable name.
    type : {"bool", "int", "float", "str", "list", "dict", "any"}
        Declared or inferred type; ``any`` accepts every literal.
    default : object
        The literal default in the parameters cell.
    nullable : bool
        Whether None is accepted.
    item_type : str or None
        For a ``list``: the type of its items when the default states one (``list[str]``).
    help : str
        The comment at the end of the parameter's line (without a ``type:`` comment), shown by
        :func:`describe_parameters`.
    """

    name: str
    type: str
    default: Any
    nullable: bool = False
    item_type: str | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise StudyError(f"Parameter name {self.name!r} is not a Python identifier.")
        if self.type not in (*_BASE_TYPES, "any"):
            raise StudyError(
                f"Parameter {self.name!r} has type {self.type!r}; use one of {', '.join(_BASE_TYPES)} "
                "(optionally '| None')."
            )
        if self.item_type is not None and self.item_type not in _BASE_TYPES:
            raise StudyError(f"Parameter {self.name!r}: list items of type {self.item_type!r} are not supported.")

    @property
    def type_label(self) -> str:
        """The type as a reader writes it, e.g. ``list[str] | None``."""
        base = f"list[{self.item_type}]" if self.item_type else self.type
        return f"{base} | None" if self.nullable and self.type != "any" else base

    def check(self, value: Any, *, source: str = "value") -> Any:
        """Return ``value`` if it has this parameter's type (int widened to float), else raise StudyError."""
        if value is None and (self.nullable or self.type == "any"):
            return None
        if self.type == "any":
            return _check_literal(self.name, value)
        if not _is_type(value, self.type):
            raise StudyError(self._wrong_type(value, source))
        if self.type == "float":
            if not math.isfinite(value):
                raise StudyError(f"Parameter {self.name!r} must be a finite float, got {value!r}.")
            return float(value)
        if self.type == "list" and self.item_type:
            bad = [v for v in value if not _is_type(v, self.item_type)]
            if bad:
                raise StudyError(
                    f"Parameter {self.name!r} expects {self.type_label}, but item {bad[0]!r} "
                    f"is {type(bad[0]).__name__}."
                )
            if self.item_type == "float":
                return [float(v) for v in value]
        return _check_literal(self.name, value)

    def parse_cli(self, text: str) -> Any:
        """Parse a ``-p NAME VALUE`` string by this parameter's type (see the module docstring)."""
        if self.nullable and text in _NULLS:
            return None
        parser = _CLI_PARSERS.get(self.type, _parse_any)
        return self.check(parser(self, text), source="command-line value")

    def _wrong_type(self, value: Any, source: str) -> str:
        msg = f"Parameter {self.name!r} expects {self.type_label} but the {source} {value!r} is {type(value).__name__}."
        if self.type == "str" and isinstance(value, int | float | bool) and source == "YAML value":
            msg += " YAML read an unquoted value: quote it in the file (for example '007' or 'no')."
        return msg


def _is_type(value: Any, type_name: str) -> bool:
    if type_name == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    expected = _BASE_TYPES[type_name]
    return isinstance(value, expected)


def _check_literal(name: str, value: Any) -> Any:
    """Refuse values that papermill cannot write back as a Python literal (objects, tuples, sets...)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StudyError(f"Parameter {name!r} must be finite, got {value!r}.")
        return value
    if isinstance(value, list):
        return [_check_literal(name, v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise StudyError(f"Parameter {name!r}: dictionary keys must be strings, got {list(value)!r}.")
        return {k: _check_literal(name, v) for k, v in value.items()}
    raise StudyError(
        f"Parameter {name!r} got a {type(value).__name__} ({value!r}); only None, bool, int, float, str, "
        "list and dict values can be passed to a notebook."
    )


def _parse_int(p: Parameter, text: str) -> int:
    if not _DECIMAL_INT.match(text.strip()):
        hint = f" (write {int(text)!r})" if text.strip().lstrip("+-").isdigit() else ""
        raise StudyError(
            f"Parameter {p.name!r} expects int; {text!r} is not a plain decimal integer{hint}. "
            "Leading zeros are refused because YAML and papermill would read them differently."
        )
    return int(text)


def _parse_float(p: Parameter, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise StudyError(f"Parameter {p.name!r} expects float; {text!r} is not a number.") from None
    if not math.isfinite(value):
        raise StudyError(f"Parameter {p.name!r} expects a finite float, got {text!r}.")
    return value


def _parse_bool(p: Parameter, text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise StudyError(f"Parameter {p.name!r} expects bool; write true or false, not {text!r}.")


def _parse_json(p: Parameter, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        example = '["a", "b"]' if p.type == "list" else '{"key": 1}'
        raise StudyError(
            f"Parameter {p.name!r} expects {p.type_label} written as JSON, e.g. {example}; "
            f"{text!r} is not valid JSON ({exc.msg})."
        ) from None


def _parse_any(p: Parameter, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


_CLI_PARSERS = {
    "str": lambda p, text: text,
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
    "list": _parse_json,
    "dict": _parse_json,
}


@dataclass(frozen=True)
class ParameterSpec:
    """The parameters declared by one notebook, in order, and the index of the cell that declares them."""

    parameters: tuple[Parameter, ...]
    cell_index: int

    def __post_init__(self) -> None:
        names = [p.name for p in self.parameters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise StudyError(f"The parameters cell assigns {dupes} more than once; keep one line per parameter.")

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names in cell order."""
        return tuple(p.name for p in self.parameters)

    @property
    def defaults(self) -> dict[str, Any]:
        """Name to default value."""
        return {p.name: p.default for p in self.parameters}

    def get(self, name: str) -> Parameter:
        """Return the parameter ``name``; an unknown name raises StudyError listing the known ones."""
        for p in self.parameters:
            if p.name == name:
                return p
        close = difflib.get_close_matches(name, self.names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise StudyError(
            f"Unknown parameter {name!r}.{hint} The notebook's parameters are: {', '.join(self.names) or '(none)'}."
        )

    def validate(self, values: Mapping[str, Any], *, source: str = "value") -> dict[str, Any]:
        """Check typed values (from Python or a YAML/JSON file); return them, int widened to float."""
        return {name: self.get(name).check(value, source=source) for name, value in values.items()}

    def parse_cli(self, pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """Parse ``-p NAME VALUE`` pairs by each parameter's type."""
        return {name: self.get(name).parse_cli(text) for name, text in pairs}

    def resolve(
        self, *, cli: Sequence[tuple[str, str]] = (), file_values: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Merge file values and ``-p`` pairs (``-p`` wins) into the checked parameters to inject."""
        out = self.validate(file_values or {}, source="YAML value")
        out.update(self.parse_cli(cli))
        return out


def read_parameters(nb: Mapping[str, Any]) -> ParameterSpec:
    """Read the parameters cell of a notebook (a dict or nbformat node).

    Raises
    ------
    StudyError
        No cell is tagged ``parameters``, more than one is, or a line is not a literal assignment.
    """
    cells = list(nb.get("cells", []))
    tagged = [i for i, c in enumerate(cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise StudyError(
            "The notebook has no parameters cell: put the study's parameters (epsilon = 1.0, ...) in one code "
            "cell and tag it 'parameters' (JupyterLab: property inspector > Common Tools > Cell Tags)."
        )
    if len(tagged) > 1:
        raise StudyError(f"Cells {tagged} are all tagged 'parameters'; tag exactly one cell.")
    index = tagged[0]
    if cells[index].get("cell_type") != "code":
        raise StudyError(f"Cell {index} is tagged 'parameters' but is not a code cell.")
    source = cells[index].get("source", "")
    source = "".join(source) if isinstance(source, list) else source
    return ParameterSpec(tuple(_parse_cell(source, index)), index)


def _parse_cell(source: str, index: int) -> list[Parameter]:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise StudyError(
            f"The parameters cell (cell {index}) is not valid Python: {exc.msg} on line {exc.lineno}."
        ) from None
    lines = source.splitlines()
    comments = _comments(source)
    return [
        replace(_parse_statement(stmt, lines, index), help=comments.get(stmt.end_lineno or stmt.lineno, ""))
        for stmt in tree.body
    ]


def _comments(source: str) -> dict[int, str]:
    """Line number to the text of the comment on that line, without a ``# type: ...`` part."""
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                text = _TYPE_COMMENT.sub("", tok.string).lstrip("#").strip()
                if text:
                    out[tok.start[0]] = text
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - ast.parse accepted the source already
        pass
    return out


def _parse_statement(stmt: ast.stmt, lines: list[str], index: int) -> Parameter:
    where = f"cell {index}, line {stmt.lineno}"
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        name, value_node, annotation = stmt.targets[0].id, stmt.value, None
    elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        name, value_node, annotation = stmt.target.id, stmt.value, ast.unparse(stmt.annotation)
    else:
        raise StudyError(
            f"The parameters cell may only assign literal defaults, one name a line ({where}: "
            f"{ast.unparse(stmt)!r}); move other code to the next cell."
        )
    try:
        default = ast.literal_eval(value_node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        raise StudyError(
            f"Parameter {name!r} ({where}) has default {ast.unparse(value_node)!r}, which is not a literal; "
            "write a literal value (number, string, list, dict, True/False/None)."
        ) from None
    match = _TYPE_COMMENT.search(lines[stmt.end_lineno - 1] if stmt.end_lineno else "")
    declared = annotation or (match.group("type") if match else None)
    param = _make_parameter(name, default, declared, where)
    if default is not None:
        param.check(default, source="default")
    return param


def _make_parameter(name: str, default: Any, declared: str | None, where: str) -> Parameter:
    if declared is None:
        if default is None:
            return Parameter(name, "any", None, nullable=True)
        return Parameter(name, _infer(default), default, item_type=_infer_items(default))
    parts = [t.strip() for t in declared.split("|")]
    nullable = "None" in parts
    parts = [t for t in parts if t != "None"]
    if len(parts) != 1:
        raise StudyError(f"Parameter {name!r} ({where}) declares type {declared!r}; use one type, optionally '| None'.")
    base, item = _split_generic(parts[0])
    return Parameter(name, base, default, nullable=nullable, item_type=item)


def _split_generic(text: str) -> tuple[str, str | None]:
    m = re.fullmatch(r"(list|dict)\[(.+)\]", text)
    if not m:
        return text, None
    if m.group(1) == "dict":
        return "dict", None
    return "list", m.group(2).strip()


def _infer(value: Any) -> str:
    for type_name in ("bool", "int", "float", "str", "list", "dict"):
        if _is_type(value, type_name):
            return type_name
    return "any"


def _infer_items(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return None
    kinds = {_infer(v) for v in value}
    if kinds == {"int", "float"}:
        return "float"
    return kinds.pop() if len(kinds) == 1 and kinds != {"any"} else None


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read a ``-f params.yaml`` file: a mapping of parameter names to YAML values (types kept)."""
    p = Path(path)
    if not p.is_file():
        raise StudyError(f"Parameters file {str(p)!r} does not exist.")
    return _yaml_mapping(p.read_text(encoding="utf-8"), f"Parameters file {str(p)!r}")


def load_params_yaml(text: str) -> dict[str, Any]:
    """Read a ``-y`` YAML string (papermill's ``--parameters_yaml``): a mapping of names to values."""
    return _yaml_mapping(text, f"The YAML parameters {text!r}")


def _yaml_mapping(text: str, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StudyError(f"{what} is not valid YAML: {exc}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise StudyError(
            f"{what} must be a mapping of names to values (for example 'epsilon: 1.0' or "
            f"'{{epsilon: 1.0, title: v2}}'), got {type(data).__name__}."
        )
    return data


def describe_parameters(nb: Mapping[str, Any], name: str = "") -> str:
    """Describe a notebook's parameters like papermill's ``--help-notebook``: name, type, default and comment.

    Raises
    ------
    StudyError
        The notebook has no (valid) parameters cell.
    """
    spec = read_parameters(nb)
    head = f"Parameters of notebook {name!r}" if name else "Parameters of the notebook"
    lines = [f"{head} (cell {spec.cell_index}, tagged {PARAMETERS_TAG!r}):"]
    width = max((len(p.name) + len(p.type_label) for p in spec.parameters), default=0) + 2
    for p in spec.parameters:
        left = f"{p.name}: {p.type_label}"
        default = json.dumps(p.default, ensure_ascii=False) if p.default is not None else "None"
        lines.append(f"  {left:<{width}} (default {default})" + (f"  {p.help}" if p.help else ""))
    if not spec.parameters:
        lines.append("  (the parameters cell declares none)")
    lines.append("Set them with -p NAME VALUE, -y 'NAME: VALUE' or -f params.yaml.")
    return "\n".join(lines)
