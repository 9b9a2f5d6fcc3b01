"""A screenshot of `animesis paint` for the README: the app on a trained checkpoint, started from an example.

python scripts/app_screenshot.py --checkpoint checkpoints/NAME --out docs/images/app.png
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait


def start_app(checkpoint: str, which: str) -> tuple[subprocess.Popen, str]:
    cmd = [
        sys.executable,
        "-m",
        "animesis",
        "paint",
        "--checkpoint",
        checkpoint,
        "--iter",
        which,
        "--port",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = re.search(r"http://127\.0\.0\.1:\d+/", proc.stdout.readline())
    if not url:
        proc.kill()
        raise SystemExit(proc.stderr.read())
    return proc, url.group(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--iter", default="latest")
    ap.add_argument("--example", default="face-1")
    ap.add_argument("--character", type=int, default=3)
    ap.add_argument("--out", default="docs/images/app.png")
    args = ap.parse_args()
    proc, url = start_app(args.checkpoint, args.iter)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--window-size=1300,1000", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        d.get(url)
        busy = "return document.body.dataset.busy === '0' && window.animesisApp.snapshot().seq > 0"
        WebDriverWait(d, 60).until(lambda d: d.execute_script(busy))
        Select(d.find_element(By.ID, "example")).select_by_value(args.example)
        d.find_element(By.ID, "load-example").click()
        d.find_elements(By.CSS_SELECTOR, "#character-picker button")[args.character].click()
        time.sleep(1.0)
        WebDriverWait(d, 60).until(lambda d: d.execute_script("return document.body.dataset.busy === '0'"))
        time.sleep(1.5)  # the variations strip follows the picture
        d.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.3)
        d.save_screenshot(args.out)
        print(args.out)
    finally:
        d.quit()
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
