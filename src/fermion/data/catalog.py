"""`DatasetCatalog` (`workspace.datasets`): the Python API of dataset management.

Every operation that creates data writes it to a scratch file first, records the blob, then the
metadata row; a failure on the way removes what it wrote, so nothing half-made stays visible.
"""

from __future__ import annotations

import builtins
import hashlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from fermion.data.clean import Recipe, apply_recipe
from fermion.data.dataset import Dataset
from fermion.data.diff import VersionDiff, diff_versions
from fermion.data.ingest import ingest_file_described, ingest_sql
from fermion.data.parquet import write_parquet
from fermion.data.profile import describe_parquet
from fermion.data.split import SplitSpec, assign_parts
from fermion.data.validate import RuleSet, ValidationReport, validate_frame
from fermion.entities import (
    ColumnSchema,
    DatasetRef,
    DatasetSummary,
    DatasetVersion,
    Profile,
    SplitRecord,
)
from fermion.entities.dataset import check_name
from fermion.errors import ConflictError, InvalidInputError
from fermion.storage import NewVersion, Storage
from fermion.storage.artifacts import sha256_file

VERSION = "dataset_version"
SPLIT = "split"
EXPORT_FORMATS = (".csv", ".parquet", ".jsonl", ".ndjson")


class DatasetCatalog:
    """Named datasets with immutable, content-addressed versions."""

    def __init__(self, storage: Storage, scratch_dir: Path) -> None:
        self._storage = storage
        self._store = storage.datasets
        self._scratch_dir = scratch_dir

    # -- reading -------------------------------------------------------------------------------

    def get(self, ref: str | DatasetRef) -> Dataset:
        """`credit` (the latest version) or `credit:3`."""
        parsed = ref if isinstance(ref, DatasetRef) else DatasetRef.parse(ref)
        return Dataset(self._store.get_version(parsed.name, parsed.version), self._storage)

    def get_by_id(self, version_id: int) -> Dataset:
        """A version by its store id, as lineage edges and runs name it."""
        return Dataset(self._store.get_version_by_id(version_id), self._storage)

    def list(self) -> list[DatasetSummary]:
        return self._store.list_datasets()

    def versions(self, name: str) -> builtins.list[DatasetVersion]:
        return self._store.list_versions(check_name(name))

    def diff(self, old: str, new: str) -> VersionDiff:
        return diff_versions(self.get(old).record, self.get(new).record)

    # -- creating versions ---------------------------------------------------------------------

    def add(
        self,
        source: str | Path | None = None,
        *,
        name: str,
        format: str | None = None,
        delimiter: str | None = None,
        encoding: str | None = None,
        sql: str | None = None,
        url: str | None = None,
    ) -> Dataset:
        """Ingest a file (CSV/TSV, Parquet, JSON Lines) or a SQL query as a new version.

        Identical content returns the version that already holds it.
        """
        check_name(name)
        if (source is None) == (sql is None):
            raise InvalidInputError("give either a file to add or a SQL query (with its URL)")
        with self._scratch() as folder:
            dest = folder / "data.parquet"
            if sql is not None:
                if not url:
                    raise InvalidInputError("a SQL query needs the database URL (--url)")
                info = ingest_sql(sql, url, dest)
                return self._record(dest, name=name, operation="ingest", source=info)
            ingested = ingest_file_described(
                Path(source or ""), dest, fmt=format, delimiter=delimiter, encoding=encoding
            )
            return self._record(
                dest,
                name=name,
                operation="ingest",
                source=ingested.description,
                described=(ingested.schema, ingested.profile),
            )

    def clean(
        self, ref: str, recipe: Recipe | Path | str | Mapping[str, Any], *, name: str | None = None
    ) -> Dataset:
        """Apply a cleaning recipe to a version; the result is a new version of `name`
        (default: the same dataset) whose lineage names the parent and the recipe."""
        parent = self.get(ref)
        recipe = _load_recipe(recipe)
        target = check_name(name or parent.name)
        key = _derivation_key(parent.content_hash, "clean", recipe.fingerprint())
        done = self._store.find_version(target, derivation_key=key)
        if done is not None:
            return Dataset(done, self._storage)
        frame = apply_recipe(parent.scan(), recipe)
        with self._scratch() as folder:
            dest = folder / "data.parquet"
            _sink(frame, dest, f"cleaning {parent.ref}")
            source = {
                "parent": parent.ref,
                "recipe": recipe.to_dict(),
                "recipe_fingerprint": recipe.fingerprint(),
            }
            return self._record(
                dest,
                name=target,
                operation="clean",
                source=source,
                parent=parent.record,
                derivation_key=key,
            )

    def _record(
        self,
        parquet: Path,
        *,
        name: str,
        operation: str,
        source: dict[str, Any],
        parent: DatasetVersion | None = None,
        derivation_key: str | None = None,
        described: tuple[tuple[ColumnSchema, ...], Profile] | None = None,
    ) -> Dataset:
        """`described`: the schema and profile of `parquet`, if known; else they are read."""
        digest = sha256_file(parquet)
        existing = self._store.find_version(name, content_hash=digest)
        if existing is not None:
            return Dataset(existing, self._storage)
        schema, profile = described or describe_parquet(parquet)
        size_bytes = parquet.stat().st_size  # the store may take the file
        artifacts = self._storage.artifacts
        blob_was_there = artifacts.exists(digest)
        artifacts.put_file(parquet, digest, move=True)
        try:
            record, created = self._store.add_version(
                NewVersion(
                    name=name,
                    content_hash=digest,
                    num_rows=profile.num_rows,
                    num_columns=profile.num_columns,
                    size_bytes=size_bytes,
                    schema=schema,
                    profile=profile,
                    operation=operation,
                    source=source,
                    parent_id=parent.id if parent else None,
                    derivation_key=derivation_key,
                )
            )
            if created and parent is not None:
                self._storage.lineage.add_edge(
                    (VERSION, parent.id), (VERSION, record.id), operation
                )
        except BaseException:
            if not blob_was_there and not self._store.content_in_use(digest):
                artifacts.delete(digest)
            raise
        return Dataset(record, self._storage, created=created)

    # -- checks and splits ---------------------------------------------------------------------

    def validate(
        self, ref: str, rules: RuleSet | Path | str | Mapping[str, Any]
    ) -> ValidationReport:
        """Check a version against rules; the result is stored with the version."""
        dataset = self.get(ref)
        rules = _load_rules(rules)
        report = validate_frame(dataset.scan(), rules)
        self._store.add_validation(
            dataset.record.id,
            rules_hash=rules.fingerprint(),
            passed=report.passed,
            report=report.to_dict(),
        )
        return report

    def split(
        self,
        ref: str,
        *,
        train: float = 0.7,
        valid: float = 0.15,
        test: float = 0.15,
        stratify: str | None = None,
        group: str | None = None,
        seed: int = 0,
    ) -> SplitRecord:
        """Assign each row of a version to train/valid/test, deterministically; the split is
        recorded with the version so that training and evaluation use the same rows."""
        dataset = self.get(ref)
        spec = SplitSpec(
            train=train, valid=valid, test=test, stratify=stratify, group=group, seed=seed
        )
        for split in dataset.splits:
            if split.params_hash == spec.fingerprint():
                return split
        columns = [c for c in (stratify, group) if c] or dataset.columns[:1]
        missing = [c for c in columns if c not in dataset.columns]
        if missing:
            raise InvalidInputError(f"dataset {dataset.ref} has no column {missing[0]!r}")
        parts = assign_parts(dataset.scan().select(columns).collect(), spec)
        counts = {part: int(n) for part, n in parts.value_counts().iter_rows()}
        with self._scratch() as folder:
            dest = folder / "split.parquet"
            write_parquet(pl.LazyFrame({"part": parts}), dest)
            digest = self._storage.artifacts.put_file(dest)
        record, created = self._store.add_split(
            dataset.record.id,
            params=spec.to_dict(),
            params_hash=spec.fingerprint(),
            content_hash=digest,
            counts=counts,
        )
        if created:
            self._storage.lineage.add_edge(
                (VERSION, dataset.record.id), (SPLIT, record.id), "split"
            )
        return record

    # -- export and removal --------------------------------------------------------------------

    def export(self, ref: str, path: str | Path) -> Path:
        """Write a version to CSV, Parquet or JSON Lines, chosen by the file's suffix."""
        dataset = self.get(ref)
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in EXPORT_FORMATS:
            raise InvalidInputError(
                f"cannot export to {path.name}: use one of {', '.join(EXPORT_FORMATS)}"
            )
        if not path.parent.is_dir():
            raise InvalidInputError(f"cannot export to {path}: folder {path.parent} does not exist")
        tmp = path.with_name(f".{path.name}.partial")
        try:
            if suffix == ".parquet":
                shutil.copyfile(dataset.parquet_path(), tmp)
            elif suffix == ".csv":
                dataset.scan().sink_csv(tmp)
            else:
                dataset.scan().sink_ndjson(tmp)
            tmp.replace(path)
        except pl.exceptions.PolarsError as exc:
            raise InvalidInputError(
                f"cannot export {dataset.ref} to {path.name}: {_first_line(exc)}"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def remove(self, ref: str, *, force: bool = False) -> builtins.list[DatasetVersion]:
        """Remove one version (`credit:2`) or a whole dataset (`credit`).

        Refused while something outside what is removed was made from it, unless `force`.
        """
        parsed = DatasetRef.parse(ref)
        if parsed.version is None:
            targets = self._store.list_versions(parsed.name)
        else:
            targets = [self._store.get_version(parsed.name, parsed.version)]
        target_ids = {v.id for v in targets}
        lineage = self._storage.lineage
        dependants = [
            edge
            for version in targets
            for edge in lineage.children(VERSION, version.id)
            if edge.child_kind != SPLIT
            and not (edge.child_kind == VERSION and edge.child_id in target_ids)
        ]
        if dependants and not force:
            edge = dependants[0]
            what = (
                self._store.get_version_by_id(edge.child_id).ref
                if edge.child_kind == VERSION
                else f"{edge.child_kind} {edge.child_id}"
            )
            raise ConflictError(
                f"cannot remove {ref}: {what} was made from it ({edge.relation}); "
                "remove that first or force it"
            )
        for version in sorted(targets, key=lambda v: v.version, reverse=True):
            splits = self._store.list_splits(version.id)
            blobs = {version.content_hash, *(split.content_hash for split in splits)}
            for split in splits:
                lineage.forget(SPLIT, split.id)
            self._store.delete_version(version.id)
            lineage.forget(VERSION, version.id)
            for digest in blobs:
                if not self._store.content_in_use(digest):
                    self._storage.artifacts.delete(digest)
        return targets

    @contextmanager
    def _scratch(self) -> Iterator[Path]:
        self._scratch_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=self._scratch_dir))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _derivation_key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sink(frame: pl.LazyFrame, dest: Path, what: str) -> None:
    try:
        write_parquet(frame, dest)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InvalidInputError(f"{what} failed: {_first_line(exc)}") from exc


def _load_recipe(recipe: Recipe | Path | str | Mapping[str, Any]) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, Mapping):
        return Recipe.from_dict(dict(recipe))
    return Recipe.from_yaml(Path(recipe))


def _load_rules(rules: RuleSet | Path | str | Mapping[str, Any]) -> RuleSet:
    if isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, Mapping):
        return RuleSet.from_dict(dict(rules))
    return RuleSet.from_yaml(Path(rules))
