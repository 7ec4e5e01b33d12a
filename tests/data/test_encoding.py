"""Sniffing the encoding of a CSV sample that is not UTF-8."""

from __future__ import annotations

from pathlib import Path

import pytest

from fermion.data.sniff import sniff_encoding
from fermion.errors import InvalidInputError

SAMPLES = {
    "price": ("name,price\nJosé,5€\n", "cp1252"),
    "quotes": ("a,b\n“hi”,1\n", "cp1252"),
    "street": ("1,Er wohnt in der „Hauptstraße“\n", "cp1252"),
    "spass": ("id,text\n1,Das macht „Spaß“\n", "cp1252"),
    "apostrophe": ("id,t\n1,MÜLLER\u2019S\n", "cp1252"),
    "french": ("nom,ville\nFrançois,Orléans\nRenée,Besançon\n", "cp1252"),
    "portuguese": ("nome,cidade\nJoão,São Paulo\n", "cp1252"),
    "polish": ("id,miasto\n1,Łódź\n2,Gdańsk\n3,Kraków\n", "cp1250"),
    "russian": ("id,имя\n1,Москва\n2,Санкт-Петербург\n", "cp1251"),
    "greek": ("id,πόλη\n1,Αθήνα\n2,Θεσσαλονίκη\n", "cp1253"),
    "japanese": ("id,都市\n1,東京\n2,大阪\n", "shift_jis"),
    "chinese": ("id,城市\n1,北京\n2,上海\n", "gb18030"),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_legacy_samples_decode_to_their_text(name: str) -> None:
    text, encoding = SAMPLES[name]
    sample = text.encode(encoding)
    guessed = sniff_encoding(sample, Path(f"{name}.csv"), complete=True)
    assert sample.decode(guessed) == text


def test_western_text_is_named_cp1252() -> None:
    sample = "nom,ville\nFrançois,Orléans\n".encode("cp1252")
    assert sniff_encoding(sample, Path("f.csv"), complete=True) == "cp1252"


def test_utf8_with_a_bad_byte_is_refused_with_its_line() -> None:
    sample = "id,name\n1,café\n2,naïve\n3,".encode() + b"bad\xff\n"
    with pytest.raises(InvalidInputError, match=r"line 4 is not valid UTF-8"):
        sniff_encoding(sample, Path("mu.csv"), complete=True)
