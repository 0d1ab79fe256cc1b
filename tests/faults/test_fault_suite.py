"""The counted fault suite (see suite.py). `make test` runs a few hundred jobs; `make faults`
sets TASKQ_FAULT_JOBS=2000. TASKQ_FAULT_SEED replays a run's plan (the report prints its seed);
TASKQ_FAULT_DEADLINE_S overrides the deadline by which every job must be finished."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.emulator import MotoServer
from tests.faults.plan import SuiteConfig
from tests.faults.suite import FaultSuite

SMALL_RUN_JOBS = 300
CONFIG = SuiteConfig.from_env(default_jobs=SMALL_RUN_JOBS)

# The suite fails by itself at its deadline, listing what is unfinished; pytest's timeout only
# backs that up (start-up, the final quiet period and the accounting come on top).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(CONFIG.deadline_s + 120)]


def test_every_job_is_accounted_for_under_faults(
    fault_emulator: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = FaultSuite(fault_emulator.url, tmp_path, CONFIG).run()
    with capsys.disabled():
        print("\n" + report.text())
    assert not report.violations, "\n".join(report.violations[:40])
