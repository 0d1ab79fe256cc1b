"""The bench pairs each taskq end-to-end run with the Celery run after it, so the ratio
the headline judges is a median of alternated pairs, not of one Celery run."""

from __future__ import annotations

from typing import Any

from bench.main import _celery_summary


def _run(jobs_per_s: float | None, **extra: Any) -> dict[str, Any]:
    return {"jobs_per_s": jobs_per_s, "latency_ms": {"p50": jobs_per_s}, **extra}


def test_each_pair_is_a_ratio_and_the_median_run_is_shown() -> None:
    taskq = [_run(20.0), _run(30.0), _run(24.0)]
    celery = [_run(25.0), _run(20.0), _run(16.0)]
    summary = _celery_summary(celery, taskq, "")
    assert summary["ratio"]["runs"] == [0.8, 1.5, 1.5]
    assert summary["taskq_ratio"] == 1.5
    assert summary["jobs_per_s"] == 20.0  # the middle Celery run, with its latency
    assert summary["latency_ms"] == {"p50": 20.0}
    assert summary["jobs_per_s_runs"] == [25.0, 20.0, 16.0]
    assert summary["taskq_jobs_per_s"] == 24.0


def test_a_failed_celery_run_drops_only_its_pair() -> None:
    taskq = [_run(20.0), _run(30.0)]
    celery = [{"skipped": "Celery run failed: TimeoutError: "}, _run(15.0)]
    summary = _celery_summary(celery, taskq, "")
    assert summary["ratio"]["runs"] == [None, 2.0]
    assert summary["taskq_ratio"] == 2.0


def test_no_completed_run_says_why() -> None:
    failed = [{"skipped": "Celery run failed: OSError: no broker"}]
    assert _celery_summary(failed, [_run(20.0)], "") == {
        "skipped": "Celery run failed: OSError: no broker"
    }
    assert _celery_summary([], [_run(20.0)], "Celery is not installed") == {
        "skipped": "Celery is not installed"
    }
