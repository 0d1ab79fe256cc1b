"""Fault-suite fixtures: a moto server process of its own, so the chaos here never slows the
emulator other tests share (nor the other way round)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.emulator import MotoServer


@pytest.fixture(scope="session")
def fault_emulator() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server
