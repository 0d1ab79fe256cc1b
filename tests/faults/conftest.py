"""Fault-suite fixtures: a moto server process of its own, so the chaos here never slows the
emulator other tests share (nor the other way round). Its log is kept in the session's
temporary directory: when the emulator itself fails, that is where it says why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.emulator import MotoServer


@pytest.fixture(scope="session")
def fault_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    log = tmp_path_factory.mktemp("emulator") / "moto.log"
    with MotoServer(log_path=log) as server:
        yield server
