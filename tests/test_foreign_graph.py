"""Data-flow edges on tool shapes found in public tool sets: bare scalar results, lists of
ids, directory listings, and look-alike names of a different meaning."""

from __future__ import annotations

from astra.graph.dataflow import dataflow_edges
from astra.types import Tool, ToolServer


def _t(name: str, desc: str, params: dict, required: list[str], out: dict | None = None) -> Tool:
    return Tool(name=name, description=desc, output_schema=out,
                parameters={"type": "object", "properties": params, "required": required})


def _edges(*tools: Tool) -> dict[tuple[str, str], list[tuple[str, str]]]:
    server = ToolServer(name="s", tools=list(tools))
    return {(e.source, e.target): [(b["from_field"], b["to_param"]) for b in e.bindings]
            for e in dataflow_edges(server)}


S = {"type": "string"}


def test_bare_string_id_and_a_list_of_ids_feed_identifier_parameters():
    edges = _edges(
        _t("find_user_id_by_email", "Find user id by email.", {"email": S}, ["email"],
           {"type": "string", "description": "The user id if found."}),
        _t("get_user_details", "Get the details of a user, including their orders.",
           {"user_id": {"type": "string", "description": "The user id, such as 'sara_doe_496'."}}, ["user_id"],
           {"type": "object", "properties": {"email": S, "orders": {"type": "array", "items": S,
                                                                     "description": "Order IDs of the user."}}}),
        _t("get_order_details", "Get the status and details of an order.",
           {"order_id": {"type": "string", "description": "The order id, such as '#W0000000'."}}, ["order_id"],
           {"type": "object", "properties": {"status": S}}),
    )
    assert edges[("find_user_id_by_email", "get_user_details")] == [("", "user_id")]
    assert edges[("get_user_details", "get_order_details")] == [("orders[]", "order_id")]


def test_a_count_never_fills_an_id_and_ids_of_different_things_do_not_match():
    edges = _edges(
        _t("get_user_stats", "Get the posting statistics of a user.", {"username": S}, ["username"],
           {"type": "object", "properties": {"tweet_count": {"type": "integer", "description": "Number of tweets."}}}),
        _t("get_tweet", "Get one tweet by its id.", {"tweet_id": {"type": "integer", "description": "ID of the tweet."}},
           ["tweet_id"]),
        _t("book_flight", "Book a flight and return the booking.", {"travel_class": S}, ["travel_class"],
           {"type": "object", "properties": {"booking_id": {"type": "string", "description": "ID of the booking."}}}),
        _t("get_card_balance", "Get the balance of a registered credit card.",
           {"card_id": {"type": "string", "description": "ID of the credit card."}}, ["card_id"]),
        _t("get_address", "Get the postal address of a user.", {"username": S}, ["username"],
           {"type": "object", "properties": {"address1": {"type": "string", "description": "First address line."},
                                             "address2": {"type": "string", "description": "Second address line."}}}),
        _t("set_address", "Change the postal address of a user.",
           {"address1": {"type": "string", "description": "First address line."},
            "address2": {"type": "string", "description": "Second address line."}}, ["address1", "address2"]),
    )
    assert ("get_user_stats", "get_tweet") not in edges
    assert ("book_flight", "get_card_balance") not in edges
    assert sorted(edges[("get_address", "set_address")]) == [("address1", "address1"), ("address2", "address2")]


def test_a_directory_listing_feeds_file_and_folder_names():
    listing = {"type": "object", "properties": {"current_directory_content": {
        "type": "array", "items": S, "description": "A list of the contents of the specified directory."}}}
    edges = _edges(
        _t("ls", "List the contents of the current directory.", {}, [], listing),
        _t("cd", "Change the current working directory to the specified folder.",
           {"folder": {"type": "string", "description": "The folder of the directory to change to."}}, ["folder"]),
        _t("cat", "Display the contents of a file from the current directory.",
           {"file_name": {"type": "string", "description": "The name of the file from current directory to display."}},
           ["file_name"], {"type": "object", "properties": {"file_content": S}}),
        _t("grep", "Search for lines in a file that contain a pattern.",
           {"file_name": {"type": "string", "description": "The name of the file to search."},
            "pattern": {"type": "string", "description": "The pattern to search for."}}, ["file_name", "pattern"]),
    )
    assert edges[("ls", "cd")] == [("current_directory_content[]", "folder")]
    assert edges[("ls", "cat")] == [("current_directory_content[]", "file_name")]
    assert ("ls", "grep") in edges
    assert all(p != "pattern" for pairs in edges.values() for _, p in pairs)
