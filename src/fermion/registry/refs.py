"""Model references: `credit` (latest), `credit:3` (a version), `credit@production` (an alias)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fermion.entities.dataset import check_name
from fermion.errors import InvalidInputError

_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def check_alias(alias: str) -> str:
    if not _ALIAS.match(alias) or alias.isdigit():
        raise InvalidInputError(
            f"invalid alias {alias!r}: use letters, digits, '_' or '-', starting with a letter"
        )
    return alias


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(check_name(name), alias=check_alias(alias))
        name, sep, version = text.partition(":")
        check_name(name)
        if not sep:
            return cls(name)
        if not version.isdigit() or int(version) < 1:
            raise InvalidInputError(
                f"invalid model reference {text!r}: use NAME, NAME:VERSION or NAME@ALIAS, "
                "e.g. credit:2 or credit@production"
            )
        return cls(name, int(version))

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name if self.version is None else f"{self.name}:{self.version}"
