"""Metadata and artifact storage behind small interfaces; `open_storage` is the one factory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from fermion.settings import Settings
from fermion.storage.artifacts import ArtifactStore, FsspecArtifactStore, LocalArtifactStore
from fermion.storage.base import (
    DatasetStore,
    KeyStore,
    LineageStore,
    ModelStore,
    NewModelVersion,
    NewVersion,
    RunStore,
    ScheduleStore,
)
from fermion.storage.database import create_metadata_engine, migrate

__all__ = [
    "ArtifactStore",
    "DatasetStore",
    "KeyStore",
    "LineageStore",
    "MetadataStores",
    "ModelStore",
    "NewModelVersion",
    "NewVersion",
    "RunStore",
    "ScheduleStore",
    "Storage",
    "open_artifact_store",
    "open_metadata",
    "open_storage",
]


@dataclass(frozen=True)
class Storage:
    """The stores a workspace hangs its stages off."""

    engine: Engine
    datasets: DatasetStore
    lineage: LineageStore
    artifacts: ArtifactStore
    runs: RunStore
    models: ModelStore
    keys: KeyStore
    schedules: ScheduleStore

    def close(self) -> None:
        self.engine.dispose()


@dataclass(frozen=True)
class MetadataStores:
    engine: Engine
    datasets: DatasetStore
    lineage: LineageStore
    runs: RunStore
    models: ModelStore
    keys: KeyStore
    schedules: ScheduleStore


def open_metadata(url: str) -> MetadataStores:
    """Connect to a metadata database and migrate it to the current schema."""
    from fermion.storage.sql_datasets import SqlDatasetStore
    from fermion.storage.sql_keys import SqlKeyStore
    from fermion.storage.sql_lineage import SqlLineageStore
    from fermion.storage.sql_models import SqlModelStore
    from fermion.storage.sql_runs import SqlRunStore
    from fermion.storage.sql_schedules import SqlScheduleStore

    engine = create_metadata_engine(url)
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()  # its pooled connections would otherwise be closed by the collector
        raise
    return MetadataStores(
        engine,
        SqlDatasetStore(engine),
        SqlLineageStore(engine),
        SqlRunStore(engine),
        SqlModelStore(engine),
        SqlKeyStore(engine),
        SqlScheduleStore(engine),
    )


def open_artifact_store(url: str, cache_dir: Path, endpoint_url: str = "") -> ArtifactStore:
    """A local folder, or any fsspec URL (`s3://bucket/prefix`)."""
    if "://" not in url or url.startswith("file://"):
        return LocalArtifactStore(Path(url.removeprefix("file://")))
    options = {"endpoint_url": endpoint_url} if endpoint_url else {}
    return FsspecArtifactStore(url, cache_dir, **options)


def open_storage(settings: Settings) -> Storage:
    meta = open_metadata(settings.resolved_metadata_url)
    artifacts = open_artifact_store(
        settings.resolved_artifacts_url, settings.root / "cache", settings.artifacts_endpoint_url
    )
    return Storage(
        meta.engine,
        meta.datasets,
        meta.lineage,
        artifacts,
        meta.runs,
        meta.models,
        meta.keys,
        meta.schedules,
    )
