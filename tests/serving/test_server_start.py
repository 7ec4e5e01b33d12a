"""Start-up of `fermion.serve()`: no garbage collections until the models have loaded, and
collections back on afterwards, whichever way start-up ends."""

from __future__ import annotations

import gc

import pytest

from fermion.serving.server import _StartingHeap


def test_collections_resume_when_the_models_have_loaded() -> None:
    seen: list[tuple[object, bool]] = []
    with _StartingHeap() as heap:
        assert not gc.isenabled()
        ready = heap.until_ready(lambda state: seen.append((state, gc.isenabled())))
        ready("state")
        assert gc.isenabled()
    assert seen == [("state", True)]
    assert gc.isenabled()


def test_a_server_that_ends_while_starting_turns_collections_back_on() -> None:
    with pytest.raises(RuntimeError), _StartingHeap():
        raise RuntimeError("the port is taken")
    assert gc.isenabled()


def test_collections_the_caller_turned_off_stay_off() -> None:
    gc.disable()
    try:
        with _StartingHeap() as heap:
            heap.until_ready(None)(object())
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
