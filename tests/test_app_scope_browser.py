"""A real browser at 1366x768 (Debian's chromium + chromium-driver, selenium): a clinical-only model
takes one photo and shows the stage above the fold; a blank image reads "Cannot assess" with the reason."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from tests.test_app_browser import CHROMIUM, DRIVER

webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium / chromedriver not installed "
                                "(apt-get install -y chromium chromium-driver; .ci/run does this)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1366,768"]


def _chromium(user_data_dir):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={user_data_dir}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def _stage_one(driver, url, photo, expect, timeout=60):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    box = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#clinical input[type=file]")))
    box.send_keys(str(photo))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#clinical .file-preview, #clinical table"))
    driver.find_element(By.ID, "stage-button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "stage-result"), expect))
    return driver.find_element(By.ID, "stage-result")


def test_clinical_only_model_in_a_1366x768_browser(tmp_path_factory):
    from tests.test_app import _free_port
    from tests.test_app_scope import make_clinical_only_run
    from vitfeat.app.server import launch

    root = tmp_path_factory.mktemp("scope-browser")
    manifest, run = make_clinical_only_run(root)
    photo = manifest.parent / pd.read_csv(manifest).iloc[3]["clinical"]
    blank = root / "blank.png"
    Image.new("RGB", (128, 128), (210, 170, 150)).save(blank)
    app, _ = launch([run], port=_free_port(), block=False)
    driver = _chromium(root / "chromium-profile")
    try:
        result = _stage_one(driver, app.local_url, photo, "Predicted stage")
        from selenium.webdriver.common.by import By

        # a clinical-only model asks for one photo (Gradio leaves a hidden box out of the page or hides it)
        assert not any(e.is_displayed() for e in driver.find_elements(By.ID, "wood"))
        heading = result.find_element(By.TAG_NAME, "h2")
        assert heading.text.startswith("Predicted stage: ") or heading.text.startswith("Cannot assess")
        bottom = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return r.bottom;", result)
        height = driver.execute_script("return window.innerHeight")
        assert height <= 768 and 0 < bottom <= height, (bottom, height)  # the whole answer, above the fold
        result = _stage_one(driver, app.local_url, blank, "Cannot assess")
        assert "sharpness" in result.text
        assert "Predicted stage" not in result.text
    finally:
        driver.quit()
        app.close()
