"""Opens temblor's prototxt views in the real Netron and counts what it draws.

Usage:
    python check_netron.py [--timeout S] [--screenshots DIR] FILE[:N] [FILE[:N] ...]

For each file: serve it with the `netron` package's own server, load the page in headless
Chromium (Playwright, the system /usr/bin/chromium; no browser is downloaded), accept the cookie
notice Netron shows on a first visit, wait until the graph is drawn or an error is shown, and
print one JSON line:

    {"file": ..., "nodes": N, "layers": L, "inputs": I, "edges": E, "expected": N or null,
     "error": null or the message Netron showed}

What Netron 9 draws for a Caffe prototxt, as `<g class="node ...">` elements of the SVG:
  - one `g.node.graph-node` per `layer { ... }` (Netron would fold a layer whose single top
    equals its single bottom into the layer before it; temblor never writes such a layer);
  - one `g.node.graph-input` per top-level `input: "..."`;
  - nothing for graph outputs: Caffe has no output declaration.
So `nodes` = layers + inputs, and the expected N given as `FILE:N` is the number of `layer {`
blocks plus the number of `input:` lines. `edges` counts drawn edges (one per `bottom` that
names an earlier `top` or input); it is reported, not checked.

Exit status: 0 when every file loaded without error and matched its expected count, 1 when one
did not, 2 when the tools are missing (netron, playwright or chromium). Every wait is bounded.
"""

import argparse
import datetime
import json
import logging
import os
import re
import sys
import time

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def fail_setup(message):
    print(f"check_netron: {message}", file=sys.stderr)
    sys.exit(2)


try:
    import netron
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError as e:
    fail_setup(f"{e}; install the `netron` and `playwright` pip packages into this Python")


def netron_build_date():
    """Netron asks to be updated, and draws nothing, once its build is 180 days old; the page
    clock is set to its build date so an old pinned version keeps working."""
    index = os.path.join(os.path.dirname(netron.__file__), "index.html")
    with open(index, encoding="utf-8") as f:
        found = re.search(r'<meta name="date" content="([0-9-]+)', f.read())
    if not found:
        return None
    return datetime.datetime.strptime(found.group(1), "%Y-%m-%d") + datetime.timedelta(days=1)


def state(page):
    """(body class, message text, message button text) of the Netron page."""
    body = page.locator("body").get_attribute("class", timeout=5000) or ""
    text = page.locator("#message-text").inner_text(timeout=5000).strip()
    button = page.locator("#message-button").inner_text(timeout=5000).strip()
    return body.split(), text, button


def open_in_netron(browser, path, timeout_s, screenshots):
    address = netron.serve(path, address=("localhost", 0), browse=False)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        build = netron_build_date()
        if build:
            page.clock.set_system_time(build)
        page.goto(f"http://{address[0]}:{address[1]}/", timeout=timeout_s * 1000)
        deadline = time.monotonic() + timeout_s
        result = {"nodes": 0, "layers": 0, "inputs": 0, "edges": 0, "error": None}
        last = -1
        while True:
            body, text, button = state(page)
            if "alert" in body:
                result["error"] = text or "Netron showed an error with no message"
                break
            if "notification" in body and button == "Accept":
                page.locator("#message-button").click(timeout=5000)
            elif "notification" in body and button == "Update":
                result["error"] = f"Netron refuses to run: {text}"
                break
            elif "default" in body:
                count = page.locator("g.node").count()
                if count > 0 and count == last:
                    break
                last = count
            if time.monotonic() > deadline:
                result["error"] = f"no graph after {timeout_s} s (page state {body}: {text!r})"
                break
            time.sleep(0.5)
        result["layers"] = page.locator("g.node.graph-node").count()
        result["inputs"] = page.locator("g.node.graph-input").count()
        result["nodes"] = page.locator("g.node").count()
        result["edges"] = page.locator("g.edge-paths > path").count()
        if screenshots:
            name = os.path.basename(path) + ".png"
            page.screenshot(path=os.path.join(screenshots, name), timeout=timeout_s * 1000)
        return result
    finally:
        context.close()
        netron.stop(address)


def parse_target(arg):
    path, sep, count = arg.rpartition(":")
    if sep and count.isdigit():
        return path, int(count)
    return arg, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", metavar="FILE[:N]")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per file")
    parser.add_argument("--screenshots", metavar="DIR", help="save a PNG of each graph here")
    args = parser.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        fail_setup(f"{CHROMIUM} not found; install Debian's chromium package")
    # netron.serve logs each request at INFO unless logging is already configured.
    logging.basicConfig(level=logging.WARNING)
    targets = [parse_target(a) for a in args.files]
    for path, _ in targets:
        if not os.path.isfile(path):
            fail_setup(f"{path}: no such file")
    if args.screenshots:
        os.makedirs(args.screenshots, exist_ok=True)
    ok = True
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60000
            )
        except PlaywrightError as e:
            fail_setup(f"cannot start {CHROMIUM}: {e}")
        try:
            for path, expected in targets:
                try:
                    result = open_in_netron(browser, path, args.timeout, args.screenshots)
                except PlaywrightError as e:
                    result = {"nodes": 0, "error": f"browser: {e}".splitlines()[0]}
                result = {"file": path, **result, "expected": expected}
                print(json.dumps(result), flush=True)
                if result["error"] or (expected is not None and result["nodes"] != expected):
                    ok = False
        finally:
            browser.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
