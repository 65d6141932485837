"""Opens a temblor report.html from disk in headless Chromium and says what the page did.

Usage:
    python check_report_html.py REPORT_HTML SCREENSHOT_PNG

Loads the file (file:// URL, no server) in Debian's /usr/bin/chromium through Playwright (no
browser is downloaded), blocks and records every request for anything but the file itself (the
page must be self-contained), takes a full-page screenshot, and prints one JSON object:

    {"console_errors": [...], "page_errors": [...], "external_requests": [...],
     "charts": [{"id": ..., "width": W, "height": H, "bars": B}, ...], "title": ...}

Exit status: 0 when the page was loaded and measured (the caller judges the result), 2 when the
tools are missing or the browser could not start.
"""

import json
import os
import pathlib
import sys

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def fail_setup(message):
    print(f"check_report_html: {message}", file=sys.stderr)
    sys.exit(2)


try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError as e:
    fail_setup(f"{e}; install the `playwright` pip package into this Python")


def main():
    if len(sys.argv) != 3:
        fail_setup(__doc__.strip().splitlines()[2].strip())
    page_path, shot = pathlib.Path(sys.argv[1]).resolve(), sys.argv[2]
    if not os.access(CHROMIUM, os.X_OK):
        fail_setup(f"{CHROMIUM} not found; install Debian's chromium package")
    if not page_path.is_file():
        fail_setup(f"{page_path}: no such file")
    url = page_path.as_uri()
    result = {"console_errors": [], "page_errors": [], "external_requests": []}
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60000
            )
        except PlaywrightError as e:
            fail_setup(f"cannot start {CHROMIUM}: {e}")
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(60000)

            def route(r):
                if r.request.url == url:
                    r.continue_()
                else:
                    result["external_requests"].append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on(
                "console",
                lambda m: m.type == "error" and result["console_errors"].append(m.text),
            )
            page.on("pageerror", lambda e: result["page_errors"].append(str(e)))
            page.goto(url, wait_until="load")
            result["title"] = page.title()
            result["charts"] = page.eval_on_selector_all(
                "svg.chart",
                """svgs => svgs.map(s => {
                    const r = s.getBoundingClientRect();
                    return {id: s.id, width: r.width, height: r.height,
                            bars: s.querySelectorAll('rect.bar').length};
                })""",
            )
            page.screenshot(path=shot, full_page=True)
        finally:
            browser.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
