"""Shared integration fixtures: one real moto server process for the whole session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from infra.emulator import MotoServer
from infra.localstack import TEST_ENDPOINT_ENV, ExternalEndpoint


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer | ExternalEndpoint]:
    """moto's server on a free loopback port; stopped (by pid) at the end of the session.

    `make test-localstack` sets TASKQ_TEST_ENDPOINT: the suite then uses that endpoint.
    """
    external = os.environ.get(TEST_ENDPOINT_ENV)
    with ExternalEndpoint(external) if external else MotoServer() as server:
        yield server


@pytest.fixture
def stage() -> str:
    """A Stage value unique to the test, so tests can share the one emulator."""
    return f"t{uuid.uuid4().hex[:8]}"


# The template's production default requires API keys; tests that are not about keys run
# the stack as `make dev` does (AuthMode=off). Tests about keys pass AuthMode=required.
NO_AUTH = {"AuthMode": "off"}
