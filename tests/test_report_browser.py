"""Open the fixture report in headless Chromium: every figure decodes and the page logs no errors."""

import html as htmllib
import json
import re
import shutil
import subprocess

import pytest

from report_fixture import make_study
from spillover.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Injected at the top of <head> of a copy of the report: records errors (including failed image
# loads, which do not bubble) and, once everything loaded, writes what it found into the DOM.
CHECK = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || (e.target && e.target.outerHTML.slice(0, 80)))), true);
const __consoleError = console.error;
console.error = (...a) => { window.__errors.push(a.join(" ")); __consoleError(...a); };
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const out = {images: imgs.length, decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
               errors: window.__errors, sections: Array.from(document.querySelectorAll("section")).map(s => s.id),
               hiddenExamples: Array.from(document.querySelectorAll("details")).every(d => !d.open)};
  const pre = document.createElement("pre");
  pre.id = "report-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_opens_in_chromium(tmp_path):
    report = build_report(make_study(tmp_path / "study"))
    page = tmp_path / "checked.html"
    page.write_text(report.read_text().replace("<head>", "<head>\n" + CHECK, 1))
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'<pre id="report-check">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"check did not run (rc {proc.returncode}): {proc.stderr[-2000:]}"
    check = json.loads(htmllib.unescape(found.group(1)))
    assert check["images"] == 9 and check["decoded"] == check["images"]
    assert check["errors"] == []
    assert check["sections"] == ["table", "radar", "spillover", "methods", "kl", "training", "judges", "concepts",
                                 "examples", "manifest"]
    assert check["hiddenExamples"]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
