"""The /ui dashboard in a real browser: headless Chromium driven by Selenium (Debian's
chromium and chromium-driver, which .ci/run installs)."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest import Api, DragonProcess
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


def test_create_a_thumbnail_and_see_it(
    browser: webdriver.Chrome, dragon: DragonProcess, account: dict[str, Any], origin: Origin, tmp_path
) -> None:
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
        lambda d: d.find_element(By.CSS_SELECTOR, ".task[data-status=success] img.output")
    )
    WebDriverWait(browser, 20).until(lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0)
    assert browser.execute_script("return arguments[0].naturalWidth", image) == 120
    assert browser.find_element(By.CSS_SELECTOR, ".task[data-status=success] .state").text == "success"
    link = browser.find_element(By.CSS_SELECTOR, ".task[data-status=success] a.output-link")
    assert link.text == "output" and link.get_attribute("href") == image.get_attribute("src")

    browser.find_element(By.ID, "show-files").click()
    src = image.get_attribute("src")
    assert src is not None
    stored = src.rsplit("/", 1)[1]

    def rows(d: webdriver.Chrome) -> list:
        return [
            r
            for r in d.find_elements(By.CSS_SELECTOR, "#files tbody tr")
            if (r.get_attribute("data-name") or "").endswith(stored)
        ]

    def delete(d: webdriver.Chrome) -> bool:
        found = rows(d)
        if found:
            found[0].find_element(By.CSS_SELECTOR, "button.delete").click()
        return bool(found)

    patient = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))
    patient.until(delete)  # the table is drawn again after each listing: elements may go stale
    patient.until(lambda d: not rows(d))


def test_a_task_error_shows_its_message(
    browser: webdriver.Chrome, dragon: DragonProcess, account: dict[str, Any]
) -> None:
    log_in(browser, dragon.url, account["secret"])
    Select(browser.find_element(By.ID, "task-name")).select_by_value("image.info")
    browser.find_element(By.ID, "param-url").send_keys("http://127.0.0.1:9/missing.jpg")
    browser.find_element(By.ID, "create").click()
    failed = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, ".task[data-status=error] pre"))
    assert failed.text.startswith("CouldNotDownloadError: ")


# the workbench: history, cancel, re-run, edit, uploads, the SXML editor, usage

MOVIE = """<movie service="craftsman-1.0">
<body>
<sequence>
<effect type="none" duration="3"><image filename="http://example.com/a.jpg"/></effect>
<effect type="none"><video filename="http://example.com/clip.mp4"/></effect>
</sequence>
</body>
</movie>"""


@pytest.fixture(scope="module")
def worker(dragon: DragonProcess) -> dict[str, Any]:
    """An account whose history holds only this module's tasks."""
    return dragon.cli("accounts", "create", "workbench")


def _rows(browser: webdriver.Chrome, status: str | None = None) -> dict[str, Any]:
    selector = "#history tbody tr" + (f"[data-status={status}]" if status else "")
    rows = {}
    for row in browser.find_elements(By.CSS_SELECTOR, selector):
        key = row.get_attribute("data-key")
        assert key is not None  # the dashboard keys every history row by its task
        rows[key] = row
    return rows


def _patient(browser: webdriver.Chrome, timeout: float = 60) -> WebDriverWait:
    return WebDriverWait(browser, timeout, ignored_exceptions=(StaleElementReferenceException,))


def test_the_history_filters_and_follows_new_tasks_live(
    browser: webdriver.Chrome, dragon: DragonProcess, worker: dict[str, Any]
) -> None:
    api = Api(dragon.url, worker["secret"])
    done = api.wait(
        [
            s["key"]
            for s in api.create([{"task_name": "hello", "name": "one"}, {"task_name": "test.fail", "kind": "task"}])
        ]
    )
    log_in(browser, dragon.url, worker["secret"])
    browser.find_element(By.ID, "show-history").click()
    _patient(browser).until(lambda d: {s["key"] for s in done} <= set(_rows(d)))
    hello = _rows(browser)[done[0]["key"]]
    assert hello.find_element(By.CSS_SELECTOR, ".type").text == "hello"
    assert hello.find_element(By.CSS_SELECTOR, ".outcome").text == "Hello one"

    Select(browser.find_element(By.ID, "filter-status")).select_by_value("error")
    _patient(browser).until(lambda d: set(_rows(d)) == {done[1]["key"]})
    assert (
        _rows(browser)[done[1]["key"]]
        .find_element(By.CSS_SELECTOR, ".outcome")
        .text.startswith("InvalidContentError: ")
    )
    Select(browser.find_element(By.ID, "filter-status")).select_by_value("")
    Select(browser.find_element(By.ID, "filter-task")).select_by_value("hello")
    _patient(browser).until(lambda d: set(_rows(d)) == {done[0]["key"]})

    [later] = api.create({"task_name": "hello", "name": "later"})  # no click: the history is live
    _patient(browser).until(lambda d: list(_rows(d, "success"))[:1] == [later["key"]])


def test_cancel_rerun_and_edit_from_the_history(
    browser: webdriver.Chrome, dragon: DragonProcess, worker: dict[str, Any]
) -> None:
    api = Api(dragon.url, worker["secret"])
    gate = Path(tempfile.gettempdir()) / f"never-{uuid.uuid4().hex}"
    [waiting] = api.create({"task_name": "test.gate", "gate": str(gate)})
    [hello] = api.wait([api.create({"task_name": "hello", "name": "again"})[0]["key"]])
    log_in(browser, dragon.url, worker["secret"])
    browser.find_element(By.ID, "show-history").click()
    _patient(browser).until(lambda d: waiting["key"] in _rows(d))

    _rows(browser)[waiting["key"]].find_element(By.CSS_SELECTOR, "button.cancel").click()
    _patient(browser).until(lambda d: waiting["key"] in _rows(d, "error"))
    assert _rows(browser)[waiting["key"]].find_element(By.CSS_SELECTOR, ".outcome").text.startswith("CanceledError: ")
    assert not _rows(browser)[waiting["key"]].find_element(By.CSS_SELECTOR, "button.cancel").is_displayed()

    before = set(_rows(browser))
    _rows(browser)[hello["key"]].find_element(By.CSS_SELECTOR, "button.rerun").click()
    _patient(browser).until(lambda d: set(_rows(d, "success")) - before)
    [again] = set(_rows(browser)) - before
    [status] = api.status([again], details="true")
    assert status["result"] == "Hello again" and status["details"]["parameters"]["name"] == "again"

    _rows(browser)[hello["key"]].find_element(By.CSS_SELECTOR, "button.edit").click()
    name = _patient(browser, 10).until(lambda d: d.find_element(By.ID, "param-name"))
    assert name.get_attribute("value") == "again" and hello["key"] in browser.find_element(By.ID, "editing").text
    name.clear()
    name.send_keys("edited")
    browser.find_element(By.ID, "create").click()
    card = _patient(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, ".task[data-status=success] pre"))
    assert json.loads(card.text) == {"result": "Hello edited"}


def test_a_local_file_is_uploaded_as_a_tasks_input(
    browser: webdriver.Chrome, dragon: DragonProcess, worker: dict[str, Any], tmp_path: Path
) -> None:
    source = tmp_path / "local photo.png"
    Image.new("RGB", (320, 240), (20, 140, 200)).save(source)
    log_in(browser, dragon.url, worker["secret"])
    Select(browser.find_element(By.ID, "task-name")).select_by_value("image.thumb")
    browser.find_element(By.ID, "upload-url").send_keys(str(source))
    _patient(browser, 30).until(lambda d: d.find_element(By.ID, "param-url").get_attribute("value").startswith("http"))
    width = browser.find_element(By.ID, "param-width")
    width.clear()
    width.send_keys("64")
    browser.find_element(By.ID, "create").click()
    image = _patient(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, ".task[data-status=success] img.output"))
    _patient(browser, 20).until(lambda d: d.execute_script("return arguments[0].naturalWidth", image) == 64)


def test_the_sxml_editor_shows_errors_at_their_line_and_the_timing(
    browser: webdriver.Chrome, dragon: DragonProcess, worker: dict[str, Any]
) -> None:
    log_in(browser, dragon.url, worker["secret"])
    Select(browser.find_element(By.ID, "task-name")).select_by_value("video.create")
    editor = browser.find_element(By.ID, "param-definition")
    assert editor.tag_name == "textarea"
    editor.send_keys(MOVIE.replace('duration="3"', 'duration="soon"'))  # checked as it is typed, and once done
    _patient(browser, 30).until(
        lambda d: (
            "'duration' must be a number"
            in " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, "#sxml-errors li[data-line='4']"))
        )
    )
    assert [s.text for s in browser.find_elements(By.CSS_SELECTOR, "#sxml-gutter .bad")] == ["4"]

    editor.clear()
    editor.send_keys(MOVIE)
    _patient(browser, 30).until(lambda d: "lasts 8 s" in d.find_element(By.ID, "sxml-status").text)
    assert not browser.find_elements(By.CSS_SELECTOR, "#sxml-gutter .bad")
    timing = {
        (r.get_attribute("data-line"), r.find_elements(By.TAG_NAME, "td")[1].text): r
        for r in browser.find_elements(By.CSS_SELECTOR, "#sxml-timing tbody tr")
    }
    image = timing[("4", "<image>")].find_elements(By.TAG_NAME, "td")
    assert (image[2].text, image[3].text) == ("0.000", "3.000")

    length = browser.find_element(By.CSS_SELECTOR, "#sxml-lengths input[data-source='http://example.com/clip.mp4']")
    length.send_keys("10", Keys.TAB)  # the source's length, which only rendering would otherwise know
    _patient(browser, 30).until(lambda d: "lasts 13 s" in d.find_element(By.ID, "sxml-status").text)


def test_usage_shows_running_queued_and_stored(
    browser: webdriver.Chrome, dragon: DragonProcess, tmp_path: Path
) -> None:
    account = dragon.cli("accounts", "create", "metered-ui", "--max-concurrent-tasks", "1")
    api = Api(dragon.url, account["secret"])
    stored = api.http.post(
        "/v2/storage/upload",
        params={"filename": "note.txt"},
        content=b"x" * 1234,
        headers={"Authorization": f"Secret {account['secret']}"},
    )
    assert stored.status_code == 200, stored.text
    gate = Path(tempfile.gettempdir()) / f"gate-{uuid.uuid4().hex}"
    keys = [s["key"] for s in api.create([{"task_name": "test.gate", "gate": str(gate)} for _ in range(3)])]
    try:
        log_in(browser, dragon.url, account["secret"])
        browser.find_element(By.ID, "show-usage").click()
        _patient(browser).until(
            lambda d: (
                (d.find_element(By.ID, "usage-running").text, d.find_element(By.ID, "usage-queued").text) == ("1", "2")
            )
        )
        assert browser.find_element(By.ID, "usage-stored").text == "1234"
    finally:
        gate.touch()
    api.wait(keys)
    _patient(browser).until(
        lambda d: (
            (d.find_element(By.ID, "usage-running").text, d.find_element(By.ID, "usage-queued").text) == ("0", "0")
        )
    )
    gate.unlink()
