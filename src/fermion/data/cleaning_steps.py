"""Cleaning steps that reshape a frame: rows, columns and text. Value steps live in
`cleaning_values`; `clean` assembles both into recipes.

Every step is a frozen dataclass that checks its arguments on construction, so a step built in
Python fails as early and as clearly as one read from YAML.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

import polars as pl

from fermion.data.schema import dtype_kind
from fermion.data.spec_file import check_keys, check_names
from fermion.entities import LogicalType
from fermion.errors import InvalidInputError


class Step(ABC):
    """One cleaning operation: `name` is its YAML key, `to_args()` its canonical arguments."""

    name: ClassVar[str]

    @classmethod
    def from_args(cls, args: Any) -> Step:
        """Build the step from its YAML value; the default expects a mapping of field names."""
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise InvalidInputError(f"arguments must be a mapping, not {args!r}")
        params = fields(cls)  # type: ignore[arg-type]
        check_keys(args, tuple(f.name for f in params), "")
        for f in params:
            if f.name not in args and f.default is MISSING:
                raise InvalidInputError(f"missing argument {f.name!r}")
        return cls(**args)

    @abstractmethod
    def to_args(self) -> Any:
        """The JSON-able arguments that `from_args` turns back into an equal step."""

    def label(self) -> str:
        """How errors name the step."""
        return self.name

    def reads(self, schema: pl.Schema) -> tuple[str, ...]:
        """The input columns the step needs; `apply_recipe` checks that they exist."""
        return ()

    def check(self, schema: pl.Schema) -> None:
        """Raise `InvalidInputError` if the step cannot run on a frame of `schema`."""
        return None

    def verify(self, lf: pl.LazyFrame, schema: pl.Schema) -> None:
        """Raise `InvalidInputError` if the step would harm `lf`'s data (a query on it); most
        steps need no such check."""
        return None

    @abstractmethod
    def apply(self, lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
        """Add the step to the lazy plan; `schema` is `lf`'s, already checked."""


def optional_names(value: Sequence[str] | None, what: str) -> tuple[str, ...] | None:
    """`check_names` for an argument where None means "every applicable column"."""
    return None if value is None else check_names(value, what)


def string_columns(schema: pl.Schema, columns: tuple[str, ...] | None) -> tuple[str, ...]:
    """The named columns, or every string and categorical column of `schema`."""
    if columns is not None:
        return columns
    kinds = (LogicalType.STRING, LogicalType.CATEGORICAL)
    return tuple(name for name, dtype in schema.items() if dtype_kind(dtype) in kinds)


@dataclass(frozen=True)
class DropDuplicates(Step):
    """Drop rows equal to an earlier row on `subset` (all columns by default); keeps order."""

    name: ClassVar[str] = "drop_duplicates"
    subset: Sequence[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "subset", optional_names(self.subset, "subset"))

    def to_args(self) -> Any:
        return {"subset": None if self.subset is None else list(self.subset)}

    def reads(self, schema: pl.Schema) -> tuple[str, ...]:
        return tuple(self.subset or ())

    def apply(self, lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
        subset = None if self.subset is None else list(self.subset)
        return lf.unique(subset=subset, keep="first", maintain_order=True)


@dataclass(frozen=True)
class DropMissing(Step):
    """Drop rows with a null in any of `columns` (any column by default)."""

    name: ClassVar[str] = "drop_missing"
    columns: Sequence[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", optional_names(self.columns, "columns"))

    def to_args(self) -> Any:
        return {"columns": None if self.columns is None else list(self.columns)}

    def reads(self, schema: pl.Schema) -> tuple[str, ...]:
        return tuple(self.columns or ())

    def apply(self, lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
        return lf.drop_nulls(None if self.columns is None else list(self.columns))


@dataclass(frozen=True)
class DropColumns(Step):
    """Remove columns. YAML: `drop_columns: [a, b]` (or `{columns: [a, b]}`)."""

    name: ClassVar[str] = "drop_columns"
    columns: Sequence[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", check_names(self.columns, "columns"))

    @classmethod
    def from_args(cls, args: Any) -> Step:
        if isinstance(args, dict):
            return super().from_args(args)
        return cls(args)

    def to_args(self) -> Any:
        return list(self.columns)

    def reads(self, schema: pl.Schema) -> tuple[str, ...]:
        return tuple(self.columns)

    def apply(self, lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
        return lf.drop(list(self.columns))


@dataclass(frozen=True)
class Rename(Step):
    """Rename columns. YAML: `rename: {old: new}`."""

    name: ClassVar[str] = "rename"
    mapping: Mapping[str, str]

    def __post_init__(self) -> None:
        mapping = self.mapping
        if not isinstance(mapping, Mapping) or not mapping:
            raise InvalidInputError(f"expected a mapping of old name to new name, not {mapping!r}")
        for old, new in mapping.items():
            if not isinstance(old, str) or not isinstance(new, str) or not new:
                raise InvalidInputError(f"cannot rename {old!r} to {new!r}: names must be text")
        if len(set(mapping.values())) < len(mapping):
            raise InvalidInputError(f"two columns would get the same name in {dict(mapping)}")
        object.__setattr__(self, "mapping", dict(mapping))

    @classmethod
    def from_args(cls, args: Any) -> Step:
        return cls(args)

    def __hash__(self) -> int:
        return hash(tuple(self.mapping.items()))

    def to_args(self) -> Any:
        return dict(self.mapping)

    def reads(self, schema: pl.Schema) -> tuple[str, ...]:
        return tuple(self.mapping)

    def check(self, schema: pl.Schema) -> None:
        kept = [name for name in schema.names() if name not in self.mapping]
        for old, new in self.mapping.items():
            if new in kept:
                raise InvalidInputError(f"renaming {old!r} to {new!r} would duplicate {new!r}")

    def apply(self, lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
        return lf.rename(dict(self.mapping))


@dataclass(frozen=True)
class Filter(Step):
    """Keep the rows where a SQL-like `expression` holds; rows where it is null are dropped.

    YAML: `filter: "Age >= 18 and Amount > 0"`. Parsed by `polars.sql_expr`.
    """

    name: ClassVar[str] = "filter"
    expression: str

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str) or not self.expression.strip():
            raise InvalidInputError(f"expected an expression as text, not {self.expression!r}")
        self.parse()

    @classmethod
    def from_args(cls, args: Any) -> Step:
        if isinstance(args, dict):
            return super().from_args(args)
        return cls(args)

    def parse(self) -> pl.Expr:
        """The expression as Polars sees it; raises if it does not parse."""
        try:
            return pl.sql_expr(self.expression)
        except Exception as exc:  # Polars raises several unrelated types while parsing
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InvalidInputError(
                f"filter expression {self.expression!r} does not parse: {reason}"
            ) from None

    def label(self) -> str:
        return f"filter {self.expression!r}"

    def to_args(self) -> Any:
        return self.expression

    def reads(self, schema: pl.Schema) -> tuple[str, ...]:
        return tuple(self.parse().meta.root_names())

    def apply(self, lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
        return lf.filter(self.parse())


class _TextStep(Step):
    """Base of the string transforms: `columns` default to every string/categorical column;
    categorical and enum columns come back categorical."""

    columns: tuple[str, ...] | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", optional_names(self.columns, "columns"))

    def to_args(self) -> Any:
        return {"columns": None if self.columns is None else list(self.columns)}

    def reads(self, schema: pl.Schema) -> tuple[str, ...]:
        return tuple(self.columns or ())

    def check(self, schema: pl.Schema) -> None:
        for column in string_columns(schema, self.columns):
            kind = dtype_kind(schema[column])
            if kind not in (LogicalType.STRING, LogicalType.CATEGORICAL):
                raise InvalidInputError(f"column {column!r} is {kind or schema[column]}, not text")

    @abstractmethod
    def transform(self, text: pl.Expr) -> pl.Expr:
        """The transform on a String expression."""

    def apply(self, lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
        exprs = []
        for column in string_columns(schema, self.columns):
            text = self.transform(pl.col(column).cast(pl.String))
            # An enum may not hold the new text, so enums come back as categoricals.
            exprs.append(text if schema[column] == pl.String else text.cast(pl.Categorical))
        return lf.with_columns(exprs) if exprs else lf


@dataclass(frozen=True)
class Trim(_TextStep):
    """Strip leading and trailing whitespace."""

    name: ClassVar[str] = "trim"
    columns: Sequence[str] | None = None  # type: ignore[assignment]

    def transform(self, text: pl.Expr) -> pl.Expr:
        return text.str.strip_chars()


@dataclass(frozen=True)
class Lowercase(_TextStep):
    """Lower-case text."""

    name: ClassVar[str] = "lowercase"
    columns: Sequence[str] | None = None  # type: ignore[assignment]

    def transform(self, text: pl.Expr) -> pl.Expr:
        return text.str.to_lowercase()
