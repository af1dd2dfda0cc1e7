"""A real browser: headless Chromium opens the demo, uploads a scan, waits for the overlay, saves a screenshot.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package (all installed by
``.ci/run``); skipped, with the reason printed, where any is missing. Set ``M2DINO_SCREENSHOT_DIR`` to
keep the screenshot.
"""

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from m2dino.visualize.examples import example_images

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_upload_a_scan_and_see_the_overlay(demo_app, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(demo_app.local_url)
    upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#scan input[type=file]")))
    upload.send_keys(str(example_images()[0]))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#scan img")))  # the upload is shown
    wait.until(ec.element_to_be_clickable((By.ID, "predict"))).click()
    overlay = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#overlay img")))
    wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", overlay))
    # The overlay the browser shows is the 3-task panel of the uploaded 480×360 synthetic scan.
    assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]",
                                  overlay) == [3 * 480 + 2 * 4, 360]
    assert "fetal_head_circumference" in browser.find_element(By.ID, "summary").text
    screenshot = tmp_path / "demo.png"
    assert browser.save_screenshot(str(screenshot))
    with Image.open(screenshot) as image:
        assert image.size[0] >= 1000
    keep = os.environ.get("M2DINO_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / "demo_browser.png")
