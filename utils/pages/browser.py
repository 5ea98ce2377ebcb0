"""Open pages in headless Chromium (over the DevTools protocol) and report blank figures, blank attention views and
JavaScript errors; save a screenshot of each page. Needs the `chromium` binary (Debian package `chromium`)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Run in the page: what each figure and attention view looks like once drawn
INSPECT_JS = """(() => {
  const figures = [...document.querySelectorAll(".cbt-plotly")].map((div) => {
    const drawn = div.querySelectorAll(".main-svg .trace, .main-svg .heatmaplayer image, .main-svg .barlayer .point").length;
    const data = (div._fullData || []).length;
    return {id: div.id, ok: data > 0 && drawn > 0 && div.getBoundingClientRect().height > 50, data, drawn};
  });
  const views = [...document.querySelectorAll(".cbt-attention")].map((box) => {
    const live = box.querySelector(".cbt-attention-live");
    const height = live ? live.getBoundingClientRect().height : 0;
    return {id: live ? live.id : "?", ok: height > 50 && live.querySelectorAll("*").length > 10, height};
  });
  return {href: location.href, ready: document.readyState, done: window.cbtPageDone === true, figures, views};
})()"""


def find_chromium() -> str | None:
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageReport:
    """What one page showed in the browser."""

    page: str
    figures: int = 0
    blank_figures: list[str] = field(default_factory=list)
    views: int = 0
    blank_views: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    screenshot: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.blank_figures or self.blank_views or self.errors)

    def summary(self) -> str:
        state = "ok" if self.ok else "FAILED"
        text = f"{self.page}: {state}: {self.figures} figures, {self.views} attention views"
        if self.blank_figures:
            text += f"; blank figures {self.blank_figures}"
        if self.blank_views:
            text += f"; blank attention views {self.blank_views}"
        if self.errors:
            text += "; JavaScript errors: " + " | ".join(self.errors[:5])
        return text


class Chromium:
    """A headless Chromium with one tab, driven over the DevTools websocket."""

    def __init__(self, binary: str | None = None, width: int = 1280, height: int = 1600):
        import websocket  # websocket-client, installed with Jupyter

        binary = binary or find_chromium()
        if binary is None:
            raise FileNotFoundError("no Chromium found: install the Debian package `chromium` (apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="cbt-chromium-")
        args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}", "about:blank"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.time() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError(f"Chromium ({binary}) did not start")
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            tab = next(t for t in json.load(reply) if t["type"] == "page")
        self.socket = websocket.create_connection(tab["webSocketDebuggerUrl"], timeout=120, suppress_origin=True)
        self.next_id, self.events = 0, []
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def errors(self) -> list[str]:
        """JavaScript exceptions, console.error calls and failed loads seen so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append("console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}".strip())
        return found

    def close(self) -> None:
        if getattr(self, "socket", None) is not None:
            self.socket.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def check_page(browser: Chromium, page: Path, shots: Path | None = None, timeout: float = 90) -> PageReport:
    """Load one page, wait until its figures and attention views are drawn (or the timeout), inspect it."""
    browser.events.clear()
    url = Path(page).resolve().as_uri()
    browser.send("Page.navigate", url=url)
    deadline, state = time.time() + timeout, {}
    while time.time() < deadline:
        state = browser.evaluate(INSPECT_JS) or {}
        if state.get("href") != url or state.get("ready") != "complete":  # still the previous document
            state = {}
            time.sleep(0.2)
            continue
        drawn = all(f["ok"] for f in state.get("figures", [])) and all(v["ok"] for v in state.get("views", []))
        if state.get("done") and drawn:
            break
        time.sleep(0.5)
    report = PageReport(Path(page).name, len(state.get("figures", [])), [], len(state.get("views", [])), [])
    report.blank_figures = [f["id"] for f in state.get("figures", []) if not f["ok"]]
    report.blank_views = [v["id"] for v in state.get("views", []) if not v["ok"]]
    report.errors = browser.errors() + ([] if state.get("done") else ["the page's figure script never finished"])
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
        browser.evaluate(
            "(document.querySelector('.cbt-attention') || document.querySelector('.cbt-plotly') || document.body)"
            ".scrollIntoView()"
        )
        time.sleep(0.5)
        image = browser.send("Page.captureScreenshot", format="png")["data"]
        path = shots / (Path(page).stem + ".png")
        path.write_bytes(base64.b64decode(image))
        report.screenshot = str(path)
    return report


def check_pages(pages: list[Path], shots: Path | None = None) -> list[PageReport]:
    browser = Chromium()
    try:
        return [check_page(browser, page, shots) for page in pages]
    finally:
        browser.close()
