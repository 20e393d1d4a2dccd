"""Helpdesk: customer-support tickets for a SaaS invoicing product.

Seed data: 8 customers ``C-101`` .. ``C-108`` (name, email, company, plan free / pro /
enterprise), 4 support agents ``A-1`` .. ``A-4`` in billing, technical and accounts teams,
and 7 tickets ``T-3001`` .. ``T-3007`` in various statuses with comments. "Today" is
2026-03-02; every change is stamped with that date. Each ``HelpdeskServer`` instance starts
from its own copy of this data.
"""

import copy
from typing import Literal, TypedDict

from astra.data.servers._tables import keyed, lookup
from astra.errors import ToolCallError

TODAY = "2026-03-02"

Status = Literal["open", "pending", "resolved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]
TicketCategory = Literal["billing", "technical", "account", "other"]
Team = Literal["billing", "technical", "accounts"]

_STATUSES = ("open", "pending", "resolved", "closed")
_PRIORITIES = ("low", "normal", "high", "urgent")
_CATEGORIES = ("billing", "technical", "account", "other")
_TEAMS = ("billing", "technical", "accounts")
_TRANSITIONS = {
    "open": {"pending", "resolved", "closed"},
    "pending": {"open", "resolved", "closed"},
    "resolved": {"open", "closed"},
    "closed": set(),
}

_CUSTOMERS: list[dict] = [
    {"customer_id": "C-101", "name": "Amelia Brooks", "email": "amelia.brooks@brookbakery.example",
     "company": "Brook Bakery", "plan": "pro", "phone": "+1-503-555-0142", "customer_since": "2023-05-14"},
    {"customer_id": "C-102", "name": "Daniel Okafor", "email": "d.okafor@okaforlogistics.example",
     "company": "Okafor Logistics", "plan": "enterprise", "phone": "+1-312-555-0190", "customer_since": "2021-11-02"},
    {"customer_id": "C-103", "name": "Hana Kimura", "email": "hana@kimuradesign.example",
     "company": "Kimura Design Studio", "plan": "free", "phone": "+1-415-555-0117", "customer_since": "2025-08-21"},
    {"customer_id": "C-104", "name": "Luis Ferreira", "email": "luis.ferreira@verdeimports.example",
     "company": "Verde Imports", "plan": "pro", "phone": "+1-305-555-0163", "customer_since": "2024-02-09"},
    {"customer_id": "C-105", "name": "Priya Raman", "email": "priya.raman@ramanclinic.example",
     "company": "Raman Family Clinic", "plan": "enterprise", "phone": "+1-617-555-0134",
     "customer_since": "2022-07-30"},
    {"customer_id": "C-106", "name": "Tom Whitaker", "email": "tom@whitakerwoodworks.example",
     "company": "Whitaker Woodworks", "plan": "free", "phone": "+1-720-555-0188", "customer_since": "2025-12-01"},
    {"customer_id": "C-107", "name": "Sara Lindqvist", "email": "sara.lindqvist@nordpixel.example",
     "company": "Nordpixel", "plan": "pro", "phone": "+1-206-555-0109", "customer_since": "2024-10-17"},
    {"customer_id": "C-108", "name": "Kwame Mensah", "email": "kwame.mensah@mensahlaw.example",
     "company": "Mensah & Partners Law", "plan": "enterprise", "phone": "+1-202-555-0175",
     "customer_since": "2020-03-03"},
]

_AGENTS: list[dict] = [
    {"agent_id": "A-1", "name": "Nina Park", "team": "billing", "open_ticket_count": 0},
    {"agent_id": "A-2", "name": "Marcus Lee", "team": "technical", "open_ticket_count": 0},
    {"agent_id": "A-3", "name": "Sofia Alvarez", "team": "technical", "open_ticket_count": 0},
    {"agent_id": "A-4", "name": "Omar Haddad", "team": "accounts", "open_ticket_count": 0},
]


def _c(cid, tid, author, text, created, public=True):
    return {"comment_id": cid, "ticket_id": tid, "author": author, "text": text, "public": public,
            "created": created}


_TICKETS: list[dict] = [
    {"ticket_id": "T-3001", "customer_id": "C-101", "subject": "Charged twice for February",
     "description": "My card was charged $49 twice on 2026-02-01 for the Pro plan.", "status": "open",
     "priority": "high", "category": "billing", "assignee_id": "A-1", "created": "2026-02-27",
     "updated": "2026-02-28",
     "comments": [_c("CM-1", "T-3001", "agent", "Thanks Amelia, we are checking with the payment processor.",
                     "2026-02-28")]},
    {"ticket_id": "T-3002", "customer_id": "C-102", "subject": "API returns 502 when exporting invoices",
     "description": "Bulk export of more than 500 invoices fails with HTTP 502 since yesterday.",
     "status": "pending", "priority": "urgent", "category": "technical", "assignee_id": "A-2",
     "created": "2026-02-25", "updated": "2026-03-01",
     "comments": [_c("CM-2", "T-3002", "agent", "Could you send the request id of a failing call?", "2026-02-26"),
                  _c("CM-3", "T-3002", "customer", "Request id: req_8f2a91. It still fails.", "2026-02-27"),
                  _c("CM-4", "T-3002", "agent", "Escalated to engineering; waiting on a fix.", "2026-03-01",
                     public=False)]},
    {"ticket_id": "T-3003", "customer_id": "C-103", "subject": "How do I add my logo to invoices?",
     "description": "I can't find where to upload a logo on the free plan.", "status": "resolved",
     "priority": "low", "category": "other", "assignee_id": "A-3", "created": "2026-02-20", "updated": "2026-02-21",
     "comments": [_c("CM-5", "T-3003", "agent", "Logos are a Pro feature; see Settings > Branding after upgrading.",
                     "2026-02-21")]},
    {"ticket_id": "T-3004", "customer_id": "C-104", "subject": "Cannot reset password",
     "description": "The reset email never arrives at luis.ferreira@verdeimports.example.", "status": "open",
     "priority": "normal", "category": "account", "assignee_id": None, "created": "2026-03-01",
     "updated": "2026-03-01", "comments": []},
    {"ticket_id": "T-3005", "customer_id": "C-105", "subject": "Request for a SOC 2 report",
     "description": "Our compliance team needs your latest SOC 2 Type II report.", "status": "closed",
     "priority": "normal", "category": "other", "assignee_id": "A-4", "created": "2026-01-15",
     "updated": "2026-01-19",
     "comments": [_c("CM-6", "T-3005", "agent", "Report sent under NDA to the compliance contact.",
                     "2026-01-19")]},
    {"ticket_id": "T-3006", "customer_id": "C-101", "subject": "Tax rate wrong for Oregon customers",
     "description": "Invoices to Oregon show 8% sales tax, but Oregon has no sales tax.", "status": "open",
     "priority": "normal", "category": "technical", "assignee_id": "A-3", "created": "2026-02-28",
     "updated": "2026-02-28", "comments": []},
    {"ticket_id": "T-3007", "customer_id": "C-107", "subject": "Downgrade from Pro to Free",
     "description": "Please downgrade our account at the end of the billing period.", "status": "pending",
     "priority": "low", "category": "billing", "assignee_id": "A-1", "created": "2026-02-24",
     "updated": "2026-02-26",
     "comments": [_c("CM-7", "T-3007", "agent", "Confirming: downgrade scheduled for 2026-03-24?", "2026-02-26")]},
]


class Customer(TypedDict):
    customer_id: str
    name: str
    email: str
    company: str
    plan: str
    phone: str
    customer_since: str
    open_ticket_count: int


class Agent(TypedDict):
    agent_id: str
    name: str
    team: str
    open_ticket_count: int


class Comment(TypedDict):
    comment_id: str
    ticket_id: str
    author: str
    text: str
    public: bool
    created: str


class Ticket(TypedDict):
    ticket_id: str
    customer_id: str
    subject: str
    description: str
    status: str
    priority: str
    category: str
    assignee_id: str | None
    created: str
    updated: str
    comments: list[Comment]


class TicketSummary(TypedDict):
    ticket_id: str
    customer_id: str
    subject: str
    status: str
    priority: str
    assignee_id: str | None
    updated: str


class HelpdeskServer:
    """The support desk of an invoicing SaaS product: look up customers and support agents, open
    tickets, list and read them, change their status, add comments and assign them to agents."""

    name = "helpdesk"
    title = "Helpdesk"
    domain = "customer-support"

    def __init__(self) -> None:
        self._customers = keyed(_CUSTOMERS, "customer_id")
        self._agents = keyed(_AGENTS, "agent_id")
        self._tickets = keyed(_TICKETS, "ticket_id")
        self._next_ticket = 3008
        self._next_comment = 8

    # ------------------------------------------------------------------ helpers

    def _customer(self, customer_id: str) -> dict:
        return lookup(self._customers, customer_id,
                      f"Unknown customer_id {customer_id!r}. Customer ids look like 'C-101' (C-101..C-108); "
                      f"use find_customer to look one up by name, email or company.")

    def _ticket(self, ticket_id: str) -> dict:
        return lookup(self._tickets, ticket_id,
                      f"Unknown ticket_id {ticket_id!r}. Known tickets: {', '.join(sorted(self._tickets))}.")

    def _agent(self, agent_id: str) -> dict:
        return lookup(self._agents, agent_id,
                      f"Unknown agent_id {agent_id!r}. Valid agents: "
                      + ", ".join(f"{a['agent_id']} ({a['name']}, {a['team']})" for a in self._agents.values())
                      + ".")

    def _open_count(self, field: str, value: str) -> int:
        return sum(1 for t in self._tickets.values() if t[field] == value and t["status"] in ("open", "pending"))

    def _customer_view(self, c: dict) -> Customer:
        out = copy.deepcopy(c)
        out["open_ticket_count"] = self._open_count("customer_id", c["customer_id"])
        return out  # type: ignore[return-value]

    @staticmethod
    def _check(value: str | None, allowed: tuple[str, ...], field: str) -> None:
        if value is not None and value not in allowed:
            raise ToolCallError(f"Unknown {field} {value!r}; valid values: {', '.join(allowed)}.")

    # ------------------------------------------------------------------ tools

    def get_customer(self, customer_id: str) -> Customer:
        """Get a customer's profile.

        Returns the customer's name, email, company, subscription plan, phone, signup date
        and number of open or pending tickets.

        Args:
            customer_id: Customer identifier such as 'C-104', as returned by find_customer or a ticket.

        Returns:
            The customer record.
        """
        return self._customer_view(self._customer(customer_id))

    def find_customer(self, query: str) -> list[Customer]:
        """Find customers by name, email address or company (case-insensitive substring match).

        Returns the matching customer profiles, including their customer_id.

        Args:
            query: Part of the customer's name, email or company, e.g. 'okafor' or 'brookbakery.example'.

        Returns:
            A list of matching customers; empty when none matches.
        """
        q = str(query or "").strip().lower()
        if len(q) < 2:
            raise ToolCallError("query must have at least 2 characters (part of a name, email or company).")
        return [self._customer_view(c) for c in self._customers.values()
                if q in c["name"].lower() or q in c["email"].lower() or q in c["company"].lower()]

    def list_agents(self, team: Team | None = None) -> list[Agent]:
        """List the support agents, optionally for one team.

        Returns each agent's agent_id (a ticket's assignee_id), name, team and number of open
        or pending tickets assigned to them.

        Args:
            team: Only list agents of this team; omit for all agents.

        Returns:
            A list of agents.
        """
        self._check(team, _TEAMS, "team")
        out = []
        for a in self._agents.values():
            if team is None or a["team"] == team:
                row = copy.deepcopy(a)
                row["open_ticket_count"] = self._open_count("assignee_id", a["agent_id"])
                out.append(row)
        return out

    def create_ticket(self, customer_id: str, subject: str, description: str, priority: Priority = "normal",
                      category: TicketCategory = "other") -> Ticket:
        """Open a new support ticket for a customer.

        The ticket starts in status 'open' with no assignee. Returns the new ticket with its ticket_id.

        Args:
            customer_id: Identifier of the customer reporting the issue, e.g. 'C-101', as returned by find_customer.
            subject: One-line summary of the problem, e.g. 'Invoice PDF shows wrong currency'.
            description: Full description of the problem in the customer's words.
            priority: How urgent the issue is.
            category: Which area the issue belongs to.

        Returns:
            The created ticket.
        """
        c = self._customer(customer_id)
        self._check(priority, _PRIORITIES, "priority")
        self._check(category, _CATEGORIES, "category")
        subject = str(subject or "").strip()
        description = str(description or "").strip()
        if len(subject) < 3:
            raise ToolCallError("subject must be a short summary of at least 3 characters.")
        if not description:
            raise ToolCallError("description must not be empty.")
        tid = f"T-{self._next_ticket}"
        self._next_ticket += 1
        t = {"ticket_id": tid, "customer_id": c["customer_id"], "subject": subject, "description": description,
             "status": "open", "priority": priority, "category": category, "assignee_id": None, "created": TODAY,
             "updated": TODAY, "comments": []}
        self._tickets[tid] = t
        return copy.deepcopy(t)

    def get_ticket(self, ticket_id: str) -> Ticket:
        """Get a ticket with its full comment history.

        Returns the ticket's customer, subject, description, status, priority, category,
        assignee and all comments in order.

        Args:
            ticket_id: Ticket identifier such as 'T-3002', as returned by create_ticket or list_tickets.

        Returns:
            The ticket record.
        """
        return copy.deepcopy(self._ticket(ticket_id))

    def list_tickets(self, customer_id: str | None = None, status: Status | None = None,
                     priority: Priority | None = None, agent_id: str | None = None) -> list[TicketSummary]:
        """List tickets matching all given filters, most recently updated first.

        Returns a short summary per ticket (ticket_id, customer, subject, status, priority, assignee).

        Args:
            customer_id: Only tickets of this customer, e.g. 'C-101'.
            status: Only tickets in this status.
            priority: Only tickets with this priority.
            agent_id: Only tickets assigned to this agent, e.g. 'A-2', as returned by list_agents.

        Returns:
            A list of ticket summaries; empty when none matches.
        """
        cid = self._customer(customer_id)["customer_id"] if customer_id is not None else None
        aid = self._agent(agent_id)["agent_id"] if agent_id is not None else None
        self._check(status, _STATUSES, "status")
        self._check(priority, _PRIORITIES, "priority")
        out = []
        for t in self._tickets.values():
            if cid is not None and t["customer_id"] != cid:
                continue
            if status is not None and t["status"] != status:
                continue
            if priority is not None and t["priority"] != priority:
                continue
            if aid is not None and t["assignee_id"] != aid:
                continue
            out.append({"ticket_id": t["ticket_id"], "customer_id": t["customer_id"], "subject": t["subject"],
                        "status": t["status"], "priority": t["priority"], "assignee_id": t["assignee_id"],
                        "updated": t["updated"]})
        out.sort(key=lambda x: (x["updated"], x["ticket_id"]), reverse=True)
        return out

    def update_ticket_status(self, ticket_id: str, status: Status, note: str | None = None) -> Ticket:
        """Change a ticket's status, optionally adding an internal note.

        Allowed moves: open -> pending/resolved/closed, pending -> open/resolved/closed,
        resolved -> open/closed; closed tickets are final. Returns the updated ticket.

        Args:
            ticket_id: Ticket identifier such as 'T-3004', as returned by create_ticket or list_tickets.
            status: The new status.
            note: Internal (non-public) note explaining the change, e.g. 'Customer confirmed the fix'.

        Returns:
            The updated ticket.
        """
        t = self._ticket(ticket_id)
        self._check(status, _STATUSES, "status")
        if status == t["status"]:
            raise ToolCallError(f"Ticket {t['ticket_id']} is already {status}.")
        if status not in _TRANSITIONS[t["status"]]:
            allowed = ", ".join(sorted(_TRANSITIONS[t["status"]])) or "none (closed tickets are final)"
            raise ToolCallError(
                f"Ticket {t['ticket_id']} cannot move from {t['status']} to {status}; allowed: {allowed}."
            )
        t["status"] = status
        t["updated"] = TODAY
        if note:
            self._add_comment(t, f"Status changed to {status}: {note}", "agent", public=False)
        return copy.deepcopy(t)

    def _add_comment(self, t: dict, text: str, author: str, public: bool) -> dict:
        c = _c(f"CM-{self._next_comment}", t["ticket_id"], author, text, TODAY, public)
        self._next_comment += 1
        t["comments"].append(c)
        t["updated"] = TODAY
        return c

    def add_comment(self, ticket_id: str, text: str, author: Literal["agent", "customer"] = "agent",
                    public: bool = True) -> Comment:
        """Add a comment to a ticket.

        Public comments are emailed to the customer; private ones are internal notes. Closed
        tickets accept no comments. Returns the new comment with its comment_id.

        Args:
            ticket_id: Ticket identifier such as 'T-3001', as returned by create_ticket or list_tickets.
            text: The comment text, e.g. 'We have refunded the duplicate charge.'.
            author: Who wrote the comment.
            public: If false, the comment is an internal note the customer does not see.

        Returns:
            The created comment.
        """
        t = self._ticket(ticket_id)
        self._check(author, ("agent", "customer"), "author")
        text = str(text or "").strip()
        if not text:
            raise ToolCallError("text must not be empty.")
        if t["status"] == "closed":
            raise ToolCallError(f"Ticket {t['ticket_id']} is closed; open a new ticket instead of commenting.")
        return copy.deepcopy(self._add_comment(t, text, author, bool(public)))

    def assign_ticket(self, ticket_id: str, agent_id: str) -> Ticket:
        """Assign a ticket to a support agent.

        Returns the updated ticket. Closed tickets cannot be reassigned.

        Args:
            ticket_id: Ticket identifier such as 'T-3004', as returned by create_ticket or list_tickets.
            agent_id: Identifier of the agent to assign, such as 'A-2', as returned by list_agents.

        Returns:
            The updated ticket.
        """
        t = self._ticket(ticket_id)
        a = self._agent(agent_id)
        if t["status"] == "closed":
            raise ToolCallError(f"Ticket {t['ticket_id']} is closed and cannot be reassigned.")
        if t["assignee_id"] == a["agent_id"]:
            raise ToolCallError(f"Ticket {t['ticket_id']} is already assigned to {a['agent_id']} ({a['name']}).")
        t["assignee_id"] = a["agent_id"]
        t["updated"] = TODAY
        return copy.deepcopy(t)
