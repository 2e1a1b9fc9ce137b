"""Command-line arguments sphinx-gallery passes to every example."""

import os


def example_argv(gallery_conf, script_vars):
    """``--max-epochs N`` when ``SKSSL_DOCS_MAX_EPOCHS=N`` is set (CI builds the gallery
    on small settings); the examples' own defaults otherwise."""
    epochs = os.environ.get("SKSSL_DOCS_MAX_EPOCHS")
    return ["--max-epochs", epochs] if epochs else []
