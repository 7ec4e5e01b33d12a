"""Reading `fermion.yaml`: PyYAML's safe loading, plus refusing duplicate keys (which PyYAML
silently resolves to the last one) and remembering where each mapping key sits in the file, so
that every error can point at a line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fermion.errors import InvalidInputError

KeyPath = tuple[Any, ...]
Position = tuple[int, int]

# A merge (`<<`) or value (`=`) key is not a key of its own mapping, so it cannot be a duplicate.
_SPECIAL_KEY_TAGS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")


@dataclass(frozen=True)
class Document:
    """A parsed YAML file: `data` as `yaml.safe_load` gives it, and the 1-based (line, column)
    of each mapping key, by its key path from the top (`("pipelines", "credit", "steps")`)."""

    path: Path
    data: Any
    positions: Mapping[KeyPath, Position]

    def where(self, *keys: Any) -> str:
        """`path:line:column` of the key at `keys`, or of its nearest located ancestor, or
        just the path when none is located: the prefix of an error message."""
        for end in range(len(keys), 0, -1):
            found = self.positions.get(keys[:end])
            if found is not None:
                return f"{self.path}:{found[0]}:{found[1]}"
        return str(self.path)


class _Loader(yaml.SafeLoader):
    """A safe loader that composes the node tree first, so that duplicate keys and key
    positions are read from the nodes before they become plain dicts."""

    def locate(self, root: yaml.Node, path: Path) -> dict[KeyPath, Position]:
        positions: dict[KeyPath, Position] = {}
        visited: set[int] = set()
        # Each node once: an alias then keeps its anchor's positions, and recursive or
        # heavily aliased documents cannot make the walk loop or blow up.
        pending: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
        while pending:
            node, at = pending.pop()
            if id(node) in visited:
                continue
            visited.add(id(node))
            if isinstance(node, yaml.MappingNode):
                pending.extend(reversed(self._keys(node, at, path, positions)))
            elif isinstance(node, yaml.SequenceNode):
                pending.extend((item, (*at, index)) for index, item in enumerate(node.value))
        return positions

    def _keys(
        self,
        node: yaml.MappingNode,
        at: KeyPath,
        path: Path,
        positions: dict[KeyPath, Position],
    ) -> list[tuple[yaml.Node, KeyPath]]:
        children: list[tuple[yaml.Node, KeyPath]] = []
        first: dict[Any, Position] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag in _SPECIAL_KEY_TAGS:
                children.append((value_node, (*at, None)))
                continue
            key = self.construct_object(key_node)
            mark = key_node.start_mark
            position = (mark.line + 1, mark.column + 1)
            if key in first:
                raise InvalidInputError(
                    f"{path}:{position[0]}:{position[1]}: duplicate key {key!r} "
                    f"(first at line {first[key][0]})"
                )
            first[key] = position
            positions[(*at, key)] = position
            children.append((value_node, (*at, key)))
        return children


def read_document(path: Path) -> Document:
    """Read and parse the YAML file at `path`, or raise `InvalidInputError` naming the file
    and, where the problem has one, its line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: cannot be read: {exc}") from None
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return Document(path, None, {})
        positions = loader.locate(root, path)
        return Document(path, loader.construct_document(root), positions)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "not valid YAML"
        raise InvalidInputError(f"{path}{at}: {problem}") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
