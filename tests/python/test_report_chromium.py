"""Open the report pages in headless Chromium (Debian's `chromium`): the
pages must load without console messages (the pages' Content-Security-Policy
turns any external load into one) and every chart must be in the rendered DOM.

Set MEDFAIR_SKIP_BROWSER_TESTS=1 to skip these tests on a machine without
Chromium; without it a missing browser fails the tests. Set
MEDFAIR_UPDATE_SCREENSHOTS=1 to rewrite docs/images/report_single.png.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import struct
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest

from medfair import report

ROOT = pathlib.Path(__file__).resolve().parents[2]
BEFORE = ROOT / "tests" / "fixtures" / "audit_before"
AFTER = ROOT / "tests" / "fixtures" / "audit_after"
SCREENSHOT = ROOT / "docs" / "images" / "report_single.png"
WINDOW = (1280, 2400)


def chromium_binary() -> str:
    found = os.environ.get("MEDFAIR_CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    if os.environ.get("MEDFAIR_SKIP_BROWSER_TESTS") == "1":
        pytest.skip("chromium not found and MEDFAIR_SKIP_BROWSER_TESTS=1")
    pytest.fail("chromium not found on PATH: install Debian's chromium (scripts/install_deps.sh does), point "
                "MEDFAIR_CHROMIUM at the binary, or set MEDFAIR_SKIP_BROWSER_TESTS=1 to skip the browser tests")


def run_chromium(page: pathlib.Path, *mode: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on a local file with a fresh profile and no background networking."""
    with tempfile.TemporaryDirectory(prefix="medfair-chromium-") as profile:
        command = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking", "--disable-component-update",
                   "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                   *mode, page.resolve().as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"chromium exited with {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def console_messages(stderr: str) -> list[str]:
    """Return the page's console lines from Chromium's log (errors, CSP violations, uncaught exceptions)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class DomParser(HTMLParser):
    """Count the children of each <svg> by tag."""

    def __init__(self):
        super().__init__()
        self.charts: dict[str, dict[str, int]] = {}
        self._current: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg":
            self._current = attrs.get("id", f"svg{len(self.charts)}")
            self.charts[self._current] = {}
        elif self._current is not None:
            counts = self.charts[self._current]
            counts[tag] = counts.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self._current = None

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    return {"single": report.render_report(BEFORE, folder / "report.html"),
            "comparison": report.render_comparison(BEFORE, AFTER, folder / "comparison.html")}


@pytest.mark.parametrize("name", ["single", "comparison"])
def test_chromium_renders_charts(pages, name):
    result = run_chromium(pages[name], "--dump-dom")
    assert console_messages(result.stderr) == []
    dom = DomParser()
    dom.feed(result.stdout)
    text = " ".join(dom.text)
    assert "medfair audit" in text
    assert not re.search(r"\b(Traceback|Uncaught|This page isn't working)\b", text)
    expected_charts = 11 if name == "single" else 6
    assert len(dom.charts) == expected_charts, sorted(dom.charts)
    for chart, children in dom.charts.items():
        assert children.get("title", 0) >= 1, chart
        marks = children.get("rect", 0) + children.get("path", 0) + children.get("circle", 0)
        assert marks >= 2, (chart, children)
    if name == "single":
        assert dom.charts["q-decision-heatmap"].get("rect", 0) >= 20 * 8
        assert dom.charts["q-decision-groups"].get("path", 0) == 8


def test_chromium_reports_console_errors(tmp_path):
    # The console check must catch what it is for: a failing script and a blocked external load.
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\""
        f"{report.html.CONTENT_SECURITY_POLICY}\"></head><body><img src=\"https://example.invalid/x.png\">"
        "</body></html>", encoding="utf-8")
    result = run_chromium(page, "--dump-dom")
    messages = console_messages(result.stderr)
    assert len(messages) == 1
    assert "Content Security Policy" in messages[0]


def png_size(path: pathlib.Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_chromium_screenshot(pages, tmp_path):
    target = tmp_path / "report_single.png"
    run_chromium(pages["single"], f"--screenshot={target}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
    assert png_size(target) == WINDOW
    # A blank page compresses to a few kilobytes; the report with its charts does not.
    assert target.stat().st_size > 100_000
    if os.environ.get("MEDFAIR_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, SCREENSHOT)


def test_chromium_missing_fails(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDFAIR_CHROMIUM", raising=False)
    monkeypatch.delenv("MEDFAIR_SKIP_BROWSER_TESTS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="chromium not found on PATH"):
        chromium_binary()
