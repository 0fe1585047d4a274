"""The console in a real headless chromium (Debian's, through chromedriver): log in with the
form, each page shows the seeded numbers, and pause/resume by clicking. One browser session for
the module, on the module's seeded console.
"""

from __future__ import annotations

from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from ops.console.shots import log_in
from tests.fixtures.console import OPERATOR_TOKEN, SeededConsole
from worker.core.states import OrderState
from worker.store.breaker import Breaker

pytestmark = pytest.mark.integration

WAIT_S = 10.0


@pytest.fixture(scope="module")
def browser(chromium: Any, seeded_console: SeededConsole) -> Any:
    """The module's chromium, logged in through the form as `alice` (operator)."""
    log_in(chromium, seeded_console.url, OPERATOR_TOKEN)
    return chromium


def text(browser: Any, css: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def test_overview_shows_the_seeded_numbers(browser: Any, seeded_console: SeededConsole) -> None:
    """After logging in, the overview shows each state's count and the dead letters."""
    browser.get(seeded_console.url + "/")
    seeded = seeded_console.seeded
    for state in (OrderState.DEAD, OrderState.RETRY_WAIT, OrderState.SUBMITTED):
        cell = f'#orders-by-state td[data-state="{state}"]'
        assert text(browser, cell) == str(seeded.states[state])
    assert text(browser, "#hour-received") == str(sum(seeded.states.values()))
    assert "alice" in text(browser, "header .who")


def test_each_page_loads(browser: Any, seeded_console: SeededConsole) -> None:
    """Orders, backlog, dead letters (list and entry) and alerts load with their rows."""
    url, seeded = seeded_console.url, seeded_console.seeded
    browser.get(url + "/backlog?state=retry_wait")
    rows = browser.find_elements(By.CSS_SELECTOR, "#order-rows tr[data-key]")
    assert len(rows) == seeded.states[OrderState.RETRY_WAIT]
    browser.get(url + "/orders?prefix=shop-c%3A")
    keys = [
        r.get_attribute("data-key") for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-key]")
    ]
    assert keys and all(k.startswith("shop-c:") for k in keys)
    browser.get(url + "/dead-letters?reason=rejected")
    rows = browser.find_elements(By.CSS_SELECTOR, "#dead-rows tr[data-key]")
    assert rows
    rows[0].find_element(By.TAG_NAME, "a").click()
    assert text(browser, "#dead-reason") == "rejected"
    assert browser.find_element(By.ID, "raw").get_attribute("value")  # the edit box is filled
    browser.get(url + "/alerts")
    assert browser.find_elements(By.CSS_SELECTOR, "#alert-rows tr[data-alert]")


def test_pause_and_resume_by_clicking(browser: Any, seeded_console: SeededConsole) -> None:
    """Clicking Pause (and confirming) pauses the fleet's breaker; Resume closes it again."""
    breaker = Breaker(seeded_console.client, seeded_console.keys, probe_s=1)
    browser.get(seeded_console.url + "/")
    wait = WebDriverWait(browser, WAIT_S)
    browser.find_element(By.ID, "pause").click()
    wait.until(expected_conditions.alert_is_present()).accept()
    wait.until(lambda b: b.find_elements(By.ID, "resume"))
    assert breaker.state().state == "paused"
    assert text(browser, "#breaker-state") == "paused"
    browser.find_element(By.ID, "resume").click()
    wait.until(expected_conditions.alert_is_present()).accept()
    wait.until(lambda b: b.find_elements(By.ID, "pause"))
    assert breaker.state().state == "closed"


def test_bulk_replay_job_started_and_cancelled_by_clicking(
    browser: Any, seeded_console: SeededConsole
) -> None:
    """The jobs page estimates a filter (the dry-run count), Start creates a job over exactly
    those dead letters, and its Cancel button cancels it (no worker runs here, so it is still
    pending when cancelled)."""
    browser.get(seeded_console.url + "/jobs?estimate=1&reason=rejected")
    expected = int(text(browser, "#estimate-count"))
    assert expected > 0
    # The page reloads its content every 2 s while a job is pending: elements go stale.
    wait = WebDriverWait(browser, WAIT_S, ignored_exceptions=[StaleElementReferenceException])
    browser.find_element(By.ID, "start-job").click()
    wait.until(expected_conditions.alert_is_present()).accept()
    wait.until(
        lambda b: (
            b.find_element(By.CSS_SELECTOR, "#job-rows tr[data-job] .progress-text").text
            == f"0/{expected}"
        )
    )

    def click_cancel(b: Any) -> bool:
        b.find_element(By.CSS_SELECTOR, "#job-rows tr[data-job] button.cancel-job").click()
        return True

    wait.until(click_cancel)
    wait.until(expected_conditions.alert_is_present()).accept()
    wait.until(
        lambda b: (
            b.find_element(By.CSS_SELECTOR, "#job-rows tr[data-job]").get_attribute("data-state")
            == "cancelled"
        )
    )
