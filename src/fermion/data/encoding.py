"""Telling a legacy single-byte encoding apart from its neighbours on a small sample.

charset_normalizer needs more text than a CSV's first lines often hold: on a short Western
sample it picks cp1250, gb18030 or cp775 for plain cp1252. So the common single-byte code
pages are scored here by how plausible the letters they decode to are, and charset_normalizer
suggests a candidate of its own (multi-byte Asian encodings) and breaks ties.
"""

from __future__ import annotations

import unicodedata

# In order of preference when two decode a sample equally well.
SINGLE_BYTE = ("cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1257")
MULTI_BYTE = ("shift_jis", "euc_jp", "gb18030", "big5", "euc_kr", "cp1255", "cp1256")


def mostly_utf8(sample: bytes) -> bool:
    """Whether a sample that is not valid UTF-8 is UTF-8 with a few bad bytes: its valid
    multi-byte characters clearly outnumber its bad bytes. In legacy text a valid sequence
    is a rare accident (cp1252 "ß" then a curly quote happens to be one)."""
    text = sample.decode("utf-8", errors="surrogateescape")
    bad = sum(1 for char in text if "\udc80" <= char <= "\udcff")
    good = sum(1 for char in text if char >= "\x80") - bad
    return good >= 2 * max(bad, 1)


def guess_legacy_encoding(sample: bytes) -> str | None:
    """The likeliest legacy encoding of `sample` (not UTF-8), or None if nothing decodes it.

    Each candidate (the common single-byte code pages, plus charset_normalizer's pick) is
    scored by `_plausibility`. Encodings that tie read the sample's letters alike; then
    cp1252 wins, the commonest, else charset_normalizer's pick, else the earlier in
    SINGLE_BYTE.
    """
    from charset_normalizer import from_bytes

    match = from_bytes(sample, cp_isolation=[*SINGLE_BYTE, *MULTI_BYTE]).best()
    suggested = str(match.encoding) if match is not None else None
    scores: dict[str, int] = {}
    for encoding in dict.fromkeys([*SINGLE_BYTE, *filter(None, [suggested])]):
        try:
            scores[encoding] = _plausibility(sample.decode(encoding), encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    if not scores:
        return None
    top = max(scores.values())
    tied = [encoding for encoding, score in scores.items() if score == top]
    if "cp1252" in tied:  # by far the commonest; a tie means the sample reads the same
        return "cp1252"
    return suggested if suggested in tied else tied[0]


def _script(char: str) -> str:
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else ""


def _plausibility(text: str, encoding: str) -> int:
    """+1 for each non-ASCII letter that sits as real words put it, -1 for each that does
    not, -1 for a symbol glued to a letter, -2 for each control character; each weighed by
    its bytes in `encoding`, so that a multi-byte encoding is not outvoted by a code page
    that reads its bytes as more letters.

    Code pages whose letters differ only in which accents they carry (cp1250 "ň" is cp1252
    "ò") score alike: such a sample reads as cp1252, and `encoding=` sets it right.

    A Latin accented letter belongs beside ASCII letters ("café"); three in a row are what
    Cyrillic or Greek bytes look like through a Western code page ("Ìîñêâà"). A letter of
    another script belongs beside letters of its own script, not beside ASCII ones.
    """
    score = 0
    for i, char in enumerate(text):
        if char < "\x80":
            continue
        weight = len(char.encode(encoding, errors="replace"))
        if unicodedata.category(char) in ("Cc", "Cs"):
            score -= 2 * weight
            continue
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        if not char.isalpha():
            # a currency or other symbol glued to a letter ("£ódŸ") is a misread letter
            if unicodedata.category(char).startswith("S") and (before.isalpha() or after.isalpha()):
                score -= weight
            continue
        script = _script(char)
        if script == "LATIN":
            ascii_beside = (before.isascii() and before.isalpha()) or (
                after.isascii() and after.isalpha()
            )
            crowded = (
                not before.isascii()
                and before.isalpha()
                and not after.isascii()
                and (after.isalpha())
            )
            score += weight if ascii_beside else -weight if crowded else 0
        else:
            same = any(_script(c) == script for c in (before, after) if c.isalpha())
            ascii_beside = any(c.isascii() and c.isalpha() for c in (before, after))
            score += weight if same and not ascii_beside else -weight if ascii_beside else 0
    return score
