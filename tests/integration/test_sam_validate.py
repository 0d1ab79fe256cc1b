"""`sam validate --lint` and cfn-lint accept template.yaml; the events are what sam generates.

Also pins down why tests/unit/test_template_invariants.py exists: the linters accept a
misspelt `ReportBatchItemFailure` and a `python3.99` runtime.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.sam_cli import REGION, ROOT, require_sam, run_sam

pytestmark = pytest.mark.sam
SAM = require_sam()


def test_sam_validate_lint_accepts_the_template() -> None:
    done = run_sam(SAM, "validate", "--lint", "--region", REGION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is a valid SAM Template" in done.stdout + done.stderr


def test_cfn_lint_accepts_the_template() -> None:
    cfn_lint = Path(SAM).with_name("cfn-lint")
    done = subprocess.run(
        [str(cfn_lint), "template.yaml"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_linters_accept_what_the_invariant_tests_must_catch(tmp_path: Path) -> None:
    text = (ROOT / "template.yaml").read_text()
    broken = text.replace("[ReportBatchItemFailures]", "[ReportBatchItemFailure]").replace(
        "Runtime: python3.11", "Runtime: python3.99"
    )
    assert broken != text
    (tmp_path / "template.yaml").write_text(broken)
    done = run_sam(SAM, "validate", "--lint", "--region", REGION, cwd=tmp_path)
    assert done.returncode == 0, "sam validate --lint now catches these: the invariants may go"


def test_the_checked_in_events_are_what_sam_generates() -> None:
    done = subprocess.run(
        [sys.executable, "tests/events/generate.py", "--sam", SAM, "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
