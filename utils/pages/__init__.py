"""Read-only pages: every solution notebook as a static HTML page that works offline (`python -m utils.pages build`)."""

from .build import DEFAULT_OUT, build, render_notebook

__all__ = ["DEFAULT_OUT", "build", "render_notebook"]
