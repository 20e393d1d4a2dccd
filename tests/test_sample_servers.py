"""The bundled sample tool servers: conventions, end-to-end flows, isolation, errors."""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from astra.data.servers import DOC_ONLY_DIR, PYTHON_SERVERS, load_server_class, server_target
from astra.errors import ToolCallError

SERVER_NAMES = sorted(PYTHON_SERVERS)


def _tools(cls: type) -> dict[str, Any]:
    return {n: f for n, f in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _check_shape(value: Any, tp: Any, where: str) -> None:
    """Assert ``value`` matches annotation ``tp`` (TypedDict keys exactly, lists, primitives)."""
    tp, optional = _unwrap_optional(tp)
    if value is None:
        assert optional, f"{where}: None for non-optional {tp}"
        return
    if is_typeddict(tp):
        assert isinstance(value, dict), f"{where}: expected dict, got {type(value).__name__}"
        hints = get_type_hints(tp)
        assert set(value) == set(hints), f"{where}: keys {sorted(value)} != {sorted(hints)}"
        for k, sub in hints.items():
            _check_shape(value[k], sub, f"{where}.{k}")
    elif get_origin(tp) is list:
        assert isinstance(value, list), f"{where}: expected list"
        for i, v in enumerate(value):
            _check_shape(v, get_args(tp)[0], f"{where}[{i}]")
    elif tp is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{where}: {value!r} not a number"
    elif tp in (int, str, bool):
        assert isinstance(value, tp), f"{where}: {value!r} is not {tp.__name__}"
        if tp is int:
            assert not isinstance(value, bool), where
    else:  # pragma: no cover - no other annotations are used
        raise AssertionError(f"{where}: unexpected annotation {tp!r}")


def call(server: Any, tool: str, **kwargs: Any) -> Any:
    """Call a tool, and check its result is JSON-serializable and matches its return annotation."""
    method = getattr(server, tool)
    result = method(**kwargs)
    json.dumps(result)
    hints = get_type_hints(method)
    _check_shape(result, hints["return"], f"{server.name}.{tool}")
    # JSON round-trip must not change the value (no tuples, no non-str keys, ...)
    assert json.loads(json.dumps(result)) == result
    return result


def _args_section(doc: str) -> dict[str, str]:
    m = re.search(r"\n\s*Args:\s*\n(.*?)(?:\n\s*\n|\n\s*Returns:|\Z)", doc, re.S)
    if not m:
        return {}
    out = {}
    for line in m.group(1).splitlines():
        mm = re.match(r"\s*(\w+)(?:\s*\([^)]*\))?:\s*(.+)", line)
        if mm:
            out[mm.group(1)] = mm.group(2).strip()
    return out


# ---------------------------------------------------------------------------------
# conventions
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_class_attributes(name: str) -> None:
    cls = PYTHON_SERVERS[name]
    assert cls.name == name
    assert isinstance(cls.title, str) and cls.title
    assert isinstance(cls.domain, str) and cls.domain
    doc = inspect.getdoc(cls)
    assert doc and len(doc) > 60, f"{name}: class docstring must describe the server"
    assert len(_tools(cls)) >= 5
    module = inspect.getmodule(cls)
    assert module.__doc__ and "seed" in module.__doc__.lower()
    assert load_server_class(name) is cls
    assert server_target(name) == f"astra.data.servers.{name}:{cls.__name__}"
    assert not inspect.signature(cls).parameters, "__init__ takes no arguments"


def test_load_server_class_unknown() -> None:
    with pytest.raises(KeyError, match="shop"):
        load_server_class("nope")


_ALLOWED_PARAM = (str, int, float, bool)


def _param_type_ok(tp: Any) -> bool:
    tp, _ = _unwrap_optional(tp)
    if tp in _ALLOWED_PARAM:
        return True
    if get_origin(tp) is Literal:
        return all(isinstance(a, str) for a in get_args(tp))
    if get_origin(tp) is list:
        return get_args(tp)[0] in _ALLOWED_PARAM
    return False


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_tool_signatures_and_docstrings(name: str) -> None:
    cls = PYTHON_SERVERS[name]
    for tool, fn in _tools(cls).items():
        where = f"{name}.{tool}"
        hints = get_type_hints(fn)
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.name != "self"]
        for p in params:
            assert p.kind is p.POSITIONAL_OR_KEYWORD, f"{where}: {p.name} must be a plain parameter"
            assert p.name in hints, f"{where}: parameter {p.name} has no type hint"
            assert _param_type_ok(hints[p.name]), f"{where}: unsupported type {hints[p.name]!r} for {p.name}"
            _, optional = _unwrap_optional(hints[p.name])
            if optional:
                assert p.default is None, f"{where}: optional {p.name} must default to None"
        ret = hints.get("return")
        assert ret is not None, f"{where}: missing return annotation"
        inner = get_args(ret)[0] if get_origin(ret) is list else ret
        assert is_typeddict(inner), f"{where}: return annotation must be a TypedDict or list of one"
        doc = inspect.getdoc(fn)
        assert doc, f"{where}: no docstring"
        summary = doc.splitlines()[0]
        assert len(summary) > 15 and summary.endswith("."), f"{where}: weak summary {summary!r}"
        assert "Returns:" in doc, f"{where}: no Returns section"
        args = _args_section(doc)
        assert set(args) == {p.name for p in params}, f"{where}: Args {sorted(args)} vs params"
        for arg, text in args.items():
            assert len(text) >= 15, f"{where}: vague description for {arg}: {text!r}"


def test_identifiers_flow_between_tools() -> None:
    """Identifier fields produced by one tool are consumed under the same name by another."""
    flows = {
        "shop": ("product_id", "order_id"),
        "travel": ("flight_id", "booking_id", "hotel_id"),
        "files": ("path",),
        "helpdesk": ("customer_id", "ticket_id", "agent_id"),
        "weather": ("latitude", "longitude"),
        "bank": ("account_id",),
    }
    for name, ids in flows.items():
        cls = PYTHON_SERVERS[name]
        produced: set[str] = set()
        consumed: set[str] = set()
        for fn in _tools(cls).values():
            hints = get_type_hints(fn)
            ret = hints.pop("return")
            inner = get_args(ret)[0] if get_origin(ret) is list else ret
            produced |= set(get_type_hints(inner))
            consumed |= set(hints)
        for ident in ids:
            assert ident in produced and ident in consumed, f"{name}: {ident} does not flow"


def test_totals_and_domains() -> None:
    n_python = sum(len(_tools(c)) for c in PYTHON_SERVERS.values())
    docs = [json.loads(p.read_text()) for p in sorted(DOC_ONLY_DIR.glob("*.json"))]
    assert docs, "at least one doc-only server"
    n_doc = sum(len(d["tools"]) for d in docs)
    assert n_python + n_doc >= 40
    domains = {c.domain for c in PYTHON_SERVERS.values()} | {d["domain"] for d in docs}
    assert len(domains) >= 4
    names = [*PYTHON_SERVERS, *(d["name"] for d in docs)]
    assert len(names) == len(set(names)), "server names are unique"


@pytest.mark.parametrize("path", sorted(DOC_ONLY_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_doc_only_json(path) -> None:
    doc = json.loads(path.read_text())
    assert doc["name"] == path.stem
    for key in ("title", "description", "domain"):
        assert isinstance(doc[key], str) and doc[key]
    assert 5 <= len(doc["tools"]) <= 7
    seen = set()
    for entry in doc["tools"]:
        assert entry["type"] == "function"
        fn = entry["function"]
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", fn["name"]) and fn["name"] not in seen
        seen.add(fn["name"])
        assert len(fn["description"]) > 30
        params = fn["parameters"]
        assert params["type"] == "object"
        assert set(params["required"]) <= set(params["properties"])
        for pname, p in params["properties"].items():
            assert p.get("type") in ("string", "integer", "number", "boolean", "array", "object"), pname
            assert len(p.get("description", "")) >= 15, f"{fn['name']}.{pname}"
        if "output_schema" in entry:
            assert entry["output_schema"]["type"] in ("object", "array")


# ---------------------------------------------------------------------------------
# end-to-end flows
# ---------------------------------------------------------------------------------


def test_shop_flow() -> None:
    s = PYTHON_SERVERS["shop"]()
    hits = call(s, "search_products", query="earbuds")
    assert hits and hits[0]["product_id"] == "P-1001"
    pid = hits[0]["product_id"]
    prod = call(s, "get_product", product_id=pid)
    stock_before = prod["stock"]
    assert call(s, "check_stock", product_id=pid, quantity=2)["can_fulfill"]
    cart = call(s, "add_to_cart", product_id=pid, quantity=2)
    assert cart["item_count"] == 2 and cart["subtotal"] == pytest.approx(159.98)
    call(s, "add_to_cart", product_id="P-1016")
    cart = call(s, "remove_from_cart", product_id="P-1016")
    assert [i["product_id"] for i in cart["items"]] == [pid]
    cart = call(s, "apply_coupon", coupon_code="SAVE20")
    assert cart["discount"] == 20.0 and cart["total"] == pytest.approx(139.98)
    order = call(s, "checkout", shipping_address="14 Alder Lane, Portland, OR 97205")
    assert order["status"] == "processing" and order["shipping_cost"] == 0.0
    assert order["total"] == pytest.approx(139.98)
    assert call(s, "view_cart")["items"] == []
    got = call(s, "get_order", order_id=order["order_id"])
    assert got == order
    assert call(s, "get_product", product_id=pid)["stock"] == stock_before - 2
    assert order["order_id"] in [o["order_id"] for o in call(s, "list_orders", status="processing")]
    cancelled = call(s, "cancel_order", order_id=order["order_id"], reason="changed my mind")
    assert cancelled["status"] == "cancelled"
    assert call(s, "get_product", product_id=pid)["stock"] == stock_before


def test_shop_filters_and_express() -> None:
    s = PYTHON_SERVERS["shop"]()
    cheap = call(s, "search_products", category="kitchen", max_price=45, in_stock_only=True)
    assert cheap and all(p["price"] <= 45 and p["in_stock"] and p["category"] == "kitchen" for p in cheap)
    call(s, "add_to_cart", product_id="P-1002")
    order = call(s, "checkout", shipping_address="9 Elm Street, Austin, TX 78701", shipping_method="express")
    assert order["shipping_cost"] == 14.99 and order["total"] == pytest.approx(34.98)


def test_travel_flow() -> None:
    t = PYTHON_SERVERS["travel"]()
    codes = [a["airport_code"] for a in call(t, "list_airports", country="US")]
    assert "JFK" in codes and "LHR" not in codes
    flights = call(t, "search_flights", origin="JFK", destination="LAX", date="2026-03-10", passengers=2)
    assert [f["flight_id"] for f in flights] == ["FL-102", "FL-101"]  # cheapest first
    flight = call(t, "get_flight", flight_id=flights[0]["flight_id"])
    seats = flight["economy_seats_available"]
    booking = call(t, "book_flight", flight_id=flight["flight_id"], traveler_name="Maya Chen", passengers=2)
    assert booking["status"] == "confirmed" and booking["total_price"] == 438.0
    assert call(t, "get_flight", flight_id="FL-102")["economy_seats_available"] == seats - 2
    assert call(t, "get_booking", booking_id=booking["booking_id"]) == booking
    hotels = call(t, "search_hotels", city=flight["destination_city"], check_in="2026-03-10",
                  check_out="2026-03-13")
    assert hotels and hotels[0]["nights"] == 3
    stay = call(t, "book_hotel", hotel_id=hotels[0]["hotel_id"], traveler_name="Maya Chen",
                check_in="2026-03-10", check_out="2026-03-13")
    assert stay["total_price"] == hotels[0]["nightly_rate"] * 3
    cancelled = call(t, "cancel_booking", booking_id=booking["booking_id"])
    assert cancelled["status"] == "cancelled" and cancelled["refund_amount"] == 438.0 - 150.0
    assert call(t, "get_flight", flight_id="FL-102")["economy_seats_available"] == seats
    assert call(t, "cancel_booking", booking_id=stay["booking_id"])["refund_amount"] == stay["total_price"]


def test_files_flow() -> None:
    f = PYTHON_SERVERS["files"]()
    top = [e["path"] for e in call(f, "list_dir")]
    assert top == ["/archive", "/docs", "/notes", "/projects", "/tmp"]
    hits = call(f, "search_files", query="deadline", path="/projects")
    assert {h["path"] for h in hits} == {"/projects/atlas/README.md", "/projects/beacon/README.md"}
    text = call(f, "read_file", path=hits[0]["path"])["content"]
    assert "Deadline: 2026-04-30" in text
    w = call(f, "write_file", path="/notes/deadlines.md", content="Atlas: 2026-04-30\n")
    assert w["created"] and w["size_bytes"] == 18
    call(f, "write_file", path="/notes/deadlines.md", content="Beacon: 2026-03-20\n", mode="append")
    assert call(f, "file_info", path="/notes/deadlines.md")["line_count"] == 2
    moved = call(f, "move_file", path="/notes/deadlines.md", destination="/docs")
    assert moved["path"] == "/docs/deadlines.md"
    assert call(f, "read_file", path=moved["path"], max_chars=6) == {
        "path": "/docs/deadlines.md", "content": "Atlas:", "size_bytes": 37, "line_count": 2, "truncated": True}
    assert call(f, "delete_file", path=moved["path"])["deleted"]
    with pytest.raises(ToolCallError, match="No such file"):
        f.read_file(path="/docs/deadlines.md")
    call(f, "write_file", path="/tmp/a/b/c.txt", content="x")
    assert call(f, "file_info", path="/tmp/a")["type"] == "directory"
    recursive = [e["path"] for e in call(f, "list_dir", path="/tmp", recursive=True)]
    assert recursive == ["/tmp/a", "/tmp/a/b", "/tmp/a/b/c.txt"]


def test_helpdesk_flow() -> None:
    h = PYTHON_SERVERS["helpdesk"]()
    found = call(h, "find_customer", query="verde")
    assert [c["customer_id"] for c in found] == ["C-104"]
    cid = found[0]["customer_id"]
    before = call(h, "get_customer", customer_id=cid)["open_ticket_count"]
    t = call(h, "create_ticket", customer_id=cid, subject="Invoice PDF shows wrong currency",
             description="PDF invoices show USD instead of EUR since the last update.", priority="high",
             category="technical")
    assert t["status"] == "open" and t["assignee_id"] is None
    assert call(h, "get_customer", customer_id=cid)["open_ticket_count"] == before + 1
    agents = call(h, "list_agents", team="technical")
    t = call(h, "assign_ticket", ticket_id=t["ticket_id"], agent_id=agents[0]["agent_id"])
    assert t["assignee_id"] == agents[0]["agent_id"]
    c = call(h, "add_comment", ticket_id=t["ticket_id"], text="We are looking into it.")
    assert c["ticket_id"] == t["ticket_id"] and c["public"]
    t = call(h, "update_ticket_status", ticket_id=t["ticket_id"], status="resolved", note="Fixed in 4.2.1")
    got = call(h, "get_ticket", ticket_id=t["ticket_id"])
    assert got["status"] == "resolved" and len(got["comments"]) == 2 and not got["comments"][1]["public"]
    listed = call(h, "list_tickets", customer_id=cid, status="resolved")
    assert [x["ticket_id"] for x in listed] == [t["ticket_id"]]
    assert call(h, "list_tickets", agent_id="A-1", status="pending")[0]["ticket_id"] == "T-3007"


def test_weather_flow() -> None:
    w = PYTHON_SERVERS["weather"]()
    loc = call(w, "geocode_city", city="sydney")
    cur = call(w, "get_current_weather", latitude=loc["latitude"], longitude=loc["longitude"])
    assert cur["city"] == "Sydney" and cur["temperature"] == 31.0
    imp = call(w, "get_current_weather", latitude=loc["latitude"], longitude=loc["longitude"], units="imperial")
    assert imp["temperature"] == pytest.approx(87.8)
    fc = call(w, "get_forecast", latitude=loc["latitude"], longitude=loc["longitude"], days=7)
    assert [d["date"] for d in fc["days"]][::6] == ["2026-03-02", "2026-03-08"]
    assert call(w, "get_air_quality", latitude=-33.87, longitude=151.21)["category"] == "good"
    alerts = call(w, "list_weather_alerts", latitude=loc["latitude"], longitude=loc["longitude"],
                  min_severity="severe")
    assert [a["event"] for a in alerts] == ["Heat Warning"]
    tokyo = call(w, "geocode_city", city="Tokyo", country="JP")
    assert call(w, "list_weather_alerts", latitude=tokyo["latitude"], longitude=tokyo["longitude"]) == []


def test_bank_flow() -> None:
    b = PYTHON_SERVERS["bank"]()
    savings = call(b, "list_accounts", account_type="savings")[0]["account_id"]
    euro = next(a for a in call(b, "list_accounts") if a["currency"] == "EUR")["account_id"]
    start = call(b, "get_balance", account_id=savings)["current_balance"]
    rate = call(b, "get_exchange_rate", from_currency="USD", to_currency="EUR")["rate"]
    assert rate == 0.92
    tr = call(b, "transfer_funds", from_account_id=savings, to_account_id=euro, amount=500, memo="Paris trip")
    assert tr["converted_amount"] == 460.0 and tr["to_balance_after"] == pytest.approx(1320.40)
    assert call(b, "get_balance", account_id=savings)["current_balance"] == pytest.approx(start - 500)
    txs = call(b, "list_transactions", account_id=euro, direction="credit")
    assert txs[0]["transfer_id"] == tr["transfer_id"] and txs[0]["amount"] == 460.0
    card = call(b, "list_accounts", account_type="credit")[0]["account_id"]
    assert call(b, "get_balance", account_id=card)["available_balance"] == pytest.approx(3759.40)
    pay = call(b, "transfer_funds", from_account_id="ACC-1001", to_account_id=card, amount=240.60)
    assert pay["to_balance_after"] == pytest.approx(-1000.0)
    assert call(b, "get_account", account_id=card)["balance"] == pytest.approx(-1000.0)
    conv = call(b, "convert_currency", amount=100, from_currency="GBP", to_currency="JPY")
    assert conv["converted_amount"] == 18924.0
    feb = call(b, "list_transactions", account_id=card, start_date="2026-02-10", end_date="2026-02-20",
               category="groceries")
    assert [t["transaction_id"] for t in feb] == ["TX-90011"]


# ---------------------------------------------------------------------------------
# state isolation
# ---------------------------------------------------------------------------------


def test_state_isolation() -> None:
    s1, s2 = PYTHON_SERVERS["shop"](), PYTHON_SERVERS["shop"]()
    s1.add_to_cart(product_id="P-1003", quantity=7)
    s1.checkout(shipping_address="1 Main Street, Springfield, IL 62701")
    assert s2.get_product(product_id="P-1003")["stock"] == 7
    assert s2.view_cart()["items"] == []
    with pytest.raises(ToolCallError):
        s2.get_order(order_id="O-5003")
    assert PYTHON_SERVERS["shop"]().get_product(product_id="P-1003")["stock"] == 7

    t1, t2 = PYTHON_SERVERS["travel"](), PYTHON_SERVERS["travel"]()
    t1.book_flight(flight_id="FL-108", traveler_name="Ana Lopez", passengers=2)
    assert t2.get_flight(flight_id="FL-108")["economy_seats_available"] == 2

    f1, f2 = PYTHON_SERVERS["files"](), PYTHON_SERVERS["files"]()
    f1.write_file(path="/notes/todo.txt", content="new", mode="overwrite")
    f1.delete_file(path="/docs/handbook.md")
    assert "send Atlas budget" in f2.read_file(path="/notes/todo.txt")["content"]
    assert f2.file_info(path="/docs/handbook.md")["type"] == "file"

    h1, h2 = PYTHON_SERVERS["helpdesk"](), PYTHON_SERVERS["helpdesk"]()
    h1.add_comment(ticket_id="T-3004", text="Checking the mail logs.")
    h1.update_ticket_status(ticket_id="T-3004", status="closed")
    assert h2.get_ticket(ticket_id="T-3004")["comments"] == []
    assert h2.get_ticket(ticket_id="T-3004")["status"] == "open"

    b1, b2 = PYTHON_SERVERS["bank"](), PYTHON_SERVERS["bank"]()
    b1.transfer_funds(from_account_id="ACC-1001", to_account_id="ACC-1002", amount=100)
    assert b2.get_balance(account_id="ACC-1001")["current_balance"] == 2450.75
    assert len(b2.list_transactions(account_id="ACC-1001", limit=100)) == 7

    w1, w2 = PYTHON_SERVERS["weather"](), PYTHON_SERVERS["weather"]()
    w1.list_weather_alerts(latitude=47.6, longitude=-122.3)[0]["severity"] = "extreme"
    assert w2.list_weather_alerts(latitude=47.6, longitude=-122.3)[0]["severity"] == "moderate"
    assert w1.list_weather_alerts(latitude=47.6, longitude=-122.3)[0]["severity"] == "moderate"


def test_returned_values_are_copies() -> None:
    s = PYTHON_SERVERS["shop"]()
    order = s.get_order(order_id="O-5002")
    order["status"] = "delivered"
    order["items"].clear()
    assert s.get_order(order_id="O-5002")["status"] == "processing"
    t = PYTHON_SERVERS["travel"]()
    t.list_airports()[0]["city"] = "Nowhere"
    assert t.list_airports()[0]["city"] == "New York"


# ---------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------


ERROR_CASES = [
    ("shop", "get_product", {"product_id": "P-9999"}, r"P-9999.*search_products"),
    ("shop", "add_to_cart", {"product_id": "P-1004"}, r"out of stock"),
    ("shop", "add_to_cart", {"product_id": "P-1013", "quantity": 5}, r"Only 4 unit"),
    ("shop", "add_to_cart", {"product_id": "P-1001", "quantity": 0}, r"between 1 and 20"),
    ("shop", "remove_from_cart", {"product_id": "P-1001"}, r"not in the cart"),
    ("shop", "apply_coupon", {"coupon_code": "FREEMONEY"}, r"FREEMONEY"),
    ("shop", "checkout", {"shipping_address": "1 Main Street, Springfield"}, r"cart is empty"),
    ("shop", "cancel_order", {"order_id": "O-5001"}, r"shipped.*cannot be cancelled"),
    ("shop", "get_order", {"order_id": "O-1"}, r"O-5001"),
    ("shop", "search_products", {"category": "toys"}, r"electronics"),
    ("travel", "search_flights", {"origin": "XXX", "destination": "LAX", "date": "2026-03-10"}, r"JFK"),
    ("travel", "search_flights", {"origin": "JFK", "destination": "LAX", "date": "10/03/2026"}, r"YYYY-MM-DD"),
    ("travel", "search_flights", {"origin": "JFK", "destination": "LAX", "date": "2026-02-01"}, r"past"),
    ("travel", "book_flight", {"flight_id": "FL-102", "traveler_name": "Maya Chen", "cabin": "business"},
     r"only 0 business"),
    ("travel", "book_flight", {"flight_id": "FL-101", "traveler_name": "Maya"}, r"full name"),
    ("travel", "get_flight", {"flight_id": "FL-999"}, r"FL-101"),
    ("travel", "cancel_booking", {"booking_id": "BK-7000"}, r"already cancelled"),
    ("travel", "get_booking", {"booking_id": "BK-1"}, r"BK-7000"),
    ("travel", "search_hotels", {"city": "Atlantis", "check_in": "2026-03-10", "check_out": "2026-03-12"},
     r"London"),
    ("travel", "book_hotel", {"hotel_id": "H-206", "traveler_name": "Maya Chen", "check_in": "2026-03-10",
                              "check_out": "2026-03-12"}, r"only 0 room"),
    ("travel", "search_hotels", {"city": "Paris", "check_in": "2026-03-12", "check_out": "2026-03-12"},
     r"at least one day"),
    ("files", "read_file", {"path": "/nope.txt"}, r"No such file"),
    ("files", "read_file", {"path": "notes/todo.txt"}, r"absolute path"),
    ("files", "read_file", {"path": "/projects"}, r"is a directory"),
    ("files", "list_dir", {"path": "/notes/todo.txt"}, r"is a file"),
    ("files", "write_file", {"path": "/notes/todo.txt", "content": "x"}, r"already exists"),
    ("files", "move_file", {"path": "/notes/todo.txt", "destination": "/docs/handbook.md"}, r"overwrite"),
    ("files", "delete_file", {"path": "/projects"}, r"not empty"),
    ("files", "read_file", {"path": "/../etc/passwd"}, r"\.\."),
    ("helpdesk", "get_customer", {"customer_id": "C-999"}, r"C-999.*find_customer"),
    ("helpdesk", "get_ticket", {"ticket_id": "T-1"}, r"T-3001"),
    ("helpdesk", "assign_ticket", {"ticket_id": "T-3004", "agent_id": "A-9"}, r"A-1 \(Nina Park"),
    ("helpdesk", "update_ticket_status", {"ticket_id": "T-3005", "status": "open"}, r"closed tickets are final"),
    ("helpdesk", "update_ticket_status", {"ticket_id": "T-3001", "status": "done"}, r"open, pending"),
    ("helpdesk", "add_comment", {"ticket_id": "T-3005", "text": "hello"}, r"closed"),
    ("helpdesk", "create_ticket", {"customer_id": "C-101", "subject": "Help", "description": "x",
                                   "priority": "asap"}, r"urgent"),
    ("weather", "geocode_city", {"city": "Atlantis"}, r"Covered cities"),
    ("weather", "get_current_weather", {"latitude": 0.0, "longitude": 0.0}, r"No weather station"),
    ("weather", "get_forecast", {"latitude": 51.5, "longitude": -0.13, "days": 10}, r"between 1 and 7"),
    ("weather", "get_air_quality", {"latitude": 123.0, "longitude": 0.0}, r"out of range"),
    ("bank", "get_account", {"account_id": "ACC-0000"}, r"ACC-1001"),
    ("bank", "transfer_funds", {"from_account_id": "ACC-1001", "to_account_id": "ACC-1002", "amount": 99999},
     r"Insufficient funds.*2450.75"),
    ("bank", "transfer_funds", {"from_account_id": "ACC-1004", "to_account_id": "ACC-1001", "amount": 10},
     r"credit card"),
    ("bank", "transfer_funds", {"from_account_id": "ACC-1001", "to_account_id": "ACC-1002", "amount": -5},
     r"positive"),
    ("bank", "transfer_funds", {"from_account_id": "ACC-1002", "to_account_id": "ACC-1004", "amount": 2000},
     r"exceeds"),
    ("bank", "get_exchange_rate", {"from_currency": "USD", "to_currency": "XYZ"}, r"EUR"),
    ("bank", "list_transactions", {"account_id": "ACC-1001", "start_date": "2026-03-01",
                                   "end_date": "2026-02-01"}, r"after"),
]


@pytest.mark.parametrize("server,tool,kwargs,pattern", ERROR_CASES,
                         ids=[f"{c[0]}.{c[1]}-{i}" for i, c in enumerate(ERROR_CASES)])
def test_tool_errors(server: str, tool: str, kwargs: dict, pattern: str) -> None:
    s = PYTHON_SERVERS[server]()
    with pytest.raises(ToolCallError, match=pattern):
        getattr(s, tool)(**kwargs)


def test_every_server_has_error_cases() -> None:
    covered = {c[0] for c in ERROR_CASES}
    assert covered == set(PYTHON_SERVERS)


def test_failed_calls_leave_state_unchanged() -> None:
    b = PYTHON_SERVERS["bank"]()
    with pytest.raises(ToolCallError):
        b.transfer_funds(from_account_id="ACC-1002", to_account_id="ACC-1004", amount=2000)
    assert b.get_balance(account_id="ACC-1002")["current_balance"] == 18200.0
    s = PYTHON_SERVERS["shop"]()
    s.add_to_cart(product_id="P-1013", quantity=4)
    with pytest.raises(ToolCallError):
        s.add_to_cart(product_id="P-1013")
    assert s.view_cart()["item_count"] == 4
