"""The paint app in a real browser: Debian's chromium, headless, driven by Selenium.

The server is the real one (uvicorn on a free port, in a thread) with a tiny untrained generator.
Pictures shown by the page are read back as pixels and compared with what the same Painter paints
for the map the page holds, so a wrong character, a stale picture or a blurred map all fail.
"""

from __future__ import annotations

import base64
import itertools
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animesis.app import create_app
from animesis.app.server import bind_socket, make_server
from animesis.app.untrained import save_untrained_model
from animesis.inference import Painter

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SIZE = (32, 32)
K = 3
TIMEOUT = 60


def _require_browser():
    """No browser is a failure that says how to install one, unless ANIMESIS_NO_BROWSER=1."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install selenium)")
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed: run `bash scripts/install_browser.sh`"
    if os.environ.get("ANIMESIS_NO_BROWSER") == "1":
        pytest.skip(f"ANIMESIS_NO_BROWSER=1: browser test skipped ({reason})")
    pytest.fail(f"{reason} (or set ANIMESIS_NO_BROWSER=1 to skip this test)", pytrace=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_browser()
    painter = Painter.load(save_untrained_model(tmp_path_factory.mktemp("model"), size=SIZE), device="cpu")
    sock = bind_socket("127.0.0.1", 0)
    uv = make_server(create_app(painter))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uv.started, "the server did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/", painter
    uv.should_exit = True
    thread.join(TIMEOUT)
    sock.close()


@pytest.fixture(scope="module")
def driver(server, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    d.set_script_timeout(TIMEOUT)
    yield d
    d.quit()


@pytest.fixture
def page(server, driver):
    url, painter = server
    driver.get(url)
    wait_picture(driver, 0)
    return Page(driver, painter)


def wait_picture(driver, after: int) -> int:
    """Wait until the page shows a picture newer than number `after` and nothing is pending."""
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        seq = d.execute_script(
            "const s = window.animesisApp && window.animesisApp.snapshot();"
            "return s && document.body.dataset.busy === '0' ? s.seq : 0;"
        )
        return seq if seq > after else False

    time.sleep(0.2)  # past the page's debounce, so a stroke's request has started
    return WebDriverWait(driver, TIMEOUT).until(ready, f"no new picture after #{after}")


class Page:
    def __init__(self, driver, painter: Painter):
        self.d, self.painter = driver, painter
        self.seq = self.state()["seq"]

    def el(self, css: str):
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.CSS_SELECTOR, css)

    def state(self) -> dict:
        return self.d.execute_script("return window.animesisApp.snapshot()")

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.state()
        return tuple(
            np.frombuffer(base64.b64decode(s[k]), np.uint8).reshape(SIZE).copy() for k in ("label", "owner")
        )

    def click(self, css: str) -> None:
        self.el(css).click()

    def stroke(self, points: list[tuple[int, int]]) -> None:
        """Drag the mouse through label-map cells (x, y), pressing at the first and lifting at the last."""
        from selenium.webdriver.common.action_chains import ActionChains

        wrap = self.el("#canvas-wrap")
        scale = wrap.size["width"] / SIZE[1]
        offset = [
            ((x + 0.5) * scale - wrap.size["width"] / 2, (y + 0.5) * scale - wrap.size["height"] / 2)
            for x, y in points
        ]
        chain = ActionChains(self.d).move_to_element_with_offset(
            wrap, round(offset[0][0]), round(offset[0][1])
        )
        chain.click_and_hold()
        for (x0, y0), (x1, y1) in itertools.pairwise(offset):
            chain.move_by_offset(round(x1 - x0), round(y1 - y0))
        chain.release().perform()

    def settle(self) -> None:
        self.seq = wait_picture(self.d, self.seq)

    def pixels(self, css: str) -> np.ndarray:
        """An <img> or <canvas> drawn 1:1 into a canvas -> (H, W, 3) uint8 as the browser holds it."""
        data = self.d.execute_script(
            "const e = document.querySelector(arguments[0]);"
            "const w = e.naturalWidth || e.width, h = e.naturalHeight || e.height;"
            "const c = document.createElement('canvas'); c.width = w; c.height = h;"
            "const x = c.getContext('2d'); x.drawImage(e, 0, 0);"
            "return [w, h, Array.from(x.getImageData(0, 0, w, h).data)];",
            css,
        )
        w, h, flat = data
        return np.array(flat, np.uint8).reshape(h, w, 4)[..., :3]

    def painted(self, characters) -> np.ndarray:
        """What the server's painter paints for the page's current label map and seed."""
        label, _ = self.arrays()
        seed = self.state()["shown"]["seed"]
        return self.painter.paint(label[None], characters, self.painter.noise(1, seed))[0]


def test_strokes_paint_exact_classes_and_the_picture_follows_the_character(page):
    palette = page.painter.card.palette
    before, _ = page.arrays()
    page.click(f'#class-brushes [data-class="{palette.index("eyes")}"]')
    page.stroke([(4, 26), (16, 26), (28, 26), (28, 30)])
    page.settle()
    label, _ = page.arrays()
    eyes = palette.index("eyes")
    assert (label == eyes).sum() > (before == eyes).sum() + 20  # the stroke landed as eyes
    assert ((label == before) | (label == eyes)).all()  # and changed nothing else
    # The map canvas shows exactly the palette colour of every class: no blending at the edges.
    np.testing.assert_array_equal(page.pixels("#label-canvas"), palette.colorize(label))
    first = page.pixels("#picture")
    assert first.shape == (*SIZE, 3)
    np.testing.assert_array_equal(first, page.painted([0]))

    page.click('#character-picker [data-character="2"]')
    page.settle()
    second = page.pixels("#picture")
    np.testing.assert_array_equal(second, page.painted([2]))
    assert np.abs(second.astype(int) - first).mean() > 5

    page.click("#undo")
    page.settle()
    np.testing.assert_array_equal(page.arrays()[0], before)
    page.click("#redo")
    page.settle()
    np.testing.assert_array_equal(page.arrays()[0], label)

    page.click('input[name="tool"][value="fill"]')
    page.click(f'#class-brushes [data-class="{palette.index("clothes")}"]')
    page.stroke([(0, 0)])  # the corner is background: the fill recolours all of it that touches the corner
    page.settle()
    filled, _ = page.arrays()
    assert (
        filled[0, 0] == palette.index("clothes")
        and (filled == palette.index("background")).sum() < (label == palette.index("background")).sum()
    )
    np.testing.assert_array_equal(page.pixels("#picture"), page.painted([2]))


def test_variations_strip_shows_four_other_seeds(page):
    from selenium.webdriver.support.ui import WebDriverWait

    shown = page.state()["shown"]["seed"]
    want = [shown + i for i in range(1, 5)]
    seeds_js = (
        "return Array.from(document.querySelectorAll('#variations img')).map(i => Number(i.dataset.seed))"
    )
    WebDriverWait(page.d, TIMEOUT).until(lambda d: d.execute_script(seeds_js) == want, "no variations strip")
    page.click(f'#variations img[data-seed="{want[2]}"]')
    page.settle()
    assert page.state()["shown"]["seed"] == want[2]
    np.testing.assert_array_equal(page.pixels("#picture"), page.painted([0]))


def test_characters_mix_by_region_and_blend(page):
    from selenium.webdriver.support.ui import Select

    page.click('input[name="layer"][value="owner"]')
    page.click('#owner-brushes [data-character="1"]')
    for _ in range(12):
        page.el("#brush-size").send_keys("\ue014")  # arrow right: a wider brush
    page.stroke([(24, 2), (24, 30)])
    page.settle()
    assert page.state()["mode"] == "regions"  # painting owners switches to region mixing
    _, owner = page.arrays()
    assert set(np.unique(owner)) == {0, 1} and owner[:, 24].all() and not owner[:, 0].any()
    mixed = page.pixels("#picture")
    np.testing.assert_array_equal(mixed, page.painted(torch.as_tensor(owner[None].astype(np.int64))))
    assert np.abs(mixed.astype(int) - page.painted([0])).mean() > 1
    _screenshot(page)

    page.click('input[name="mode"][value="blend"]')
    Select(page.el("#blend-b")).select_by_visible_text("character 2")
    slider = page.el("#blend-t")
    slider.send_keys("\ue011")  # home: t = 0 ...
    for _ in range(6):
        slider.send_keys("\ue014")  # ... then six steps of 0.05
    page.settle()
    assert page.state()["shown"]["blend"] == [0, 2, 0.3]
    weights = torch.tensor([[0.7, 0.0, 0.3]])
    np.testing.assert_array_equal(page.pixels("#picture"), page.painted(weights))


def test_bad_files_show_the_server_message_in_the_page(page, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    def open_file(path: Path) -> str:
        page.d.execute_script("document.getElementById('error').hidden = true")
        page.el("#open-file").send_keys(str(path))
        WebDriverWait(page.d, TIMEOUT).until(lambda d: page.el("#error").is_displayed())
        return page.el("#error-text").text

    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    assert open_file(notes) == "notes.png: not a PNG image"
    rgb = np.zeros((*SIZE, 3), np.uint8)
    rgb[:] = (1, 2, 3)
    odd = tmp_path / "odd-colours.png"
    Image.fromarray(rgb).save(odd)
    message = open_file(odd)
    assert message.startswith("odd-colours.png:") and "(1, 2, 3)" in message and "palette" in message
    label, _ = page.arrays()
    good = tmp_path / "good.png"
    flipped = np.ascontiguousarray(label[:, ::-1])
    Image.fromarray(page.painter.card.palette.colorize(flipped)).save(good)
    page.el("#open-file").send_keys(str(good))
    page.settle()
    np.testing.assert_array_equal(page.arrays()[0], flipped)
    np.testing.assert_array_equal(page.pixels("#picture"), page.painted([0]))
    open_file(notes)
    _screenshot(page, suffix="-error")


def test_save_downloads_the_map_as_an_index_png(page, tmp_path):
    page.d.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    page.click('#class-brushes [data-class="0"]')
    page.stroke([(2, 2), (10, 2)])
    page.settle()
    page.click("#save")
    saved = tmp_path / "label.png"
    deadline = time.monotonic() + TIMEOUT
    while not saved.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with Image.open(saved) as img:
        assert img.mode == "L"
        np.testing.assert_array_equal(np.asarray(img), page.arrays()[0])


def _screenshot(page: Page, suffix: str = "") -> None:
    target = os.environ.get("ANIMESIS_SCREENSHOT")
    if not target:
        return
    path = Path(target)
    if suffix:
        path = path.with_name(f"{path.stem}{suffix}{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.d.execute_script("window.scrollTo(0, 0)")
    assert page.d.save_screenshot(str(path))
