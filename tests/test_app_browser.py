"""A real browser (Debian's chromium + chromium-driver, driven by selenium) uploads a pair to the
app, waits for the stage and checks that the registered overlay image is shown.

`.ci/run` installs chromium and its driver when missing, so this runs in CI; locally it skips only
when chromium is absent, saying so."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium / chromedriver not installed "
                                "(apt-get install -y chromium chromium-driver; .ci/run does this)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1800"]


def chromium(user_data_dir):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={user_data_dir}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def stage_pair_in_browser(driver, url, clinical, wood, timeout=60):
    """Upload the pair, press the button, wait for the stage; returns the result text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    for elem_id, path in (("clinical", clinical), ("wood", wood)):
        box = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#{elem_id} input[type=file]")))
        box.send_keys(str(path))
        wait.until(lambda d, e=elem_id: d.find_elements(By.CSS_SELECTOR, f"#{e} .file-preview, #{e} table"))
    driver.find_element(By.ID, "stage-button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "stage-result"), "Predicted stage"))
    return driver.find_element(By.ID, "stage-result").text


def test_browser_uploads_a_pair_and_sees_stage_and_overlay(tmp_path_factory):
    from selenium.webdriver.common.by import By

    from tests.test_app import _free_port, make_synth_run
    from vitfeat.app.server import launch

    root = tmp_path_factory.mktemp("browser")
    manifest, run = make_synth_run(root)
    case = pd.read_csv(manifest).iloc[2]
    app, _ = launch([run], port=_free_port(), block=False)
    driver = chromium(root / "chromium-profile")
    try:
        text = stage_pair_in_browser(driver, app.local_url, manifest.parent / case["clinical"],
                                     manifest.parent / case["wood"])
        assert "Predicted stage: active" in text or "Predicted stage: stable" in text
        assert "balanced accuracy" in text and "positive class" in text
        img = driver.find_element(By.CSS_SELECTOR, "#overlay-registered img")
        assert img.is_displayed()
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) == 128
    finally:
        driver.quit()
        app.close()
