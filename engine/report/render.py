"""Template environment and the file writer shared by the single-run and comparison reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parent / "templates"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every user-controlled string (symbols, params, labels) is escaped
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def asset(name: str) -> str:
    """A stylesheet or script inlined into every page (the report opens offline)."""
    return (TEMPLATES / name).read_text(encoding="utf-8")


def write_html(path: str | Path, template: str, **context: Any) -> Path:
    """Render `template` with the inlined CSS/JS, create parent folders, return the absolute path."""
    html = _ENV.get_template(template).render(
        css=Markup(asset("report.css")),
        js=Markup(asset("report.js")),
        **context,
    )
    out = Path(path).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
