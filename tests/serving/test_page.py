"""The page at `/`, in a real headless browser: type a caption, generate, see the images.

Needs Chromium and its driver (Debian: `apt-get install chromium chromium-driver`) and the
`selenium` package; skipped where they are missing.
"""

from __future__ import annotations

import base64
import io
import shutil
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.export import tiny_export
from xmcgan_tf.export import export_lib
from xmcgan_tf.export import serving_module
from xmcgan_tf.serving import server as server_lib

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs chromium and chromedriver")
TIMEOUT = 60


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export"))
    export_lib.write_version(tiny_export.tiny_module(seed=0), path)
    return path


@pytest.fixture(scope="module")
def server(export_dir):
    with server_lib.ModelServer(export_dir, model_name="xmcgan", grpc_port=None, rest_port=0,
                                max_batch=4, poll_seconds=0) as instance:
        yield instance


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(TIMEOUT)
    yield driver
    driver.quit()


def test_page_draws_the_typed_caption_with_each_seed(server, export_dir, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"http://127.0.0.1:{server.rest_port}/")
    assert [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#model option")] == [
        "xmcgan"]
    captions = browser.find_element(By.ID, "captions")
    captions.clear()
    captions.send_keys("a blue star")
    seed = browser.find_element(By.ID, "seed")
    seed.clear()
    seed.send_keys("7")
    count = browser.find_element(By.ID, "count")
    count.clear()
    count.send_keys("5")  # more than max_batch 4: two requests
    browser.find_element(By.ID, "generate").click()
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "img.generated")) == 5)
    WebDriverWait(browser, TIMEOUT).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "status"), "5 image(s)"))

    figures = browser.find_elements(By.CSS_SELECTOR, "figure")
    assert [f.find_element(By.TAG_NAME, "figcaption").text for f in figures] == [
        f"a blue star (seed {s}) download" for s in range(7, 12)]
    model = serving_module.load(export_dir).model
    expected = model.signatures[serving_module.SERVE_CAPTIONS_SEEDED](
        captions=tf.constant(["a blue star"] * 5),
        seed=tf.constant(list(range(7, 12)), tf.int64))["images"].numpy()
    for figure, pixels in zip(figures, expected):
        image = figure.find_element(By.TAG_NAME, "img")
        assert browser.execute_script("return arguments[0].naturalWidth", image) == 64
        link = figure.find_element(By.TAG_NAME, "a")
        assert link.get_attribute("download").endswith(".png")
        data_url = link.get_attribute("href")
        png = base64.b64decode(data_url.split(",", 1)[1])
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")),
                                      pixels)


def test_page_shows_the_servers_error(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"http://127.0.0.1:{server.rest_port}/")
    browser.execute_script(
        "const o = document.createElement('option'); o.value = o.textContent = 'missing';"
        "document.getElementById('model').appendChild(o);"
        "document.getElementById('model').value = 'missing';")
    browser.find_element(By.ID, "generate").click()
    WebDriverWait(browser, TIMEOUT).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "status"), "Error:"))
    assert "not served" in browser.find_element(By.ID, "status").text


def test_page_is_served_as_html(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.rest_port}/",
                                timeout=TIMEOUT) as response:
        assert response.headers["Content-Type"].startswith("text/html")
        text = response.read().decode("utf-8")
    assert 'const MODELS = ["xmcgan"];' in text and "const MAX_BATCH = 4;" in text
