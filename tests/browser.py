"""Headless Chromium over the DevTools protocol (Debian's `chromium`; websocket-client): open a page
from file://, collect console errors and exceptions, measure every image, save screenshots."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("DIS_CHROMIUM", "/usr/bin/chromium")


def chromium_path() -> str | None:
    """The Chromium binary, or None when it is not installed."""
    for c in (CHROMIUM, shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


class _Page:
    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        end = time.monotonic() + timeout
        for e in self.events:
            if e.get("method") == method:
                return e
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return msg
        raise TimeoutError(method)

    def close(self) -> None:
        self.ws.close()


def inspect_page(html: Path, screenshot: Path, width: int = 1400, height: int = 3000) -> dict:
    """Load ``html`` in headless Chromium; return console errors, exceptions, failed requests and every
    image's natural and rendered size; write a screenshot of the top ``width`` x ``height`` pixels
    (``screenshot``) and of the whole page (``<stem>_full.png``)."""
    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError("chromium is not installed")
    profile = tempfile.mkdtemp(prefix="dis-chromium-")
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-dev-shm-usage",  # a container's 64 MB /dev/shm crashed renderers on a whole-page screenshot
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         f"--window-size={width},{height}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        end = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > end or proc.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an http_proxy
        targets = json.loads(direct.open(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
        page = _Page(next(t for t in targets if t.get("type") == "page")["webSocketDebuggerUrl"])
        try:
            for dom in ("Page", "Runtime", "Log", "Network"):
                page.call(f"{dom}.enable")
            page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
            page.call("Page.navigate", url=Path(html).resolve().as_uri())
            page.wait_event("Page.loadEventFired")
            images = json.loads(page.call("Runtime.evaluate", returnByValue=True, expression=(
                "JSON.stringify(Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, "
                "natural_w: i.naturalWidth, natural_h: i.naturalHeight, shown_w: i.getBoundingClientRect().width,"
                " shown_h: i.getBoundingClientRect().height, scheme: i.src.split(':')[0]})))"))["result"]["value"])
            full_h = int(page.call("Runtime.evaluate", returnByValue=True,
                                   expression="document.documentElement.scrollHeight")["result"]["value"])
            shot = page.call("Page.captureScreenshot", format="png")
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
            full = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                             clip={"x": 0, "y": 0, "width": width, "height": full_h, "scale": 0.5})
            Path(screenshot).with_name(Path(screenshot).stem + "_full.png").write_bytes(base64.b64decode(full["data"]))
            time.sleep(0.3)
            page.call("Runtime.evaluate", expression="1")  # drain late events
            ev = page.events
            errors = [e["params"] for e in ev if e.get("method") == "Runtime.consoleAPICalled"
                      and e["params"].get("type") in ("error", "assert")]
            errors += [e["params"] for e in ev if e.get("method") == "Runtime.exceptionThrown"]
            errors += [e["params"]["entry"] for e in ev if e.get("method") == "Log.entryAdded"
                       and e["params"]["entry"].get("level") == "error"]
            requests = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"]
            failed = [e["params"] for e in ev if e.get("method") == "Network.loadingFailed"]
            return {"errors": errors, "images": images, "requests": requests, "failed_requests": failed,
                    "height": full_h}
        finally:
            page.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
