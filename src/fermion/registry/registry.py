"""The model registry (`ws.models`): register, look up, alias, load, export and import."""

from __future__ import annotations

import builtins
import getpass
import shutil
from pathlib import Path
from typing import Any

from fermion.entities import AliasEvent, ModelSummary, ModelVersion
from fermion.entities.dataset import check_name
from fermion.errors import NotFoundError
from fermion.registry.bundle import materialize, read_manifest, store_bundle
from fermion.registry.card import model_card
from fermion.registry.model import Model, load_folder
from fermion.registry.refs import ModelRef, check_alias
from fermion.registry.transfer import unpack_tar, write_tar
from fermion.storage import NewModelVersion, Storage


class ModelRegistry:
    def __init__(self, storage: Storage, scratch_dir: Path, cache_dir: Path) -> None:
        self._storage = storage
        self._store = storage.models
        self._scratch = scratch_dir
        self._cache = cache_dir

    def register(
        self,
        name: str,
        folder: Path,
        manifest: dict[str, Any],
        *,
        run_id: int | None = None,
        metrics: dict[str, float] | None = None,
        description: str = "",
        origin: str = "trained",
        derived_from: tuple[ModelVersion, str] | None = None,
    ) -> ModelVersion:
        """Store the bundle in `folder` (flavor files under `model/`) as a new version;
        `derived_from` (a version, a relation such as "optimized_from") is recorded as its
        lineage."""
        from fermion.entities import Signature

        check_name(name)
        digest, full, created = store_bundle(
            folder, manifest, self._storage.artifacts, self._scratch
        )
        try:
            version = self._store.add_version(
                NewModelVersion(
                    name=name,
                    content_hash=digest,
                    flavor=str(full["flavor"]),
                    signature=Signature.from_dict(full["signature"]),
                    run_id=run_id,
                    metrics=metrics,
                    origin=origin,
                    description=description,
                )
            )
        except BaseException:
            for blob in created:
                self._storage.artifacts.delete(blob)
            raise
        if run_id is not None:
            self._storage.lineage.add_edge(
                ("run", run_id), ("model_version", version.id), "produced"
            )
        if derived_from is not None:
            source, relation = derived_from
            self._storage.lineage.add_edge(
                ("model_version", source.id), ("model_version", version.id), relation
            )
        return version

    def get(self, ref: str | ModelRef) -> ModelVersion:
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if parsed.alias is not None:
            return self._store.get_by_alias(parsed.name, parsed.alias)
        return self._store.get_version(parsed.name, parsed.version)

    def list(self) -> builtins.list[ModelSummary]:
        return self._store.list_models()

    def versions(self, name: str) -> builtins.list[ModelVersion]:
        return self._store.list_versions(name)

    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str | None = None
    ) -> AliasEvent:
        """Point `alias` at `version`, atomically; the move is recorded with who made it."""
        return self._store.set_alias(name, check_alias(alias), version, actor or _actor())

    def remove_alias(self, name: str, alias: str, *, actor: str | None = None) -> AliasEvent:
        return self._store.remove_alias(name, alias, actor or _actor())

    def history(self, name: str) -> builtins.list[AliasEvent]:
        return self._store.alias_history(name)

    def manifest(self, ref: str | ModelRef | ModelVersion) -> dict[str, Any]:
        version = ref if isinstance(ref, ModelVersion) else self.get(ref)
        return read_manifest(self._storage.artifacts, version.content_hash)

    def load(self, ref: str | ModelRef | ModelVersion, *, trusted: bool = False) -> Model:
        """A model taking raw rows. Pickle-based flavors of imported versions need
        `trusted=True`: they run code from the bundle when they load."""
        version = ref if isinstance(ref, ModelVersion) else self.get(ref)
        folder = materialize(self._storage.artifacts, version.content_hash, self._cache)
        return load_folder(folder, trusted=trusted or version.origin == "trained", version=version)

    def card(self, ref: str | ModelRef | ModelVersion) -> str:
        version = ref if isinstance(ref, ModelVersion) else self.get(ref)
        manifest = self.manifest(version)
        run = artifacts = None
        inputs: builtins.list[tuple[str, str]] = []
        if version.run_id is not None:
            try:
                run = self._storage.runs.get_run(version.run_id)
                artifacts = self._storage.runs.list_artifacts(version.run_id)
            except NotFoundError:
                run = None
            for edge in self._storage.lineage.parents("run", version.run_id):
                if edge.parent_kind == "dataset_version":
                    try:
                        data = self._storage.datasets.get_version_by_id(edge.parent_id)
                    except NotFoundError:
                        continue
                    inputs.append((f"{data.name}:{data.version}", edge.relation.split(":")[-1]))
        return model_card(version, manifest, run, inputs, artifacts or [])

    def export(self, ref: str | ModelRef, target: Path | str) -> Path:
        """Write one portable bundle: a tar with the manifest, files, card and checksums."""
        version = self.get(ref)
        folder = materialize(self._storage.artifacts, version.content_hash, self._cache)
        top = f"{version.name}-v{version.version}"
        return write_tar(folder, self.card(version), Path(target), top)

    def import_bundle(
        self, source: Path | str, *, name: str | None = None, description: str = ""
    ) -> ModelVersion:
        """Register a bundle made by `export`, after checking every path and checksum."""
        extracted, root, manifest = unpack_tar(Path(source).expanduser(), self._scratch)
        try:
            target = name or str(manifest.get("name") or "")
            if not target:
                from fermion.errors import InvalidInputError

                raise InvalidInputError("the bundle names no model: pass a name to import it as")
            from fermion.registry.flavors import get_flavor

            get_flavor(str(manifest.get("flavor")))  # an unknown flavor could never load
            manifest = {k: v for k, v in manifest.items() if k not in ("files", "format")}
            return self.register(
                target,
                root,
                manifest,
                metrics=manifest.get("metrics"),
                description=description,
                origin="imported",
            )
        finally:
            shutil.rmtree(extracted, ignore_errors=True)


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
