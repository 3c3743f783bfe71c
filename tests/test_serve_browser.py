"""The web page in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by Selenium against a real `palaestrio serve`.

It loads the page from the URL serve printed, submits a run file through the page's
form and sees it reach `finished`, clicks Cancel on a second, long run and sees
`cancelled`, then opens the first run's page with its plots. Screenshots go to the
test's temp dir; with PALAESTRIO_SCREENSHOTS=DIR also to DIR (the README's come from
here: ``PALAESTRIO_SCREENSHOTS=docs pytest tests/test_serve_browser.py``).
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

import pytest
import trio

from executor_support import write_experiment
from serve_support import Server, serving

EXAMPLE = Path(str(resources.files("palaestrio") / "examples" / "dummy_experiment.yml"))
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT = 60.0

if not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"):
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver; .ci/run installs them)",
        allow_module_level=True,
    )


async def test_the_page_shows_runs_finish_and_cancels_one(tmp_path: Path) -> None:
    slow = write_experiment(
        tmp_path, "slow run", environment="executor_components:SlowEnvironment", max_iter=100_000
    )
    with trio.fail_after(240):
        async with serving(tmp_path, "-p", "2") as server:
            shots = await trio.to_thread.run_sync(_in_browser, server, slow, tmp_path)
    for shot in shots:
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    destination = os.environ.get("PALAESTRIO_SCREENSHOTS")
    if destination:
        for shot in shots:
            shutil.copy(shot, Path(destination) / shot.name)


def _in_browser(server: Server, slow: Path, tmp_path: Path) -> list[Path]:
    """The browser's part (Selenium is blocking; every wait is bounded by WAIT)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert CHROMIUM and CHROMEDRIVER, "CI must install chromium and chromium-driver"
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1000,900",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        wait = WebDriverWait(driver, WAIT, poll_frequency=0.1)

        def row_with(run_uid: str, status: str) -> str:
            """Waits for the run's row to show `status`; its instance uid."""
            xpath = (
                f"//tr[td/a[text()='{run_uid}']"
                f" and td[contains(@class,'status')][text()='{status}']]"
            )
            row = wait.until(ec.presence_of_element_located((By.XPATH, xpath)))
            instance = row.get_attribute("data-instance")
            assert instance
            return instance

        driver.get(server.url)  # sets the token cookie, then redirects to /
        assert driver.current_url == server.base + "/"
        wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "live"))
        driver.find_element(By.ID, "run-file").send_keys(str(EXAMPLE))
        driver.find_element(By.CSS_SELECTOR, "#submit-form button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "submit-result"), "scheduled"))
        finished = row_with("Yo-ho, a dummy experiment run for me!", "finished")

        driver.find_element(By.ID, "run-file").send_keys(str(slow))
        driver.find_element(By.CSS_SELECTOR, "#submit-form button").click()
        running = row_with("slow run", "running")
        row = driver.find_element(By.CSS_SELECTOR, f'tr[data-instance="{running}"]')
        row.find_element(By.CSS_SELECTOR, "button.cancel").click()
        assert row_with("slow run", "cancelled") == running
        cancelled = driver.find_element(By.CSS_SELECTOR, f'tr[data-instance="{running}"]')
        assert not cancelled.find_elements(By.CSS_SELECTOR, "button.cancel")
        assert cancelled.get_attribute("title") == "cancelled by request"
        shots = [tmp_path / "serve-runs.png"]
        assert driver.save_screenshot(str(shots[0]))

        driver.find_element(By.LINK_TEXT, "Yo-ho, a dummy experiment run for me!").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "run-facts"), finished))
        facts = driver.find_element(By.ID, "run-facts").text
        assert "status finished" in facts and "50 steps" in facts
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#plots canvas")) == 4)
        phases = driver.find_elements(By.CSS_SELECTOR, "#phases tbody tr")
        assert [p.text.split()[:2] for p in phases] == [
            ["phase_train", "train"],
            ["phase_test", "test"],
        ]
        # The objective plot has drawn lines, not only "no data yet": count colored pixels.
        drawn = driver.execute_script(
            "const c = document.querySelector('#plot-objective canvas');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 0; i < d.length; i += 4)"
            " if (d[i + 3] && (d[i] !== d[i + 1] || d[i + 1] !== d[i + 2])) n++; return n;"
        )
        assert drawn > 100
        shots.append(tmp_path / "serve-run.png")
        assert driver.save_screenshot(str(shots[1]))
        return shots
    finally:
        driver.quit()
