"""The bench's PNG chart: throughput and latency at a glance, one panel per kind of run.

matplotlib is an optional dependency (`.[bench]`), so it is imported only when the chart is
drawn, and its absence is reported rather than raised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import _n


def chart(r: dict[str, Any], path: Path) -> str | None:
    """A PNG of throughput and latency; returns why not, when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    _submit_panel(axes[0][0], r)
    _end_to_end_panel(axes[0][1], r)
    _latency_panel(axes[1][0], r)
    _scaling_panel(axes[1][1], r)
    m = r["machine"]
    fig.suptitle(
        f"taskq bench, {r['started']}, {m['cpu']} x{m['cores']}, load {m['load_before']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _submit_panel(ax: Any, r: dict[str, Any]) -> None:
    """Submit rates by client count, on a log scale: the batch endpoint is far above."""
    sub = r.get("submit", {}).get("single", [])
    if not sub:
        return
    levels = [s["concurrency"] for s in sub]
    ax.plot(levels, [s["jobs_per_s"] or 0 for s in sub], "o-", label="taskq POST /jobs")
    ax.plot(levels, [s["ceiling_jobs_per_s"] or 0 for s in sub], "s--", label="raw calls (ceiling)")
    for b in r["submit"].get("batch", []):
        ax.scatter(
            [b["concurrency"]],
            [b["jobs_per_s"] or 0],
            marker="^",
            s=60,
            label=f"POST /jobs:batch x{b['batch_size']} ({b['concurrency']} clients)",
        )
    ax.set_yscale("log")
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("jobs/s (log)")
    ax.set_title("Submit throughput")
    ax.legend(fontsize=7)


def _end_to_end_panel(ax: Any, r: dict[str, Any]) -> None:
    """Each end-to-end run's rate side by side, so run-to-run drift shows."""
    e2e = r.get("e2e")
    if not e2e:
        return
    names, values = [], []
    for i, (t, c) in enumerate(zip(e2e["taskq"], e2e["ceiling"], strict=False), 1):
        names += [f"taskq #{i}", f"ceiling #{i}"]
        values += [t["jobs_per_s"] or 0, c["jobs_per_s"] or 0]
    if e2e.get("other_window", {}).get("jobs_per_s"):
        names.append(f"taskq, window {e2e['other_window']['window_s']:g}")
        values.append(e2e["other_window"]["jobs_per_s"])
    celery = r.get("celery", {})
    if celery.get("jobs_per_s"):
        names.append("Celery")
        values.append(celery["jobs_per_s"])
    ax.bar(
        names,
        values,
        color=[
            "C0" if n.startswith("taskq") else "C1" if n.startswith("ceil") else "C2" for n in names
        ],
    )
    ax.set_ylabel("jobs/s")
    ax.set_title(f"End to end (ratio taskq/ceiling {_n(e2e['ratio']['median'], 2)})")
    ax.tick_params(axis="x", labelsize=8)


def _latency_panel(ax: Any, r: dict[str, Any]) -> None:
    """Latency percentiles, saturated and steady: saturation's include queueing."""
    e2e = r.get("e2e")
    if not e2e:
        return
    series = [
        ("taskq (saturated)", e2e["taskq"][0]["latency_ms"]),
        ("ceiling (saturated)", e2e["ceiling"][0]["latency_ms"]),
    ]
    if e2e.get("paced"):
        series += [
            ("taskq (steady)", e2e["paced"]["taskq"]["latency_ms"]),
            ("ceiling (steady)", e2e["paced"]["ceiling"]["latency_ms"]),
        ]
    if r.get("celery", {}).get("latency_ms"):
        series.append(("Celery (saturated)", r["celery"]["latency_ms"]))
    width = 0.8 / len(series)
    for i, (label, stats) in enumerate(series):
        xs = [j + i * width for j in range(3)]
        ax.bar(xs, [stats.get(p, 0) for p in ("p50", "p95", "p99")], width, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(3)], ["p50", "p95", "p99"])
    ax.set_ylabel("ms, submit → completed")
    ax.set_title("Latency")
    ax.legend(fontsize=7)


def _scaling_panel(ax: Any, r: dict[str, Any]) -> None:
    """Drain rate by poller concurrency, one line per batch size."""
    scaling = r.get("scaling")
    if not scaling:
        return
    for batch in sorted({s["batch_size"] for s in scaling}):
        rows = [s for s in scaling if s["batch_size"] == batch]
        ax.plot(
            [s["concurrency"] for s in rows],
            [s["jobs_per_s"] or 0 for s in rows],
            "o-",
            label=f"batch size {batch}",
        )
    ax.set_ylim(bottom=0)
    ax.set_xlabel("poller maximum concurrency")
    ax.set_ylabel("jobs/s (draining a backlog)")
    ax.set_title("Scaling the worker")
    ax.legend(fontsize=8)
