"""The viewer end to end: a real uvicorn server on loopback driven by Debian's headless Chromium.

Pages load without script errors, a city search returns results, a route and a street view come
up from clicks, and an episode can be stepped through with the buttons, the keyboard and the
slider. Screenshots of every page land in ``test-artifacts/viewer/`` (git-ignored) for people to
look at. Needs ``chromium`` and ``chromium-driver`` (apt) and the ``selenium`` package; the tests
skip, saying what to install, when one is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import viewer_data

selenium = pytest.importorskip("selenium", reason="pip install selenium (browser tests)")
uvicorn = pytest.importorskip("uvicorn", reason="pip install 'openvirl[viewer]'")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from openvirl.viewer import create_app  # noqa: E402
from openvirl.viewer.cities import street_view_support  # noqa: E402

CHROMIUM = os.environ.get("OPENVIRL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = (
    os.environ.get("OPENVIRL_CHROMEDRIVER")
    or shutil.which("chromedriver")
    or "/usr/bin/chromedriver"
)
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "viewer"
CITY = viewer_data.NAV_CITY
WIDTH_PX = 1400
MAX_SHOT_PX = 2600
CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={WIDTH_PX},1000",
)  # fmt: skip

ROUTE_MIDDLE_JS = """
const svg = document.querySelector('svg.map'), path = svg.querySelector('path.route');
const mid = path.getPointAtLength(path.getTotalLength() / 2), m = path.getScreenCTM();
const x = mid.x * m.a + mid.y * m.c + m.e, y = mid.x * m.b + mid.y * m.d + m.f;
const box = svg.getBoundingClientRect();
return [Math.round(x - box.left - box.width / 2), Math.round(y - box.top - box.height / 2)];
"""
"""Offset of the route's midpoint from the map's centre, CSS pixels (for a real click)."""

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="headless Chromium is not installed: apt-get install chromium chromium-driver",
)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory) -> Iterator[str]:
    runs = viewer_data.shared_runs(tmp_path_factory)
    order = ("oracle", "random", "vision", "half", "nav", "agent", "suite", "empty", "missing")
    app = create_app([runs[k] for k in order], city_names=[CITY, "manhattan"])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the viewer's server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _open(driver: webdriver.Chrome, url: str) -> None:
    driver.get(url)
    _ready(driver)


def _ready(driver: webdriver.Chrome) -> None:
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.body && document.body.dataset.ready === '1'")
    )


def _navigating(driver: webdriver.Chrome, action) -> None:
    """Run `action` (a click, a key press) and wait until the next page is ready."""
    from selenium.webdriver.support import expected_conditions

    old = driver.find_element(By.TAG_NAME, "html")
    action()
    WebDriverWait(driver, 20).until(expected_conditions.staleness_of(old))
    _ready(driver)


def _shot(driver: webdriver.Chrome, name: str) -> Path:
    """A full-page screenshot (up to `MAX_SHOT_PX` tall) in test-artifacts/viewer/."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH_PX, min(max(int(height) + 40, 700), MAX_SHOT_PX))
    time.sleep(0.15)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(WIDTH_PX, 1000)
    assert path.stat().st_size > 10_000
    return path


def _errors(driver: webdriver.Chrome) -> list[str]:
    """Script errors and failed loads logged by the page (severe console entries)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _visible_step(driver: webdriver.Chrome) -> int:
    sections = driver.find_elements(By.CSS_SELECTOR, "section.step")
    shown = [int(s.get_attribute("data-step")) for s in sections if s.is_displayed()]
    assert len(shown) == 1, shown
    return shown[0]


def _image_loaded(driver: webdriver.Chrome, css: str) -> bool:
    return bool(
        driver.execute_script(
            "const i = document.querySelector(arguments[0]);"
            "return !!i && i.complete && i.naturalWidth > 0;",
            css,
        )
    )


def test_runs_and_run_pages_load(browser, base_url):
    _open(browser, base_url + "/")
    assert "Runs" in browser.find_element(By.TAG_NAME, "h1").text
    rows = browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")
    assert len(rows) >= 9
    _shot(browser, "runs")
    _navigating(browser, browser.find_element(By.LINK_TEXT, "gp-l-oracle").click)
    assert "gp-l/id · oracle" in browser.find_element(By.TAG_NAME, "h1").text
    WebDriverWait(browser, 10).until(lambda d: _image_loaded(d, ".plots img"))
    _shot(browser, "run")
    assert _errors(browser) == []
    for run_id in ("suite-demo", "agent-demo"):
        _open(browser, f"{base_url}/runs/{run_id}")
        _shot(browser, f"run-{run_id}")
        assert _errors(browser) == []


def test_compare_page_from_the_form(browser, base_url):
    _open(browser, base_url + "/runs/gp-l-random")
    _navigating(browser, browser.find_element(By.CSS_SELECTOR, "form.inline button").click)
    assert "/compare?" in browser.current_url
    assert "B − A" in browser.page_source
    _shot(browser, "compare")
    assert _errors(browser) == []


def test_episode_steps_with_buttons_keys_and_slider(browser, base_url):
    _open(browser, base_url + "/episodes?run=gp-l-random&success=no")
    cell = browser.find_element(By.CSS_SELECTOR, "table.episodes tbody tr td:nth-child(3)")
    _navigating(browser, cell.click)  # the whole row is a link
    assert "/runs/gp-l-random/episodes/0" in browser.current_url
    total = int(browser.find_element(By.CSS_SELECTOR, ".stepper").get_attribute("data-steps"))
    assert total >= 2
    assert _visible_step(browser) == 1
    WebDriverWait(browser, 10).until(lambda d: _image_loaded(d, "#episode-image"))
    browser.find_element(By.ID, "next-step").click()
    assert _visible_step(browser) == 2
    assert browser.find_element(By.ID, "step-label").text == f"step 2 of {total}"
    assert "step=2" in browser.current_url
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
    assert _visible_step(browser) == min(3, total)
    browser.execute_script(
        "const s = document.getElementById('step-slider'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('input'));",
        total,
    )
    assert _visible_step(browser) == total
    browser.find_element(By.ID, "prev-step").click()
    assert _visible_step(browser) == total - 1
    _shot(browser, "episode-points")
    # The address keeps the step: a reload shows the same one.
    _open(browser, browser.current_url)
    assert _visible_step(browser) == total - 1
    _open(browser, base_url + "/runs/gp-vl-random/episodes/0")
    WebDriverWait(browser, 10).until(lambda d: _image_loaded(d, "#episode-image"))
    _shot(browser, "episode-vision")
    assert _errors(browser) == []


def test_navigation_episode_map_follows_the_steps(browser, base_url):
    _open(browser, base_url + "/runs/nav-monaco/episodes/0?step=1")
    poses = browser.find_elements(By.CSS_SELECTOR, "#episode-map .pose")
    assert len(poses) >= 3

    def shown() -> int:
        poses = browser.find_elements(By.CSS_SELECTOR, "#episode-map .pose")
        return sum(p.is_displayed() for p in poses)

    assert shown() == 1  # only where the agent stood for step 1
    browser.find_element(By.ID, "next-step").click()
    assert shown() == 2
    current = browser.find_elements(By.CSS_SELECTOR, "#episode-map .pose.current")
    assert len(current) == 1 and current[0].get_attribute("data-step") == "1"
    _shot(browser, "episode-navigation")
    assert _errors(browser) == []


def test_city_search_route_and_street_view(browser, base_url):
    _open(browser, base_url + "/cities")
    link = browser.find_element(By.CSS_SELECTOR, f"a.city[href='/cities/{CITY}']")
    _navigating(browser, link.click)
    box = browser.find_element(By.ID, "search-box")
    _navigating(browser, lambda: box.send_keys("casino", Keys.ENTER))
    results = browser.find_elements(By.CSS_SELECTOR, "#results li.result")
    assert results and "Casino" in results[0].text
    assert browser.find_elements(By.CSS_SELECTOR, "svg.map .marker.result")
    _navigating(browser, results[0].find_element(By.CSS_SELECTOR, "a.set-from").click)
    origin = browser.find_element(By.CSS_SELECTOR, "form.route-form input[name=from]")
    assert "Casino" in origin.get_attribute("value")  # the name shows, the id travels along
    box = browser.find_element(By.ID, "search-box")
    box.clear()
    _navigating(browser, lambda: box.send_keys("cafe near Casino de Monte-Carlo", Keys.ENTER))
    cafe = browser.find_element(By.CSS_SELECTOR, "#results li.result a.set-to")
    _navigating(browser, cafe.click)
    route = browser.find_element(By.ID, "route")
    assert "Walking route" in route.text
    assert len(route.find_elements(By.CSS_SELECTOR, "ol.instructions li")) >= 1
    assert browser.find_elements(By.CSS_SELECTOR, "svg.map path.route")
    _shot(browser, "city-route")
    # Zoom in with the button, then click the middle of the route: a street view opens there.
    browser.find_element(By.CSS_SELECTOR, "[data-zoom=in]").click()
    svg = browser.find_element(By.CSS_SELECTOR, "svg.map")
    dx, dy = browser.execute_script(ROUTE_MIDDLE_JS)
    click = webdriver.ActionChains(browser).move_to_element_with_offset(svg, dx, dy).click()
    _navigating(browser, click.perform)
    assert "lat=" in browser.current_url and "lon=" in browser.current_url
    view = browser.find_element(By.ID, "view")
    assert "Street view" in view.text
    available, _ = street_view_support()
    if available:
        WebDriverWait(browser, 60).until(lambda d: _image_loaded(d, "#street-view"))
    else:
        assert browser.find_element(By.ID, "street-view-missing").is_displayed()
    _shot(browser, "city-street-view")
    assert _errors(browser) == []


def test_bad_input_shows_explanations(browser, base_url):
    _open(browser, base_url + "/runs/no-such-run")
    assert "does not exist" in browser.page_source
    _shot(browser, "run-missing")
    _open(browser, base_url + "/runs/half-written")
    assert "half-written" in browser.page_source
    _shot(browser, "run-half-written")
    _open(browser, base_url + "/runs/typo-run")
    assert "No such run" in browser.find_element(By.TAG_NAME, "h1").text
    assert "Traceback" not in browser.page_source
    _shot(browser, "run-unknown")
