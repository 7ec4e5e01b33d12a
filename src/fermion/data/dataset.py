"""`Dataset`: a handle on one stored dataset version, with its rows one call away."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fermion.entities import ColumnSchema, DatasetVersion, Profile, SplitRecord, ValidationRecord
from fermion.errors import InvalidInputError, MissingDependencyError, NotFoundError

if TYPE_CHECKING:
    from fermion.storage import Storage

PARTS = ("train", "valid", "test")


class Dataset:
    """One immutable version of a named dataset.

    The record (`.record`) is what the store keeps; the rows are read from the artifact store on
    demand and verified against their checksum.
    """

    def __init__(self, record: DatasetVersion, storage: Storage, *, created: bool = False) -> None:
        self.record = record
        self._storage = storage
        self.created = created  # True when the call that returned it stored a new version

    def __repr__(self) -> str:
        return f"<Dataset {self.ref} rows={self.num_rows} columns={self.num_columns}>"

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def ref(self) -> str:
        return self.record.ref

    @property
    def num_rows(self) -> int:
        return self.record.num_rows

    @property
    def num_columns(self) -> int:
        return self.record.num_columns

    @property
    def columns(self) -> list[str]:
        return self.record.column_names()

    @property
    def schema(self) -> tuple[ColumnSchema, ...]:
        return self.record.schema

    @property
    def profile(self) -> Profile:
        return self.record.profile

    @property
    def content_hash(self) -> str:
        return self.record.content_hash

    def parquet_path(self) -> Path:
        """A local Parquet file holding this version's rows, checksum verified."""
        return self._storage.artifacts.local_path(self.record.content_hash)

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.parquet_path())

    def to_polars(self) -> pl.DataFrame:
        return pl.read_parquet(self.parquet_path())

    def to_pandas(self) -> Any:
        try:
            import pandas  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("pandas is not installed: pip install pandas") from exc
        return self.to_polars().to_pandas()

    @property
    def splits(self) -> list[SplitRecord]:
        """Recorded splits of this version, the newest first."""
        return self._storage.datasets.list_splits(self.record.id)

    @property
    def validations(self) -> list[ValidationRecord]:
        """Stored validation results of this version, the newest first."""
        return self._storage.datasets.list_validations(self.record.id)

    def split_frames(self, split: SplitRecord | None = None) -> dict[str, pl.DataFrame]:
        """The rows of each part of `split`, e.g. the record `DatasetCatalog.split` returned.

        Without `split`, the version's only split; with several recorded, say which one
        (`.splits` lists them) rather than risk training on another split's rows.
        """
        if split is None:
            splits = self.splits
            if not splits:
                raise NotFoundError(
                    f"dataset {self.ref} has no split: run 'fermion data split {self.ref}'"
                )
            if len(splits) > 1:
                raise InvalidInputError(
                    f"dataset {self.ref} has {len(splits)} splits: pass the one to use "
                    "(the record that split() returned, or one of .splits)"
                )
            split = splits[0]
        elif split.version_id != self.record.id:
            raise InvalidInputError(f"that split belongs to another version than {self.ref}")
        parts = pl.read_parquet(self._storage.artifacts.local_path(split.content_hash))
        frame = self.to_polars().with_columns(parts.get_column("part").alias("__part__"))
        return {
            part: frame.filter(pl.col("__part__") == part).drop("__part__")
            for part in PARTS
            if split.counts.get(part, 0) > 0
        }
