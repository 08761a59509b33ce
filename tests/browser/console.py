#!/usr/bin/env python3
"""The console in a real browser: Debian's Chromium driven over WebDriver (Selenium and
chromedriver), against `chargemesh up --demo` as a newcomer runs it.

    python3 tests/browser/console.py target/debug/chargemesh

- A monitor signs in and sees a connector turn faulted live after the simulator reports a
  fault (REQ MON-1); the work order it opened shows its running countdown (FAULT-5);
  dispatching (FAULT-1), checking in (FAULT-7) and resolving it update the page.
- A driver opens a station's public page in a phone-sized window, sees the free connectors
  and the prices (SVC-2, SIGN-2) and files a complaint (CMP-2) that then appears in the
  complaint handler's queue with its 24-hour clock (CMP-1).
- The O&M manager exports the month's KPI CSV (EVAL-1).

Exits non-zero, saying what was missing, when any of it fails; the page's text and a
screenshot are left in the work directory it prints.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

CONSOLE = "http://127.0.0.1:7446"
OPERATOR = "MA2D3K7Q0"
# The demo station whose pile the test faults, and where its crew checks in.
STATION, PILE = "SX-KQ-002", "SX-KQ-002-P01"
CONNECTOR = f"{PILE}-1"
STATION_AT = ("120.582", "30.0")
PUBLIC_STATION = "SX-YC-001"


def browser(work, phone=False):
    options = Options()
    options.binary_location = os.environ.get("CHARGEMESH_CHROMIUM", "/usr/bin/chromium")
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=zh-CN"]:
        options.add_argument(arg)
    if phone:
        options.add_experimental_option(
            "mobileEmulation",
            {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0}},
        )
    else:
        options.add_argument("--window-size=1280,900")
    options.add_experimental_option(
        "prefs", {"download.default_directory": work, "download.prompt_for_download": False}
    )
    service = Service(os.environ.get("CHARGEMESH_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": work}
    )
    return driver


def wait(driver, what, condition, seconds=20):
    # A page replaced while it is read (a form submitted, a redirect followed) is read again.
    ignored = (StaleElementReferenceException, NoSuchElementException)

    def replaced_page_is_not_yet(d):
        # Chromium reports an element of a page replaced between two calls this way, too.
        try:
            return condition(d)
        except WebDriverException as error:
            if "does not belong to the document" in str(error):
                return False
            raise

    try:
        return WebDriverWait(driver, seconds, ignored_exceptions=ignored).until(replaced_page_is_not_yet)
    except TimeoutException:
        raise AssertionError(f"{what}: not seen within {seconds} s on {driver.current_url}")


def sign_in(driver, who):
    driver.delete_all_cookies()
    driver.get(f"{CONSOLE}/signin")
    Select(driver.find_element(By.ID, "who")).select_by_visible_text(who)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(driver, f"{who} signed in", EC.presence_of_element_located((By.CSS_SELECTOR, "span.who")))


def text(driver):
    # Read in one script call, holding no element: a body found and then read in two calls can
    # be replaced in between by a redirect, which chromium reports as a generic inspector error
    # ("Node with given id does not belong to the document"), not as a stale element.
    return driver.execute_script("return document.body ? document.body.innerText : '';")


def monitor_and_repair(bin_path, pki, work):
    driver = browser(work)
    try:
        sign_in(driver, "王监控 — 监控员")
        assert driver.current_url.endswith("/fleet"), driver.current_url
        tile = f'[data-connector="{OPERATOR}/{CONNECTOR}"]'
        wait(driver, "the connector's tile", EC.presence_of_element_located((By.CSS_SELECTOR, tile)))
        # The simulator reports a fault on the pile; the open page shows it without a reload.
        subprocess.run(
            [bin_path, "sim-report", "--pki", pki, "--station", STATION, "--pile", PILE,
             "--state", "fault", "--fault-code", "E-BRW-1", "--fault-text", "gun lock"],
            check=True,
        )
        wait(
            driver,
            "the connector turning faulted live",
            lambda d: "s255" in d.find_element(By.CSS_SELECTOR, tile).get_attribute("class")
            and "故障" in d.find_element(By.CSS_SELECTOR, tile).text,
        )
        # REQ FAULT-4, FAULT-5: the fault opened an order, shown with its countdown running.
        def order_link(d):
            d.get(f"{CONSOLE}/work-orders")
            rows = [r for r in d.find_elements(By.CSS_SELECTOR, "table.orders tbody tr") if PILE in r.text]
            return rows[0].find_element(By.CSS_SELECTOR, "a") if rows else False

        link = wait(driver, "the automatic work order", order_link, 30)
        row = link.find_element(By.XPATH, "./ancestor::tr")
        countdown = row.find_element(By.CSS_SELECTOR, ".countdown")
        first = countdown.text
        assert "剩余" in first, first
        due = int(countdown.get_attribute("data-due"))
        assert 0 < due - time.time() <= 2 * 3600, f"arrival due within 2 h: {due}"
        order = link.text
        link.click()
        # Dispatch to a crew of two qualified repairers (REQ FAULT-1).
        for staff in ["R-001", "R-002"]:
            driver.find_element(By.CSS_SELECTOR, f'input[name=crew][value="{staff}"]').click()
        driver.find_element(By.XPATH, "//button[text()='派单']").click()
        wait(driver, "dispatched", lambda d: "已派单" in text(d) and "已保存" in text(d))

        # The repairer checks in on site and resolves.
        sign_in(driver, "李维修 — 维修人员")
        driver.get(f"{CONSOLE}/work-orders/{order}")
        driver.find_element(By.ID, "longitude").send_keys(STATION_AT[0])
        driver.find_element(By.ID, "latitude").send_keys(STATION_AT[1])
        driver.find_element(By.XPATH, "//button[text()='到场签到']").click()
        wait(driver, "checked in", lambda d: "已到场" in text(d))
        driver.find_element(By.ID, "test_record").send_keys("更换枪锁，试充 5 分钟正常")
        driver.find_element(By.XPATH, "//button[text()='提交修复']").click()
        wait(driver, "resolved", lambda d: "已修复" in text(d))
        print(f"monitor and repairer: ok (order {order}, countdown {first!r})")
    except Exception:
        driver.save_screenshot(os.path.join(work, "monitor.png"))
        with open(os.path.join(work, "monitor.txt"), "w") as f:
            f.write(driver.page_source)
        raise
    finally:
        driver.quit()


def driver_complains(work):
    phone = browser(work, phone=True)
    desk = browser(work)
    try:
        phone.get(f"{CONSOLE}/s/{OPERATOR}/{PUBLIC_STATION}")
        wait(phone, "the public page", EC.presence_of_element_located((By.CSS_SELECTOR, "section.free")))
        width = phone.execute_script("return document.documentElement.clientWidth")
        assert width <= 400, f"a phone-sized window, not {width}px"
        page = text(phone)
        assert "当前空闲充电接口" in page and "收费标准" in page and "1.2500" in page, page
        scroll = phone.execute_script("return document.documentElement.scrollWidth")
        assert scroll <= width + 1, f"the page fits the phone: {scroll}px wide in {width}px"
        Select(phone.find_element(By.ID, "category")).select_by_visible_text("其他")
        phone.find_element(By.ID, "description").send_keys("雨棚漏水，充电枪被淋湿")
        phone.find_element(By.ID, "customer_contact").send_keys("139 1234 5678")
        phone.find_element(By.XPATH, "//button[text()='提交']").click()
        number = wait(phone, "the complaint's number", EC.presence_of_element_located((By.CSS_SELECTOR, "strong.ref"))).text
        assert number.startswith("CP-"), number

        sign_in(desk, "陈客服 — 客服")
        assert desk.current_url.endswith("/complaints"), desk.current_url
        row = wait(
            desk,
            "the complaint in the queue",
            lambda d: next((r for r in d.find_elements(By.CSS_SELECTOR, "tbody tr") if number in r.text), False),
        )
        clock = row.find_element(By.CSS_SELECTOR, ".countdown").text
        assert "23 h" in clock or "24 h" in clock, f"the 24-hour clock: {clock!r}"
        print(f"driver and desk: ok ({number}, {clock})")
    except Exception:
        for name, d in [("phone", phone), ("desk", desk)]:
            d.save_screenshot(os.path.join(work, f"{name}.png"))
        raise
    finally:
        phone.quit()
        desk.quit()


def manager_exports(work):
    driver = browser(work)
    try:
        sign_in(driver, "赵经理 — 运维经理")
        assert driver.current_url.endswith("/reports"), driver.current_url
        driver.find_element(By.LINK_TEXT, "运营指标 CSV").click()

        def downloaded(_):
            done = [f for f in os.listdir(work) if f.startswith("kpi-") and f.endswith(".csv")]
            return done[0] if done else False

        name = wait(driver, "the KPI CSV downloaded", downloaded)
        with open(os.path.join(work, name), encoding="utf-8") as f:
            content = f.read()
        assert content.startswith("\ufeff") and OPERATOR in content, content[:200]
        print(f"manager: ok ({name}, {len(content.splitlines())} lines)")
    finally:
        driver.quit()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    bin_path = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="chargemesh-browser-")
    print(f"work directory: {work}")
    log = open(os.path.join(work, "up.log"), "w")
    up = subprocess.Popen(
        [bin_path, "up", "--demo", "--data-dir", os.path.join(work, "data")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"{CONSOLE}/healthz", timeout=2).read()
                break
            except OSError:
                if up.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"chargemesh up did not serve the console; see {log.name}")
                time.sleep(1)
        pki = os.path.join(work, "data", "pki")
        monitor_and_repair(bin_path, pki, work)
        driver_complains(work)
        manager_exports(work)
        print("browser tests: ok")
    finally:
        os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
