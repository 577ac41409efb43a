"""The ``/blockdist`` page on the Dask dashboard, in a real headless Chromium (Debian's
``chromium`` and ``chromium-driver``, driven by selenium) while a job runs on the session's
cluster: the page is listed under More…, draws the job's tile grid, and its values change
between two reads; a screenshot is taken mid-job.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import blockdist
from tests.conftest import require, write_array

pytestmark = [pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    require(CHROMIUM and DRIVER, "chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _read(browser, token: str) -> tuple[list[str], str, str]:
    """The tiles' done shares, the done line and the status, read at once (the page redraws
    every half second, so elements found one by one go stale)."""
    return tuple(browser.execute_script("""
        const job = document.querySelector(`.job[data-job="${arguments[0]}"]`);
        if (!job) return [[], "", ""];
        return [[...job.querySelectorAll("rect.tile")].map(e => e.dataset.done),
                job.querySelector(".fraction").textContent, job.querySelector(".status").textContent];
    """, token))


def _pause_a_busy_worker(client) -> int:
    """SIGSTOP a worker process that is running a task; its pid."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        busy = client.run(lambda dask_worker: (os.getpid(), len(dask_worker.state.executing)))
        for pid, executing in busy.values():
            if executing:
                os.kill(pid, signal.SIGSTOP)
                return pid
        time.sleep(0.02)
    raise AssertionError("no worker was running a task of the job")


def _read_until_changed(browser, job, first, seconds: float = 20):
    """Whether the job still ran when the page showed something else than ``first``, and that read."""
    deadline = time.monotonic() + seconds
    while True:
        time.sleep(0.25)  # the page redraws every half second
        second, ran_on = _read(browser, job.token), not job.done()
        if second != first or time.monotonic() > deadline:
            return ran_on, second


def test_dashboard_page_draws_the_grid_and_follows_a_running_job(client, browser, tmp_path: Path):
    rng = np.random.default_rng(8)
    n = 4096
    write_array(tmp_path / "a.zarr", rng.standard_normal((n, n)), (512, 512))
    write_array(tmp_path / "b.zarr", rng.standard_normal((n, n)), (512, 512))
    job = blockdist.submit(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client)
    base = client.dashboard_link.rsplit("/", 1)[0]
    browser.get(f"{base}/blockdist")
    deadline = time.monotonic() + 60
    while not _read(browser, job.token)[0]:
        assert time.monotonic() < deadline and not job.done(), "the page never showed the job"
        time.sleep(0.1)
    while not any(float(done) > 0 for done in _read(browser, job.token)[0]):  # the tasks have begun
        assert time.monotonic() < deadline and not job.done(), "the page never showed work done"
        time.sleep(0.1)
    first = _read(browser, job.token)
    browser.save_screenshot(str(tmp_path / "blockdist-page.png"))
    # One worker busy with a tile is paused (SIGSTOP), so the job cannot end before the page is
    # read again however fast this machine multiplies; the other worker's progress moves the page.
    paused = _pause_a_busy_worker(client)
    try:
        ran_on, second = _read_until_changed(browser, job, first)
    finally:
        os.kill(paused, signal.SIGCONT)
    job.result()
    assert len(first[0]) == job.plan.grid.numbers
    assert ran_on, "the job ended before the second read, though one of its workers was paused"
    assert first != second, f"nothing changed between two reads: {first} {second}"
    assert (tmp_path / "blockdist-page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # when it ends, every tile is whole and the status says so
    deadline = time.monotonic() + 10
    while _read(browser, job.token)[2] != "complete":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert all(value == "1.0000" for value in _read(browser, job.token)[0])
    browser.get(f"{base}/status")
    links = [a.get_attribute("href") for a in browser.find_elements("css selector", "a")]
    assert any(href and href.rstrip("/").endswith("/blockdist") for href in links), links
