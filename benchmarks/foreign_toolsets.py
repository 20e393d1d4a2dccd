"""Executable tool classes of installed packages this project did not write, made
ready to run: BFCL's multi-turn backends loaded with the first BFCL multi-turn scenario
that uses each class, and tau2-bench's retail and airline toolkits with their databases.

Each name below is a wrapper class built by a factory (its ``__qualname__`` is
``_bfcl.<locals>.Wrapped``), as a user's own glue code would be; ingest them by file path:
``astra tools ingest benchmarks/foreign_toolsets.py:GorillaFileSystem``.
"""

from __future__ import annotations

import copy
import importlib
import json
from functools import cache
from pathlib import Path
from typing import Any

BFCL_CLASSES = {
    "GorillaFileSystem": "gorilla_file_system",
    "TwitterAPI": "posting_api",
    "TicketAPI": "ticket_api",
    "MessageAPI": "message_api",
    "TradingBot": "trading_bot",
    "TravelAPI": "travel_booking",
    "VehicleControlAPI": "vehicle_control",
    "MathAPI": "math_api",
}
BFCL_PREFIX = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"


@cache
def bfcl_scenarios() -> dict[str, dict[str, Any]]:
    """The initial state of each BFCL class in the first multi-turn-base entry that uses it."""
    import bfcl_eval

    path = Path(bfcl_eval.__file__).parent / "data" / "BFCL_v4_multi_turn_base.json"
    out: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            for name, cfg in entry.get("initial_config", {}).items():
                out.setdefault(name, cfg)
    return out


def _bfcl(class_name: str) -> type:
    base = getattr(importlib.import_module(f"{BFCL_PREFIX}.{BFCL_CLASSES[class_name]}"), class_name)

    class Wrapped(base):  # type: ignore[misc, valid-type]
        name = BFCL_CLASSES[class_name]
        domain = "bfcl"

        def __init__(self) -> None:
            super().__init__()
            cfg = bfcl_scenarios().get(class_name)
            if cfg is not None and hasattr(self, "_load_scenario"):
                self._load_scenario(copy.deepcopy(cfg))

    Wrapped.__doc__ = base.__doc__
    return Wrapped


@cache
def _tau2_db(domain: str) -> Any:
    if domain == "retail":
        from tau2.domains.retail.data_model import RetailDB
        from tau2.domains.retail.utils import RETAIL_DB_PATH

        return RetailDB.load(RETAIL_DB_PATH)
    from tau2.domains.airline.data_model import FlightDB
    from tau2.domains.airline.utils import AIRLINE_DB_PATH

    return FlightDB.load(AIRLINE_DB_PATH)


def _tau2(domain: str) -> type:
    if domain == "retail":
        from tau2.domains.retail.tools import RetailTools as base
    else:
        from tau2.domains.airline.tools import AirlineTools as base

    db_name = domain

    class Wrapped(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__(_tau2_db(db_name).model_copy(deep=True))

    Wrapped.name = f"tau2_{domain}"
    Wrapped.domain = domain
    Wrapped.__doc__ = base.__doc__
    return Wrapped


GorillaFileSystem = _bfcl("GorillaFileSystem")
TwitterAPI = _bfcl("TwitterAPI")
TicketAPI = _bfcl("TicketAPI")
MessageAPI = _bfcl("MessageAPI")
TradingBot = _bfcl("TradingBot")
TravelAPI = _bfcl("TravelAPI")
VehicleControlAPI = _bfcl("VehicleControlAPI")
MathAPI = _bfcl("MathAPI")


def __getattr__(name: str) -> Any:  # tau2 classes load their database only when asked for
    if name in ("Tau2Retail", "Tau2Airline"):
        cls = _tau2("retail" if name == "Tau2Retail" else "airline")
        globals()[name] = cls
        return cls
    raise AttributeError(name)
