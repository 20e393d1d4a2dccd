"""Prompt templates: one Jinja file per LLM operation, versioned with the code.

``render("graph_propose", server=..., tools=...)`` renders ``graph_propose.jinja`` from this
folder. Undefined variables are errors, so a template and its caller cannot drift apart
silently.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import jinja2


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
    return env


def _load(name: str) -> str | None:
    path = resources.files("astra.prompts").joinpath(name)
    return path.read_text("utf-8") if path.is_file() else None


def render(name: str, **variables) -> str:
    """Render the prompt ``name`` (without the ``.jinja`` suffix)."""
    try:
        template = _env().get_template(f"{name}.jinja")
    except jinja2.TemplateNotFound:
        raise KeyError(f"no prompt template named {name!r} in astra/prompts/") from None
    return template.render(**variables).strip()


def available() -> list[str]:
    return sorted(p.name[: -len(".jinja")] for p in resources.files("astra.prompts").iterdir()
                  if p.name.endswith(".jinja"))
