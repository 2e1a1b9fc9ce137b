"""The documentation as a person sees it: build, check every link and image, screenshot.

    python docs/check_rendered.py                  # build (gallery on small settings), check, screenshot
    python docs/check_rendered.py --no-build       # check and screenshot the last build
    python docs/check_rendered.py --out /tmp/shots # where the screenshots go (default: a temporary folder)

1. Builds the site into ``docs/_build/html`` (as CI does: warnings are errors, the
   gallery on ``SKSSL_DOCS_MAX_EPOCHS=1``).
2. Reads every built page and fails on an internal link to a page or anchor that is
   not there, or an image whose file is missing or empty.
3. Serves the site on localhost and opens the index, the API page of one featurizer
   and the gallery page of every method's views in headless Chromium (Debian's
   ``chromium`` package), saving a full-width screenshot of each outside the
   repository. Where Chromium is not installed, it says so and skips this step.

Exit status: 0 when every link and image is there, 1 otherwise.
"""

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

DOCS = Path(__file__).resolve().parent
SITE = DOCS / "_build" / "html"
PAGES = {  # screenshot name: page, as a reader reaches it from the index
    "index": "index.html",
    "featurizer_api": "generated/skssl.RotNetFeaturizer.html",
    "gallery_views": "auto_examples/plot_pretext_views.html",
}
CHROMIUM_FLAGS = (  # a closed network: no background connections, no first-run work
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class PageLinks(HTMLParser):
    """The ids, internal links and images of one HTML page."""

    def __init__(self):
        super().__init__()
        self.ids, self.links, self.images = set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])


@functools.cache
def parse(page):
    parser = PageLinks()
    parser.feed(page.read_text(encoding="utf-8", errors="replace"))
    return parser


def _internal_target(page, reference):
    """The file and anchor ``reference`` points at, or None for another site."""
    parts = urlsplit(reference)
    if parts.scheme or parts.netloc or reference.startswith(("mailto:", "javascript:")):
        return None
    path = (page.parent / unquote(parts.path)).resolve() if parts.path else page
    if path.is_dir():
        path = path / "index.html"
    return path, unquote(parts.fragment)


def broken_references(site):
    """``(page, reference, why)`` for every internal link or image that is not there."""
    problems = []
    for page in sorted(site.rglob("*.html")):
        links = parse(page)
        for reference in links.links:
            target = _internal_target(page, reference)
            if target is None:
                continue
            path, anchor = target
            if not path.exists():
                problems.append((page, reference, "no such page"))
            elif anchor and path.suffix == ".html" and anchor not in parse(path).ids:
                problems.append((page, reference, "no such anchor"))
        for source in links.images:
            target = _internal_target(page, source)
            if target is not None and (not target[0].is_file() or target[0].stat().st_size == 0):
                problems.append((page, source, "missing image"))
    return problems


def build():
    environment = {**os.environ, "SKSSL_DOCS_MAX_EPOCHS": "1", "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(DOCS), str(SITE)]
    subprocess.run(command, check=True, env=environment)


def screenshot(chromium, url, path, width=1280, height=2400):
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={path}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(site):
    """An HTTP server for ``site`` on a free localhost port, in a daemon thread."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-build", action="store_true", help="check the last build instead of building")
    parser.add_argument("--out", type=Path, help="folder for the screenshots (default: a new temporary folder)")
    args = parser.parse_args(argv)
    if not args.no_build:
        build()
    missing_pages = [page for page in PAGES.values() if not (SITE / page).is_file()]
    problems = broken_references(SITE)
    for page, reference, why in problems:
        print(f"{page.relative_to(SITE)}: {reference}: {why}")
    for page in missing_pages:
        print(f"{page}: not built")
    print(f"{len(list(SITE.rglob('*.html')))} pages checked: {len(problems)} broken links or images")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("Chromium is not installed (Debian: apt install chromium); no screenshots taken.")
    else:
        out = args.out or Path(tempfile.mkdtemp(prefix="skssl-docs-"))
        out.mkdir(parents=True, exist_ok=True)
        server = serve(SITE)
        try:
            for name, page in PAGES.items():
                if page not in missing_pages:
                    screenshot(chromium, f"http://127.0.0.1:{server.server_port}/{page}", out / f"{name}.png")
                    print(f"screenshot: {out / f'{name}.png'}")
        finally:
            server.shutdown()
    return 1 if problems or missing_pages else 0


if __name__ == "__main__":
    sys.exit(main())
