"""Bundled sample tool servers.

Python servers (one class per module; a fresh instance per session; every public method is
a tool whose parameters come from its type hints and Google-style docstring and whose output
schema comes from its ``TypedDict`` return annotation):

- ``shop`` (e-commerce), ``travel`` (travel), ``files`` (productivity),
  ``helpdesk`` (customer-support), ``weather`` (weather), ``bank`` (finance).

Doc-only servers (no implementation; served by the tool emulator) are JSON files in
:data:`DOC_ONLY_DIR`, each ``{"name","title","description","domain","tools":[...]}`` with
OpenAI tool entries plus an optional sibling ``output_schema``.

The call target of a Python server is ``f"{cls.__module__}:{cls.__qualname__}"``, e.g.
``astra.data.servers.shop:ShopServer``.
"""

from __future__ import annotations

import pathlib

from astra.data.servers.bank import BankServer
from astra.data.servers.files import FilesServer
from astra.data.servers.helpdesk import HelpdeskServer
from astra.data.servers.shop import ShopServer
from astra.data.servers.travel import TravelServer
from astra.data.servers.weather import WeatherServer

PYTHON_SERVERS: dict[str, type] = {
    cls.name: cls
    for cls in (ShopServer, TravelServer, FilesServer, HelpdeskServer, WeatherServer, BankServer)
}

DOC_ONLY_DIR: pathlib.Path = pathlib.Path(__file__).resolve().parent / "doc_only"


def load_server_class(name: str) -> type:
    """The class of the bundled Python server called ``name`` (e.g. ``"shop"``)."""
    try:
        return PYTHON_SERVERS[name]
    except KeyError:
        raise KeyError(
            f"no bundled Python server named {name!r}; available: {', '.join(sorted(PYTHON_SERVERS))}"
        ) from None


def server_target(name: str) -> str:
    """The ``module:Class`` call target of the bundled Python server called ``name``."""
    cls = load_server_class(name)
    return f"{cls.__module__}:{cls.__qualname__}"


__all__ = ["DOC_ONLY_DIR", "PYTHON_SERVERS", "load_server_class", "server_target"]
