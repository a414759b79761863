"""A real browser at 1366x768 (Debian's chromium + chromium-driver, selenium): one click on a synthetic
example pair fills the photos, shows their previews, and the Stage button answers for it; a second
example still works after the first answer (the examples are not deleted with the uploads)."""

from __future__ import annotations

import pytest

from tests.test_app_browser import CHROMIUM, DRIVER

webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium / chromedriver not installed "
                                "(apt-get install -y chromium chromium-driver; .ci/run does this)")


def _stage(driver, wait, example, before=""):
    from selenium.webdriver.common.by import By

    example.click()
    for box in ("preview-clinical", "preview-wood"):  # the previews of what was filled in
        wait.until(lambda d, b=box: d.execute_script(
            f"const i = document.querySelector('#{b} img'); return i && i.complete && i.naturalWidth"))
    driver.find_element(By.ID, "stage-button").click()
    wait.until(lambda d: d.find_element(By.ID, "stage-result").text != before
               and d.find_element(By.ID, "stage-result").text.startswith(("Predicted stage", "Cannot assess")))
    return driver.find_element(By.ID, "stage-result").text


def test_example_pairs_fill_the_inputs_with_one_click(tmp_path_factory):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.test_app import _free_port, make_synth_run
    from tests.test_app_scope_browser import _chromium
    from vitfeat.app.server import launch

    root = tmp_path_factory.mktemp("examples-browser")
    _, run = make_synth_run(root)
    app, cache = launch([run], port=_free_port(), block=False)
    driver = _chromium(root / "chromium-profile")
    try:
        driver.get(app.local_url)
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#examples button")) == 4)
        labels = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#examples button")]
        assert any("active" in t for t in labels) and any("stable" in t for t in labels)
        first = _stage(driver, wait, driver.find_elements(By.CSS_SELECTOR, "#examples button")[0])
        side = driver.execute_script("return document.querySelector('#preview-clinical img').naturalWidth")
        assert 0 < side <= 256
        # another example (the other class) after the first answer: a new answer, its files still there
        second = _stage(driver, wait, driver.find_elements(By.CSS_SELECTOR, "#examples button")[3], first)
        assert first != second
        assert (cache / "examples" / "example4-wood.jpg").is_file()  # drawn in the server's private folder
    finally:
        driver.quit()
        app.close()
