"""The HTML report in a real browser: headless Chromium loads it without errors and shows its plots.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
NUL-separated JSON on file descriptors 3 and 4), so the test needs nothing beyond
the standard library and Debian's ``chromium`` package (``scripts/install-chromium``).
A missing browser fails the test; it never skips.

The report holds real results committed in ``results/``: the baseline's STS-B cells
(which record bytes per vector) and a pooling × layer sweep of MiniLM, so all four figures are drawn.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalkit.cli import main as evalkit
from evalkit.results import ResultStore

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "results" / "baseline"
POOLING = REPO / "results" / "examples" / "pooling"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1280,1000",
]
SWEEP = {f"hf:all-MiniLM-L6-v2?layer={layer}&pooling={p}" for p in ("mean", "cls") for layer in (3, -1)}


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run scripts/install-chromium (apt-get install chromium)")
    return found


class DevTools:
    """A minimal Chrome DevTools protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome_r, self._out = os.pipe()
        self._in, from_chrome_w = os.pipe()

        def fds() -> None:  # the child reads commands on fd 3 and writes replies on fd 4
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            preexec_fn=fds,
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params: Any) -> dict[str, Any]:
        self._next += 1
        payload: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            payload["sessionId"] = session
        os.write(self._out, json.dumps(payload).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read(deadline)
            if message.get("id") == self._next:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            message = self._read(deadline)
            self.events.append(message)
            if message.get("method") == method:
                return message

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.send("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._in)
        os.close(self._out)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """leaderboard.html over the baseline's STS-B cells plus the committed pooling × layer sweep."""
    root = tmp_path_factory.mktemp("html")
    store = ResultStore(root / "results")
    for result in [*ResultStore(BASELINE), *ResultStore(POOLING)]:
        if result.task == "STSBenchmark":
            store.write(result)
    assert {r.encoder for r in ResultStore(POOLING)} == set(SWEEP)
    assert evalkit(["report", str(store.root), "-f", "html", "-o", str(root), "--title", "evalkit <STS-B> & pooling"]) == 0
    return root / "leaderboard.html"


def non_blank(png: bytes) -> tuple[float, float]:
    """(fraction of pixels that are not background, pixel standard deviation) of a screenshot."""
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(png), format="png")[..., :3]
    background = np.all(pixels > 0.97, axis=-1)
    return float(1 - background.mean()), float(pixels.std())


def test_report_is_one_self_contained_file(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    for remote in ("http://", "https://", "//cdn", "<script", "<link"):
        assert remote not in page.replace("http-equiv", "")
    assert page.count('src="data:image/png;base64,') == 4
    assert "evalkit &lt;STS-B&gt; &amp; pooling" in page


def test_report_loads_in_headless_chromium_with_visible_plots(report: Path, tmp_path: Path) -> None:
    browser = DevTools(chromium(), tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session)
        browser.send("Page.navigate", session, url=report.as_uri())
        browser.wait_for("Page.loadEventFired")
        probe = """JSON.stringify({
            title: document.title,
            rows: document.querySelectorAll('#leaderboard tbody tr').length,
            images: [...document.images].map(i => ({figure: i.closest('figure').id, complete: i.complete,
                width: i.naturalWidth, height: i.naturalHeight, box: i.getBoundingClientRect().toJSON()}))})"""
        state = json.loads(browser.send("Runtime.evaluate", session, expression=probe, returnByValue=True)["result"]["value"])
        errors = [
            e
            for e in browser.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
        ]
        assert errors == [], errors
        assert state["title"] == "evalkit <STS-B> & pooling"
        assert state["rows"] == 2 + len(SWEEP)
        figures = {image["figure"]: image for image in state["images"]}
        assert set(figures) == {"fig-quality-throughput", "fig-quality-bytes", "fig-per-task", "fig-pooling"}
        for name, image in figures.items():
            assert image["complete"] and image["width"] > 300 and image["height"] > 150, (name, image)
            box = image["box"]
            assert box["width"] > 300 and box["height"] > 150, (name, box)
            clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"], "scale": 1}
            shot = browser.send("Page.captureScreenshot", session, format="png", clip=clip, captureBeyondViewport=True)
            inked, spread = non_blank(base64.b64decode(shot["data"]))
            assert inked > 0.05 and spread > 0.05, (name, inked, spread)  # drawn, not a blank or broken image
        page = browser.send("Page.captureScreenshot", session, format="png", captureBeyondViewport=True)
        (tmp_path / "report.png").write_bytes(base64.b64decode(page["data"]))
    finally:
        browser.close()
