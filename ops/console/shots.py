"""`jetti-relay console screenshots`: a PNG of each console page, over a throwaway Redis seeded
by `ops/bench/seed.py`, taken by Debian's headless chromium through its chromedriver.

`chromium_driver()` is shared with the browser tests: it never downloads a browser or a driver
(selenium's manager is bypassed by naming the driver's path).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ops.harness.ports import free_port, wait_for
from ops.harness.services import Services

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
WINDOW = (1280, 1000)


def chromium_binary() -> str | None:
    """The chromium binary on PATH, or None."""
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def chromium_driver(*, width: int = WINDOW[0], height: int = WINDOW[1]) -> Any:
    """A headless chromium session driven by Debian's chromedriver (RuntimeError, saying what
    to install, when either is missing)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = chromium_binary()
    if binary is None or not os.path.exists(CHROMEDRIVER):
        raise RuntimeError(
            "headless chromium needs Debian's chromium and chromium-driver "
            f"(apt-get install chromium chromium-driver; driver expected at {CHROMEDRIVER})"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # as root in a container, chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def log_in(driver: Any, base_url: str, token: str) -> None:
    """Log in through the console's form, as a person would."""
    from selenium.webdriver.common.by import By

    driver.get(base_url + "/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "login").click()
    wait_for(lambda: driver.find_elements(By.ID, "main"), "the overview after logging in")


def start_console(services: Services, redis_url: str, env: dict[str, str], port: int) -> str:
    """Start `jetti-relay console` on `port` as a child of `services`; its base URL."""
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JETTI_RELAY_")},
        "JETTI_RELAY_REDIS_URL": redis_url,
        "JETTI_RELAY_BROKER_URL": redis_url,
        **env,
    }
    argv = [sys.executable, "-m", "ops.cli", "console", "--port", str(port)]
    process = services.start("console", argv, full_env)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(answers, "the console", process=process, log=services.log_path("console"))
    return base


def take_screenshots(out: Path, *, orders: int, dead: int) -> list[Path]:
    """Seed a throwaway Redis, start the console on it, save one PNG per page in `out`."""
    import redis

    from ops.bench.seed import seed
    from worker.core.keys import Keys

    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="jetti-relay-screenshots-"))
    services = Services(folder)
    written: list[Path] = []
    try:
        url = services.start_redis("redis").url
        client = redis.Redis.from_url(url)
        seed(client, Keys(), orders=orders, dead=dead)
        token = secrets.token_hex(16)
        base = start_console(services, url, {"JETTI_RELAY_CONSOLE_TOKEN": token}, free_port())
        order_key = client.zrevrange(Keys().received_index(), 0, 0)[0].decode()
        dead_key = client.zrevrange(Keys().dead_index(), 0, 0)[0].decode()
        shots = [
            ("overview", "/"),
            ("orders", "/orders?prefix=shop-a%3A"),
            ("order", f"/orders/entry?key={quote(order_key)}"),
            ("backlog", "/backlog?state=retry_wait"),
            ("dead-letters", "/dead-letters"),
            ("dead-letter", f"/dead-letters/entry?key={quote(dead_key)}"),
            ("jobs", "/jobs?estimate=1&reason=rejected"),
            ("alerts", "/alerts"),
        ]
        driver = chromium_driver()
        try:
            log_in(driver, base, token)
            for name, path in shots:
                driver.get(base + path)
                time.sleep(0.2)  # fonts and layout settle
                target = out / f"{name}.png"
                driver.save_screenshot(str(target))
                written.append(target)
        finally:
            driver.quit()
    finally:
        services.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return written
