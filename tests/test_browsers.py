"""Pages on other origins calling the API, in headless Chromium: the official browser
client's way (text/plain JSON, an api key in the body, status polling), fetch with a JSON
body and an Authorization header (a preflight), and a page whose origin no account
whitelists, which must not read the answers."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from selenium import webdriver

from tests.conftest import DragonProcess
from tests.support.servers import Origin

# What Stupeflix/stupeflix-tasks.js does: XHR, no Content-Type (so text/plain), the api key
# in the JSON body, POST /v2/status every so often until the task has ended.
TASKS_JS = """
<script>
window.outcome = null;
function req(verb, url, data, done, fail) {
  var x = new XMLHttpRequest(); x.open(verb, url, true);
  x.onreadystatechange = function () { if (x.readyState === 4) {
    if (x.status === 200) done(JSON.parse(x.response)); else fail("status " + x.status); } };
  data.api_key = API_KEY; x.send(JSON.stringify(data));
}
req("post", API + "/v2/create", {tasks: [{task_name: "hello", name: "browser"}]}, function (created) {
  var key = created[0].key;
  (function poll() {
    req("post", API + "/v2/status", {tasks: [key]}, function (s) {
      if (s[0].status === "success" || s[0].status === "error") window.outcome = {read: true, status: s[0]};
      else setTimeout(poll, 200);
    }, function (e) { window.outcome = {read: false, error: e}; });
  })();
}, function (e) { window.outcome = {read: false, error: e}; });
</script>
"""

# fetch with a JSON body and an Authorization header: the browser asks first (OPTIONS).
FETCH = """
<script>
window.outcome = null;
fetch(API + "/v2/create", {method: "POST", headers: {"Content-Type": "application/json",
      "Authorization": "Api-Key " + API_KEY}, body: JSON.stringify({tasks: {task_name: "hello", name: "fetch"}, block: true})})
  .then(function (r) { return r.json(); })
  .then(function (s) { window.outcome = {read: true, status: s[0]}; })
  .catch(function (e) { window.outcome = {read: false, error: String(e)}; });
</script>
"""

# A page of an origin no account whitelists reads a status anyone may ask for.
STATUS = """
<script>
window.outcome = null;
fetch(API + "/v2/status?tasks=" + KEY).then(function (r) { return r.json(); })
  .then(function (s) { window.outcome = {read: true, status: s[0]}; })
  .catch(function (e) { window.outcome = {read: false, error: String(e)}; });
</script>
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        options=options,
        service=webdriver.ChromeService(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"),
    )
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Origin, Origin]]:
    """A whitelisted origin and one nobody whitelists."""
    good, bad = Origin(tmp_path_factory.mktemp("good")), Origin(tmp_path_factory.mktemp("bad"))
    yield good, bad
    good.close()
    bad.close()


def _origin(origin: Origin) -> str:
    """The origin of its pages: another host name than the API's, so they are cross-origin."""
    return origin.url.replace("127.0.0.1", "localhost")


def _page(origin: Origin, name: str, script: str, **values: str) -> str:
    constants = "".join(f"<script>var {k} = {json.dumps(v)};</script>" for k, v in values.items())
    origin.add(name, f"<!doctype html><html><body>{constants}{script}</body></html>".encode())
    return f"{_origin(origin)}/{name}?type=text/html"


def _outcome(browser: webdriver.Chrome, url: str) -> dict[str, Any]:
    browser.get(url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        outcome = browser.execute_script("return window.outcome")
        if outcome:
            outcome["console"] = [entry["message"] for entry in browser.get_log("browser")]
            return outcome
        time.sleep(0.2)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def browser_account(dragon: DragonProcess, pages: tuple[Origin, Origin]) -> dict[str, Any]:
    good = _origin(pages[0])
    return dragon.cli("accounts", "create", "browsers", "--referrer", f"{good}/*")


def test_the_official_browser_clients_way_works_from_a_whitelisted_origin(
    browser: webdriver.Chrome, dragon: DragonProcess, browser_account: dict, pages: tuple[Origin, Origin]
) -> None:
    url = _page(pages[0], "tasks.html", TASKS_JS, API=dragon.url, API_KEY=browser_account["api_key"])
    outcome = _outcome(browser, url)
    assert outcome["read"], outcome
    assert outcome["status"]["status"] == "success" and outcome["status"]["result"] == "Hello browser"


def test_fetch_with_json_and_an_authorization_header_is_preflighted_and_read(
    browser: webdriver.Chrome, dragon: DragonProcess, browser_account: dict, pages: tuple[Origin, Origin]
) -> None:
    url = _page(pages[0], "fetch.html", FETCH, API=dragon.url, API_KEY=browser_account["api_key"])
    outcome = _outcome(browser, url)
    assert outcome["read"] and outcome["status"]["result"] == "Hello fetch", outcome


def test_a_page_of_an_origin_nobody_whitelists_cannot_read_answers(
    browser: webdriver.Chrome, dragon: DragonProcess, browser_account: dict, pages: tuple[Origin, Origin]
) -> None:
    import httpx

    [task] = httpx.post(
        f"{dragon.url}/v2/create",
        json={"tasks": {"task_name": "hello", "name": "x"}, "block": True},
        headers={"Authorization": f"Secret {browser_account['secret']}"},
    ).json()
    bad = _origin(pages[1])
    for name, script in (("tasks.html", TASKS_JS), ("status.html", STATUS)):
        url = _page(pages[1], name, script, API=dragon.url, API_KEY=browser_account["api_key"], KEY=task["key"])
        outcome = _outcome(browser, url)
        assert not outcome["read"], (bad, outcome)
    # the same status from a whitelisted origin is readable
    good = _page(pages[0], "status.html", STATUS, API=dragon.url, KEY=task["key"])
    assert _outcome(browser, good)["read"]


def test_preflights_and_answers_name_only_allowed_origins(
    dragon: DragonProcess, browser_account: dict, pages: tuple[Origin, Origin]
) -> None:
    import httpx

    good, bad = (_origin(p) for p in pages)
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, authorization"}
    allowed = httpx.options(f"{dragon.url}/v2/create", headers={"Origin": good, **asked})
    assert allowed.status_code == 204 and allowed.headers["access-control-allow-origin"] == good
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    refused = httpx.options(f"{dragon.url}/v2/create", headers={"Origin": bad, **asked})
    assert "access-control-allow-origin" not in refused.headers
    error = httpx.post(f"{dragon.url}/v2/create", content=b"{", headers={"Origin": good})
    assert error.status_code == 400 and error.headers["access-control-allow-origin"] == good  # errors are readable
