"""The bench's headline block: every key from the run's own results, medians and spreads
from its runs, goals judged, and figures a run lacks reported as missing with a reason."""

from __future__ import annotations

from typing import Any

from bench import headline


def _taskq_run(jobs_per_s: float, calls: float, wru: float) -> dict[str, Any]:
    return {
        "jobs_per_s": jobs_per_s,
        "calls": {"billable_per_job": calls},
        "capacity_per_job": {"wru": wru},
    }


def results() -> dict[str, Any]:
    return {
        "e2e": {
            "taskq": [
                _taskq_run(20.0, 4.4, 11.0),
                _taskq_run(18.0, 4.2, 11.0),
                _taskq_run(22.0, 4.3, 10.0),
            ],
            "ratio": {"runs": [0.8, 0.95, 0.9], "median": 0.9},
            "paced": {
                "taskq": {
                    "jobs": 60,
                    "offered_jobs_per_s": 10.0,
                    "latency_ms": {"p50": 50.0, "p99": 640.0},
                },
            },
        },
        "celery": {"jobs_per_s": 20.0},
        "cost": {
            "modes": {
                "POST /jobs, steady flow": {"per_million": {"total": 11.804}},
                "POST /jobs:batch (100), backlog": {"per_million": {"total": 2.5}},
            }
        },
        "cold_start": {
            "dependencies": {
                "api": {
                    "ratio": 1.1,
                    "import_ms_all": [110, 120, 100],
                    "dependencies_ms_all": [100, 100, 100],
                },
                "worker": {"ratio": 1.3, "import_ms_all": [130], "dependencies_ms_all": [100]},
            }
        },
        "batch_concurrency": {"io": {"sleep_async": {"billed_ratio": 4.6}}},
    }


def test_every_key_is_a_number_taken_from_the_runs() -> None:
    block = headline.compute(results())
    assert block["ratio_to_ceiling"] == 0.9
    assert block["spread"]["ratio_to_ceiling"] == [0.8, 0.95]
    assert block["runs"]["ratio_to_ceiling"] == 3
    assert block["ratio_to_celery"] == 1.0  # median of 20/20, 18/20, 22/20
    assert block["spread"]["ratio_to_celery"] == [0.9, 1.1]
    assert block["calls_per_job"] == 4.3
    assert block["wru_per_job"] == 11.0
    assert block["usd_per_million_single"] == 11.8
    assert block["usd_per_million_batch"] == 2.5
    assert (block["steady_p50_s"], block["steady_p99_s"]) == (0.05, 0.64)
    assert block["api_cold_ratio_to_deps"] == 1.1
    assert block["spread"]["api_cold_ratio_to_deps"] == [1.0, 1.2]
    assert block["worker_cold_ratio_to_deps"] == 1.3
    assert block["io_bound_speedup"] == 4.6
    assert set(headline.GOALS) <= set(block)


def test_celery_runs_alternated_with_taskq_are_paired_run_by_run() -> None:
    r = results()
    r["celery"] = {"jobs_per_s": 20.0, "ratio": {"runs": [1.2, None, 0.8, 1.0]}}
    block = headline.compute(r)
    assert block["ratio_to_celery"] == 1.0  # median of the pairs that both completed
    assert block["spread"]["ratio_to_celery"] == [0.8, 1.2]
    assert block["runs"]["ratio_to_celery"] == 3
    assert "alternated" in block["notes"]["ratio_to_celery"]


def test_goals_are_judged_both_ways() -> None:
    met = headline.compute(results())["met"]
    assert met["ratio_to_ceiling"] is True  # 0.9 >= 0.9
    assert met["wru_per_job"] is False
    assert met["usd_per_million_batch"] is True
    assert met["steady_p99_s"] is False
    assert met["worker_cold_ratio_to_deps"] is False
    assert "steady_p50_s" not in met  # no goal of its own


def test_a_figure_the_run_lacks_is_none_with_its_reason() -> None:
    r = results()
    r["celery"] = {"skipped": "celery is not installed"}
    del r["batch_concurrency"]
    block = headline.compute(r)
    assert block["ratio_to_celery"] is None
    assert "celery is not installed" in block["notes"]["ratio_to_celery"]
    assert block["met"]["ratio_to_celery"] is None
    assert block["io_bound_speedup"] is None
    assert "not measured" in block["notes"]["io_bound_speedup"]


def test_rows_show_every_goal_in_order() -> None:
    rows = headline.rows(headline.compute(results()))
    assert [row[0] for row in rows] == [f"`{key}`" for key in headline.GOALS]
    wru = next(row for row in rows if row[0] == "`wru_per_job`")
    assert wru[1:4] == ["11", "≤ 5", "**not met**"]
