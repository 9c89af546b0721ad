"""The admin in a real browser: headless Chromium (Debian's package) driven by Playwright."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from tests.conftest import skip_or_fail
from tests.django.testapp import tasks

CHROMIUM = os.environ.get("TASKYARD_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Any:
    # Playwright's sync API keeps an event loop in this thread; the test's ORM calls are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not os.path.exists(CHROMIUM):
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install playwright)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_admin_lists_tasks_and_retries_one(page: Any, live_server: Any, staff: Any) -> None:
    from taskyard.contrib.django.models import Task
    from taskyard.contrib.django.testing import run_until_empty

    failed = tasks.django_fails.enqueue()
    ok = tasks.django_add.enqueue(1, 2)
    run_until_empty()
    assert Task.objects.get(id=failed.id).status == "FAILED"

    page.goto(f"{live_server.url}/admin/login/?next=/admin/taskyard/task/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/taskyard/task/")
    listing = page.content()
    assert failed.id in listing and ok.id in listing
    assert "FAILED" in listing and "SUCCESSFUL" in listing

    page.click(f"a[href$='/{failed.id}/change/']")
    page.wait_for_selector("text=broken on purpose")  # the traceback on the detail page
    page.go_back()
    page.wait_for_load_state("load")

    page.check(f"input[name=_selected_action][value='{failed.id}']")
    page.select_option("select[name=action]", "retry_tasks")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert "1 task(s) queued again" in page.content()
    assert Task.objects.get(id=failed.id).status == "READY"
