"""The /ui dashboard in a real browser: headless Chromium driven by Selenium (Debian's
chromium and chromium-driver, which .ci/run installs)."""

from __future__ import annotations

import shutil
from typing import Any, Iterator

import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest import DragonProcess
from tests.support.servers import Origin


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()


def log_in(browser: webdriver.Chrome, url: str, secret: str) -> None:
    browser.get(f"{url}/ui")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{url}/ui")
    browser.find_element(By.ID, "secret").send_keys(secret)
    browser.find_element(By.ID, "login-button").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "task-name").find_elements(By.TAG_NAME, "option"))


def test_a_wrong_secret_is_refused(browser: webdriver.Chrome, dragon: DragonProcess) -> None:
    browser.get(f"{dragon.url}/ui")
    browser.find_element(By.ID, "secret").send_keys("not-the-secret")
    browser.find_element(By.ID, "login-button").click()
    WebDriverWait(browser, 20).until(lambda d: "invalid credentials" in d.find_element(By.ID, "login-error").text)
    assert browser.find_element(By.ID, "tasks-view").get_attribute("hidden") is not None


def test_create_a_thumbnail_and_see_it(browser: webdriver.Chrome, dragon: DragonProcess, account: dict[str, Any],
                                        origin: Origin, tmp_path) -> None:
    source = tmp_path / "sunset.png"
    Image.new("RGB", (300, 200), (250, 120, 30)).save(source)
    url = origin.add("sunset.png", source.read_bytes())
    log_in(browser, dragon.url, account["secret"])

    Select(browser.find_element(By.ID, "task-name")).select_by_value("image.thumb")
    browser.find_element(By.ID, "param-url").send_keys(url)
    width = browser.find_element(By.ID, "param-width")
    width.clear()
    width.send_keys("120")
    browser.find_element(By.ID, "create").click()

    image = WebDriverWait(browser, 60).until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".task[data-status=success] img.output"))
    WebDriverWait(browser, 20).until(lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0)
    assert browser.execute_script("return arguments[0].naturalWidth", image) == 120
    assert browser.find_element(By.CSS_SELECTOR, ".task[data-status=success] .state").text == "success"

    browser.find_element(By.ID, "show-files").click()
    stored = image.get_attribute("src").rsplit("/", 1)[1]

    def rows(d: webdriver.Chrome) -> list:
        return [r for r in d.find_elements(By.CSS_SELECTOR, "#files tbody tr")
                if (r.get_attribute("data-name") or "").endswith(stored)]

    def delete(d: webdriver.Chrome) -> bool:
        found = rows(d)
        if found:
            found[0].find_element(By.CSS_SELECTOR, "button.delete").click()
        return bool(found)

    patient = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))
    patient.until(delete)  # the table is drawn again after each listing: elements may go stale
    patient.until(lambda d: not rows(d))


def test_a_task_error_shows_its_message(browser: webdriver.Chrome, dragon: DragonProcess, account: dict[str, Any]) -> None:
    log_in(browser, dragon.url, account["secret"])
    Select(browser.find_element(By.ID, "task-name")).select_by_value("image.info")
    browser.find_element(By.ID, "param-url").send_keys("http://127.0.0.1:9/missing.jpg")
    browser.find_element(By.ID, "create").click()
    failed = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, ".task[data-status=error] pre"))
    assert failed.text.startswith("CouldNotDownloadError: ")
