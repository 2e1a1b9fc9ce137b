"""docs/check_rendered.py finds every broken internal link and missing image."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "docs" / "check_rendered.py"


def _load():
    spec = importlib.util.spec_from_file_location("check_rendered", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_broken_links_anchors_and_images_are_reported_and_good_ones_are_not(tmp_path):
    check = _load()
    (tmp_path / "api").mkdir()
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "views.png").write_bytes(b"\x89PNG not empty")
    (tmp_path / "_images" / "empty.png").write_bytes(b"")
    (tmp_path / "api" / "index.html").write_text('<h2 id="fit">fit</h2>')
    (tmp_path / "index.html").write_text(
        '<a href="api/index.html#fit">ok</a> <a href="api/">ok, a folder</a> <a href="#top">ok</a>'
        '<a id="top" href="https://example.org/nowhere">another site</a> <a href="mailto:a@b">mail</a>'
        '<img src="_images/views.png">'
        '<a href="missing.html">no page</a> <a href="api/index.html#predict">no anchor</a>'
        '<img src="_images/gone.png"> <img src="_images/empty.png">'
    )
    problems = [(page.name, reference, why) for page, reference, why in check.broken_references(tmp_path)]
    assert sorted(problems) == sorted(
        [
            ("index.html", "missing.html", "no such page"),
            ("index.html", "api/index.html#predict", "no such anchor"),
            ("index.html", "_images/gone.png", "missing image"),
            ("index.html", "_images/empty.png", "missing image"),
        ]
    )
