"""`menuflow studio` in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium): the order flow walked by clicks in the sandbox, against a real flowsvc; the screenshot
is saved in the test's output folder. Without Chromium the browser test skips, except in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from menuflow.v1 import flow_pb2_grpc
from tests.chat import BUSINESS, Chat
from tests.database import row_counts
from tests.servers import free_port
from tests.test_cli import MENUFLOW
from tests.test_conversations import order_coffee

pytestmark = pytest.mark.usefixtures("seeded")
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT = 30.0


@pytest.fixture
def studio(flowsvc_target: str, tmp_path: Path) -> Iterator[str]:
    """`menuflow studio` on a free port, as an admin would run it; its base URL."""
    port = free_port()
    env = {**os.environ, "MENUFLOW_TARGET": flowsvc_target, "MENUFLOW_BUSINESS": BUSINESS}
    log = (tmp_path / "studio.log").open("w")
    process = subprocess.Popen(
        [MENUFLOW, "studio", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if httpx.get(f"{base}/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "studio.log").read_text()
            assert time.monotonic() < deadline, "the studio did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("no chromium/chromedriver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver: WebDriver, element_id: str, text: str) -> None:
    WebDriverWait(driver, WAIT).until(
        lambda d: text in d.find_element(By.ID, element_id).text,
        f"#{element_id} never showed {text!r}",
    )


def click_enabled(driver: WebDriver, css: str, text: str) -> None:
    """Click the enabled element matching `css` whose text starts with `text`."""

    def found(d: WebDriver) -> bool:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if element.is_enabled() and element.is_displayed() and element.text.startswith(text):
                element.click()
                return True
        return False

    WebDriverWait(driver, WAIT).until(found, f"no enabled {css} {text!r} to click")


def test_the_order_flow_is_walked_by_clicks_in_the_studio(
    studio: str,
    browser: WebDriver,
    database_url: str,
    tmp_path: Path,
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    order_coffee(Chat(stub))  # a live customer: the preview shows the flow stats beside each step
    before = row_counts(database_url)
    browser.get(studio)
    WebDriverWait(browser, WAIT).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true"
    )

    Select(browser.find_element(By.ID, "template")).select_by_value("new_order")
    browser.find_element(By.ID, "start").click()
    wait_for_text(browser, "chat", "What would you like to order?")
    click_enabled(browser, ".choices .list-button", "☰ View Products")
    click_enabled(browser, "#list-sheet .row", "Coffee")
    wait_for_text(browser, "chat", "How many Coffee would you like?")
    assert browser.find_element(By.ID, "step").text == "quantity"
    browser.find_element(By.ID, "message").send_keys("2")
    browser.find_element(By.ID, "send").click()
    wait_for_text(browser, "chat", "Pickup or delivery?")
    assert browser.find_element(By.ID, "step").text == "fulfilment"
    click_enabled(browser, ".choices .reply", "🏪 Pickup")
    wait_for_text(browser, "chat", "2 x Coffee = $7.00")
    assert browser.find_element(By.ID, "step").text == "confirmation"
    assert '"product_title": "Coffee"' in browser.find_element(By.ID, "context").text
    click_enabled(browser, ".choices .reply", "✅ Yes")
    wait_for_text(browser, "chat", "Order placed! Your order number is")
    wait_for_text(browser, "result", '"total": "7.00"')
    assert browser.find_element(By.ID, "flow").text == "(ended)"
    browser.find_element(By.ID, "show-preview").click()
    wait_for_text(browser, "preview", "new_order version 1")
    wait_for_text(browser, "preview", "✅ Yes → complete")
    wait_for_text(browser, "preview", "Last 7 days: 1 started, 1 completed")
    wait_for_text(browser, "preview", "entered 1 · → quantity 1")
    wait_for_text(browser, "preview", "entered 1 · completed 1")

    screenshot = tmp_path / "studio.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    assert row_counts(database_url) == before  # the sandbox wrote nothing


def test_the_studio_api_says_what_went_wrong(studio: str) -> None:
    response = httpx.post(f"{studio}/api/turn", json={"template": "nope"}, timeout=10)

    assert response.status_code == 400
    assert response.json()["error"] == "NOT_FOUND"
    assert "template 'nope' does not exist" in response.json()["message"]


def test_the_studio_api_gives_a_call_its_result(studio: str) -> None:
    """The browser's Answer / Time out / Fail buttons post a call_result for the waiting call."""
    conversation = None
    for said in (
        {},
        {"selection": {"id": "tea"}},
        {"text": "1"},
        {"selection": {"id": "delivery"}},
    ):
        body = {"template": "new_order", "conversation": conversation, **said}
        conversation = httpx.post(f"{studio}/api/turn", json=body, timeout=10).json()[
            "conversation"
        ]
    asked = httpx.post(
        f"{studio}/api/turn",
        json={"template": "new_order", "conversation": conversation, "text": "12 Harbour Road"},
        timeout=10,
    ).json()
    answered = httpx.post(
        f"{studio}/api/turn",
        json={
            "template": "new_order",
            "conversation": asked["conversation"],
            "call_result": {"status": 200, "json": {"zone": "B"}},
        },
        timeout=10,
    ).json()
    wrong = httpx.post(
        f"{studio}/api/turn",
        json={"template": "new_order", "conversation": asked["conversation"], "call_result": 7},
        timeout=10,
    )

    assert asked["call"]["endpoint"] == "address_check"
    assert asked["call"]["body_json"] == '{"address": "12 Harbour Road"}'
    assert answered["conversation"]["step"] == "delivery_confirmation"
    assert "(zone B)" in answered["messages"][0]["interactive"]["body"]["text"]
    assert wrong.status_code == 400 and "call_result: a call result is an object" in wrong.text
