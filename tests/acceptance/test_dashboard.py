"""The dashboard in a real browser: headless Chromium (Debian's package) driven by
Playwright, against the dashboard served on a loopback port over a real stack (moto's
server, the real worker), as an operator clicks through it.

One stack, one dashboard and one browser for the module; each test gets a fresh page
whose console errors fail it. Screenshots of the main pages go to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.emulator import MotoServer
from taskq.cli.context import settings_from
from taskq.dashboard import create_app
from taskq.dashboard.server import DashboardThread, bind
from taskq.dlq import DeadLetters
from taskq.jobs import JobService
from taskq.models import JobRequest, Status
from taskq.wiring import build
from tests.acceptance.conftest import ROOT, Ran, Stack, open_stack, run_taskq

CHROMIUM = os.environ.get("TASKQ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
INSTALL = "browser tests need Chromium: sudo apt-get install -y chromium"
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):  # CI installs it (.ci/run): missing there is a failure
        pytest.fail(f"{INSTALL} (CI must run them)", pytrace=False)
    pytest.skip(INSTALL, allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

SHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
ACTOR = "acceptance (taskq dashboard)"
# The example tasks add a periodic schedule (tidy), so /schedules has one to show.
TASK_MODULES = "taskq.demo_tasks,tasks.example"


@dataclass
class Dashboard:
    url: str
    jobs: JobService
    dead: DeadLetters
    stack: Stack

    def submit(self, task: str, payload: dict[str, Any], **options: Any) -> str:
        tenant = options.pop("tenant", "default")
        request = JobRequest(task=task, payload=payload, **options)
        return self.jobs.submit(request, tenant=tenant).job.id


@pytest.fixture(scope="module")
def stack(moto_server: MotoServer) -> Iterator[Stack]:
    """Its workers run the example tasks too (import_rows reports progress and lines)."""
    with open_stack(moto_server, TaskModules=TASK_MODULES) as running:
        yield running


@pytest.fixture(scope="module")
def dashboard(stack: Stack) -> Iterator[Dashboard]:
    """The dashboard as `taskq dashboard` builds it, from the operator's environment."""
    credentials = {
        "AWS_ACCESS_KEY_ID": stack.env.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": stack.env.get("AWS_SECRET_ACCESS_KEY", "testing"),
    }
    with pytest.MonkeyPatch.context() as env:
        for name, value in credentials.items():
            env.setenv(name, value)
        services = build(settings_from({**stack.env, "TASKQ_TASK_MODULES": TASK_MODULES}))
        sock = bind("127.0.0.1", 0)
        port = int(sock.getsockname()[1])
        app = create_app(services, actor=ACTOR, port=port, stack_label="acceptance")
        with DashboardThread(app, sock):
            yield Dashboard(
                f"http://127.0.0.1:{port}",
                services.jobs,
                DeadLetters(services.store, services.queue),
                stack,
            )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab; any console error or uncaught script error fails the test."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda dialog: dialog.accept())  # data-confirm's questions: yes
    yield page
    context.close()
    assert not errors, f"console errors: {errors}"


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def taskq_stats(stack: Stack) -> dict[str, int]:
    ran: Ran = run_taskq("stats", "--json", env=stack.env)
    assert ran.code == 0, ran.err
    counts: dict[str, int] = ran.json()["jobs"]
    return counts


def test_overview_counts_match_the_cli_and_refresh(page: Page, dashboard: Dashboard) -> None:
    ids = [dashboard.submit("echo", {"message": f"hello {n}"}) for n in range(3)]
    dashboard.stack.wait_status(ids, Status.COMPLETED)
    page.goto(dashboard.url + "/")
    shown = {
        cell.get_attribute("data-count") or "": int(cell.inner_text())
        for cell in page.locator("[data-count]").all()
    }
    assert shown == taskq_stats(dashboard.stack)
    assert shown["completed"] >= 3
    assert page.locator(".line.submitted").get_attribute("points")
    assert int(page.locator("[data-total=completed]").inner_text()) >= 3
    # The live part is read again within the refresh period, with no reload.
    page.wait_for_selector("#live[data-updated]", timeout=8_000)
    shot(page, "overview")
    page.set_viewport_size(PHONE)
    shot(page, "overview-phone")


def test_filters_and_paging(page: Page, dashboard: Dashboard) -> None:
    ids = [dashboard.submit("echo", {"message": "p"}, tenant="pager") for _ in range(7)]
    dashboard.stack.wait_status(ids, Status.COMPLETED)
    page.goto(dashboard.url + "/jobs")
    form = page.locator("#filters")
    form.locator("select[name=status]").select_option("completed")
    form.locator("input[name=tenant]").fill("pager")
    form.locator("input[name=limit]").fill("3")
    form.locator("button[type=submit]").click()
    seen: list[str] = []
    for expected in (3, 3, 1):
        rows = page.locator("#jobs tbody tr[data-job]")
        assert rows.count() == expected
        seen += [r.get_attribute("data-job") or "" for r in rows.all()]
        assert all(s == "completed" for s in page.locator("#jobs .badge").all_inner_texts())
        if expected == 3:
            page.locator("#next-page").click()
    assert page.locator("#next-page").count() == 0
    assert sorted(seen) == sorted(ids)  # each job once, none of another tenant
    assert "tenant=pager" in page.url and "status=completed" in page.url  # shareable
    page.locator("#lookup input[name=q]").fill(ids[0])
    page.locator("#lookup button").click()
    assert page.url.endswith(f"/jobs/{ids[0]}")


@pytest.fixture(scope="module")
def failed_job(dashboard: Dashboard) -> str:
    """Fails twice (its whole budget) into the DLQ; the third run, after a redrive, succeeds."""
    job_id = dashboard.submit("fail", {"times": 2}, max_attempts=2)
    dashboard.stack.wait_status([job_id], Status.FAILED)
    dashboard.stack.wait_dlq_visible(1)
    return job_id


def test_a_failed_jobs_timeline_shows_its_attempts(
    page: Page, dashboard: Dashboard, failed_job: str
) -> None:
    page.goto(f"{dashboard.url}/jobs/{failed_job}")
    assert page.locator("#job-status").inner_text() == "failed"
    events = page.locator("#timeline li")
    kinds = [e.get_attribute("data-kind") for e in events.all()]
    assert kinds.count("running") == 2
    assert kinds[-1] == "failed"
    running = page.locator("#timeline li[data-kind=running]")
    assert [r.get_attribute("data-attempt") for r in running.all()] == ["1", "2"]
    retry = page.locator("#timeline li[data-kind=retrying]")
    assert "planned failure 1 of 2" in retry.inner_text()
    assert re.search(r"next try in \d+ s", retry.inner_text())
    assert "planned failure 2 of 2" in page.locator("#error").inner_text()
    assert page.locator("#redrive").is_visible()
    shot(page, "job-failed")


def test_redrive_from_the_dlq_brings_the_job_back(
    page: Page, dashboard: Dashboard, failed_job: str
) -> None:
    page.goto(dashboard.url + "/dlq")
    row = page.locator(f"#dlq tr[data-job='{failed_job}']")
    assert "planned failure 2 of 2" in row.inner_text()
    shot(page, "dlq")
    row.locator("input[name=id]").check()
    page.locator("#preview-redrive").click()
    preview = page.locator(f"#outcomes tr[data-action=redriven] a[href='/jobs/{failed_job}']")
    expect(preview).to_have_count(1)  # waits for the page the click loads
    assert dashboard.jobs.get(failed_job).status == Status.FAILED  # a preview changes nothing
    shot(page, "dlq-preview")
    page.locator("#confirm").click()
    assert "redriven 1" in page.locator("#summary").inner_text()
    job = dashboard.stack.wait_status([failed_job], Status.COMPLETED)[failed_job]
    redriven = [e for e in job.events if e.kind == "redriven"]
    assert redriven and ACTOR in (redriven[-1].detail or "")
    assert dashboard.stack.dlq_depth() == {"visible": 0, "in_flight": 0, "delayed": 0}
    page.goto(dashboard.url + "/dlq")
    assert page.locator("#dlq-empty").is_visible()


def test_the_job_pages_redrive_button_brings_it_back(page: Page, dashboard: Dashboard) -> None:
    job_id = dashboard.submit("fail", {"times": 2}, max_attempts=2)
    dashboard.stack.wait_status([job_id], Status.FAILED)
    dashboard.stack.wait_dlq_visible(1)
    page.goto(f"{dashboard.url}/jobs/{job_id}")
    page.locator("#redrive").click()
    # The answer is the same URL: wait for the new page's timeline, not the old one's.
    expect(page.locator("#timeline li[data-kind=redriven]")).to_have_count(1)
    assert page.url.endswith(f"/jobs/{job_id}")
    assert ACTOR in page.locator("#timeline li[data-kind=redriven]").inner_text()
    dashboard.stack.wait_status([job_id], Status.COMPLETED)
    page.reload()
    assert page.locator("#job-status").inner_text() == "completed"
    assert dashboard.stack.dlq_depth() == {"visible": 0, "in_flight": 0, "delayed": 0}


def test_purge_asks_for_confirmation_then_deletes(page: Page, dashboard: Dashboard) -> None:
    doomed = dashboard.submit("fail", {"times": 9}, max_attempts=1)
    dashboard.stack.wait_status([doomed], Status.FAILED)
    dashboard.stack.wait_dlq_visible(1)
    page.goto(dashboard.url + "/dlq")
    page.locator("#select-all").check()
    page.locator("#preview-purge").click()
    expect(page.locator("#outcomes tr[data-action=purged]")).to_have_count(1)
    assert dashboard.stack.dlq_depth()["visible"] == 1  # asked, not done
    confirm = page.locator("#confirm")
    assert confirm.inner_text() == "Delete 1 message(s) for good"
    confirm.click()
    assert "purged 1" in page.locator("#summary").inner_text()
    assert dashboard.stack.dlq_depth()["visible"] == 0
    job = dashboard.jobs.get(doomed)
    assert job.status == Status.FAILED  # a purge leaves the job as it was
    assert job.events[-1].kind == "dlq-purged" and ACTOR in (job.events[-1].detail or "")


def test_a_cross_origin_replay_is_refused(browser: Browser, dashboard: Dashboard) -> None:
    waiting = dashboard.submit("echo", {"message": "later"}, delay_s=600)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{dashboard.url}/jobs/{waiting}")
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    # Another site's page posts the dashboard's own form, with this session's real token.
    evil = "http://evil.test/"
    form = (
        f'<form id="f" method="post" action="{dashboard.url}/jobs/{waiting}/cancel">'
        f'<input name="csrf" value="{csrf}"></form>'
    )
    page.route(evil, lambda route: route.fulfill(content_type="text/html", body=form))
    page.goto(evil)
    with page.expect_response(f"{dashboard.url}/jobs/{waiting}/cancel") as answer:
        page.evaluate("document.getElementById('f').submit()")
    assert answer.value.status == 403
    # The same request from a script with this browser's cookies, naming another origin.
    replay = context.request.post(
        f"{dashboard.url}/jobs/{waiting}/cancel",
        form={"csrf": csrf or ""},
        headers={"Origin": "http://evil.test"},
        max_redirects=0,
    )
    assert replay.status == 403
    assert dashboard.jobs.get(waiting).status == Status.SCHEDULED
    context.close()


def test_a_script_payload_is_shown_as_text(page: Page, dashboard: Dashboard) -> None:
    hostile = "<script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"
    job_id = dashboard.submit("echo", {"message": hostile})
    page.goto(f"{dashboard.url}/jobs/{job_id}")
    assert hostile in page.locator("#payload").inner_text()
    assert page.evaluate("window.pwned") is None


def test_a_jobs_progress_and_log_lines_show_on_its_page(page: Page, dashboard: Dashboard) -> None:
    job_id = dashboard.submit("import_rows", {"rows": 10, "step_s": 0.2})
    dashboard.stack.wait_status([job_id], Status.COMPLETED)
    page.goto(f"{dashboard.url}/jobs/{job_id}")
    assert page.locator("#progress progress").get_attribute("value") == "100"
    assert "index the rows" in page.locator("#progress").inner_text()
    lines = page.locator("#log-lines li")
    assert [line.get_attribute("data-attempt") for line in lines.all()] == ["1"] * 4
    texts = [line.inner_text() for line in lines.all()]
    assert [t.split("#1 ", 1)[1] for t in texts] == [
        "step 1/4: read the file",
        "step 2/4: check the rows",
        "step 3/4: write the rows",
        "step 4/4: index the rows",
    ]
    shot(page, "job-progress")


def test_cancel_from_the_job_page(page: Page, dashboard: Dashboard) -> None:
    waiting = dashboard.submit("echo", {"message": "later"}, delay_s=600)
    page.goto(f"{dashboard.url}/jobs/{waiting}")
    page.locator("#cancel").click()
    expect(page.locator("#job-status")).to_have_text("cancelled")  # the reloaded page's
    last = page.locator("#timeline li").last
    assert last.get_attribute("data-kind") == "cancelled" and ACTOR in last.inner_text()


def test_schedules_pause_and_resume(page: Page, dashboard: Dashboard) -> None:
    page.goto(dashboard.url + "/schedules")
    row = page.locator("#schedules tr[data-schedule]").first
    name = row.get_attribute("data-schedule")
    assert row.locator("td").nth(4).inner_text().strip()  # next fire times are shown
    row.locator("button", has_text="Pause").click()
    row = page.locator(f"#schedules tr[data-schedule='{name}']")
    expect(row).to_contain_text("paused")  # the reloaded page's row
    assert ACTOR in row.inner_text()
    shot(page, "schedules")
    row.locator("button", has_text="Resume").click()
    expect(page.locator(f"#schedules tr[data-schedule='{name}']")).to_contain_text("active")


def test_every_page_renders_without_console_errors(page: Page, dashboard: Dashboard) -> None:
    for path in ("/", "/jobs", "/jobs?status=failed", "/dlq", "/schedules"):
        answer = page.goto(dashboard.url + path)
        assert answer is not None and answer.status == 200, path
    page.goto(dashboard.url + "/jobs")
    shot(page, "jobs")
