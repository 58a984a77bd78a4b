"""The operator's UI in a real browser: Debian's chromium, headless, driven over WebDriver by
Debian's chromium-driver (nothing downloads a browser or a driver), against a real
`scimtrail demo` (which serves with the demo's traffic recorded) whose admin listener asks for
a token. Loopback only.

    python tests/browser/ui_test.py path/to/scimtrail SCREENSHOT_DIR

Each step's screenshot is saved in SCREENSHOT_DIR (CI keeps them under target/); the exchange
view's is also the README's picture (docs/ui-exchange.png, copied by hand when the UI changes).
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

TOKEN = "browser-test-admin-token"
HOSTILE = "<script>window.__xss=1</script>\"><img src=x onerror=\"window.__xss=2\">"


def start_demo(binary, workdir):
    env = dict(os.environ, SCIMTRAIL_DEMO_ADMIN_TOKEN=TOKEN)
    log = open(os.path.join(workdir, "demo.log"), "w+")
    demo = subprocess.Popen([binary, "demo"], cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        log.seek(0)
        text = log.read()
        if "Serving until Ctrl-C" in text:
            ui = re.search(r"UI:\s+(http://127\.0\.0\.1:\d+)/ui/", text).group(1)
            proxy = re.search(r"Proxy:\s+(http://127\.0\.0\.1:\d+)/", text).group(1)
            return demo, ui, proxy
        if demo.poll() is not None:
            break
        time.sleep(0.2)
    log.seek(0)
    raise SystemExit("the demo did not start:\n" + log.read())


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--window-size=1280,900"):
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


class Steps:
    def __init__(self, driver, shots):
        self.driver = driver
        self.shots = shots
        self.n = 0

    def shot(self, name):
        self.n += 1
        path = os.path.join(self.shots, f"{self.n:02d}-{name}.png")
        self.driver.save_screenshot(path)
        print(f"  screenshot {path}")
        return path

    def navigate(self, element):
        """Clicks what leads to another page, and waits until the old one is gone (else the
        next look finds the old page's elements, which share ids with the new one's)."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        WebDriverWait(self.driver, 15).until(ready.staleness_of(old))

    def wait_for(self, by, what, timeout=15):
        return WebDriverWait(self.driver, timeout).until(ready.presence_of_element_located((by, what)))

    def text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text


def send(url, method="GET", body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("content-type", "application/scim+json")
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def raw(base, method, path, headers, body=b""):
    """A request with headers a browser would never let a page set (Host among them)."""
    url = urllib.parse.urlparse(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.putheader("content-length", str(len(body)))
    connection.endheaders(body)
    answer = connection.getresponse()
    return answer.status, answer.read().decode(errors="replace")


def main():
    binary, shots = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.makedirs(shots, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="scimtrail-ui-test-")
    demo, ui, proxy = start_demo(binary, workdir)
    driver = browser()
    steps = Steps(driver, shots)
    try:
        host = urllib.parse.urlparse(ui).netloc

        print("log in with the token")
        driver.get(ui + "/ui/")
        steps.wait_for(By.ID, "token")
        assert "/ui/login" in driver.current_url, driver.current_url
        steps.shot("login")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        steps.navigate(driver.find_element(By.ID, "login"))
        steps.wait_for(By.ID, "rows")

        print("filter to a failed deactivation")
        Select(driver.find_element(By.NAME, "lifecycle")).select_by_value("deactivate")
        driver.find_element(By.NAME, "failed").click()
        steps.navigate(driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
        steps.wait_for(By.CSS_SELECTOR, "#rows tr[data-id]")
        rows = driver.find_elements(By.CSS_SELECTOR, "#rows tr[data-id]")
        assert len(rows) == 1, f"{len(rows)} failed deactivations"
        assert "failed" in rows[0].text and "deactivate" in rows[0].text, rows[0].text
        steps.shot("failed-deactivations")

        print("open it: the rule diff and the finding")
        steps.navigate(rows[0].find_element(By.CSS_SELECTOR, "td a"))
        steps.wait_for(By.CSS_SELECTOR, "table.changes")
        page = steps.text()
        for expected in ("N1", "N2", "\"False\"", "non_scim_error", "As forwarded to the application",
                         "Down for maintenance", "grace@example.com"):
            assert expected in page, f"the exchange view does not show {expected}"
        exchange_url = driver.current_url
        steps.shot("exchange")
        shutil.copy(os.path.join(shots, f"{steps.n:02d}-exchange.png"), os.path.join(shots, "ui-exchange.png"))

        print("the user's timeline")
        steps.navigate(driver.find_element(By.PARTIAL_LINK_TEXT, "timeline of grace@example.com"))
        steps.wait_for(By.CSS_SELECTOR, "table.timeline")
        page = steps.text()
        assert "provision" in page and "deactivate" in page and "exists, inactive" in page, page
        steps.shot("timeline")

        print("dry-run a replay, then run it")
        driver.get(exchange_url)
        steps.navigate(steps.wait_for(By.CSS_SELECTOR, "button[name=scope]"))
        steps.wait_for(By.ID, "replay-summary")
        assert "1 would be replayed" in steps.text(), steps.text()
        steps.shot("replay-dry-run")
        steps.navigate(driver.find_element(By.ID, "confirm-replay"))
        summary = steps.wait_for(By.ID, "replay-summary")
        assert "1 replayed (1 succeeded, 0 failed)" in summary.text, summary.text
        steps.shot("replay-result")

        print("the overview")
        driver.get(ui + "/ui/overview")
        steps.wait_for(By.CSS_SELECTOR, "figure.chart")
        assert "Failed deactivations and deprovisions" in steps.text()
        steps.shot("overview")

        print("live mode: a new exchange appears without a reload")
        driver.get(ui + "/ui/?route=okta")
        steps.wait_for(By.ID, "live").click()
        before = len(driver.find_elements(By.CSS_SELECTOR, "#rows tr[data-id]"))
        status, _ = send(proxy + "/okta/Users?filter=" + urllib.parse.quote('userName eq "live@example.com"'))
        assert status == 200, status
        WebDriverWait(driver, 15).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tr[data-id]")) > before)
        steps.shot("live")

        print("a hostile body renders as text")
        user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": HOSTILE, "displayName": HOSTILE}
        status, body = send(proxy + "/okta/Users", "POST", user)
        driver.get(ui + "/ui/?user=" + urllib.parse.quote("window.__xss"))
        row = steps.wait_for(By.CSS_SELECTOR, "#rows tr[data-id] td a")
        steps.navigate(row)
        steps.wait_for(By.CSS_SELECTOR, "table.changes, section.summary")
        assert driver.execute_script("return window.__xss === undefined"), "a recorded script ran"
        assert "<script>window.__xss=1</script>" in steps.text(), "the hostile value is not shown as text"
        steps.shot("hostile-body-as-text")

        print("keyboard: the first Tab reaches the navigation")
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        focused = driver.switch_to.active_element
        assert focused.tag_name == "a", focused.tag_name

        print("a phone's screen: no page is wider than it")
        driver.set_window_size(390, 844)
        timeline = ui + "/ui/timeline?user=" + urllib.parse.quote("grace@example.com")
        for page in (exchange_url, timeline, ui + "/ui/overview", ui + "/ui/"):
            driver.get(page)
            steps.wait_for(By.ID, "main")
            wide, screen = driver.execute_script(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert wide <= screen, f"{page} is {wide}px wide on a {screen}px screen"
        steps.shot("phone")
        driver.set_window_size(1280, 900)

        print("a POST without the CSRF token, and a foreign Host, are refused")
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
        form = urllib.parse.urlencode({"scope": "filter", "filter": ""}).encode()
        status, _ = raw(ui, "POST", "/ui/replay", {"Host": host, "Cookie": cookie,
                                                     "Content-Type": "application/x-www-form-urlencoded"}, form)
        assert status == 403, f"a CSRF-less POST got {status}"
        status, _ = raw(ui, "GET", "/ui/", {"Host": "attacker.example", "Cookie": cookie})
        assert status == 421, f"a foreign Host got {status}"
        status, _ = raw(ui, "GET", "/api/v1/exchanges", {"Host": host, "Authorization": "Bearer " + TOKEN})
        assert status == 200, f"the API's bearer token got {status}"
        print("ok: the UI in Chromium")
    except Exception:
        steps.shot("failure")
        print("at", driver.current_url, "the page said:\n", steps.text()[:2000])
        raise
    finally:
        driver.quit()
        demo.terminate()
        demo.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
