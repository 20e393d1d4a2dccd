"""Bank: personal banking for one customer, Dana Whitfield.

Seed data: four accounts, ``ACC-1001`` (everyday checking, USD), ``ACC-1002`` (high-yield
savings, USD), ``ACC-1003`` (euro checking, EUR) and ``ACC-1004`` (credit card, USD, with
a $5,000 limit and $1,240.60 owed), 16 past transactions between 2026-02-02 and
2026-03-01, and fixed exchange rates against USD for EUR, GBP, JPY, CAD, CHF and AUD.
"Today" is 2026-03-02. Each ``BankServer`` instance starts from its own copy of the
balances and transactions.
"""

import copy
import datetime as _dt
from typing import Literal, TypedDict

from astra.data.servers._tables import keyed, lookup, one_of
from astra.errors import ToolCallError

TODAY = "2026-03-02"

AccountType = Literal["checking", "savings", "credit"]
Currency = Literal["USD", "EUR", "GBP", "JPY", "CAD", "CHF", "AUD"]

# Units of each currency per 1 USD.
_RATES_PER_USD: dict[str, float] = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 149.5, "CAD": 1.36,
                                    "CHF": 0.88, "AUD": 1.53}

_ACCOUNTS: list[dict] = [
    {"account_id": "ACC-1001", "nickname": "Everyday Checking", "account_type": "checking", "currency": "USD",
     "balance": 2450.75, "credit_limit": None, "interest_rate_percent": 0.05, "opened_on": "2019-06-03",
     "iban": None, "routing_number": "021000089", "account_number_last4": "4821"},
    {"account_id": "ACC-1002", "nickname": "High-Yield Savings", "account_type": "savings", "currency": "USD",
     "balance": 18200.00, "credit_limit": None, "interest_rate_percent": 4.1, "opened_on": "2021-01-15",
     "iban": None, "routing_number": "021000089", "account_number_last4": "7730"},
    {"account_id": "ACC-1003", "nickname": "Euro Checking", "account_type": "checking", "currency": "EUR",
     "balance": 860.40, "credit_limit": None, "interest_rate_percent": 0.0, "opened_on": "2024-09-10",
     "iban": "DE89 3704 0044 0532 0130 00", "routing_number": None, "account_number_last4": "3000"},
    {"account_id": "ACC-1004", "nickname": "Rewards Credit Card", "account_type": "credit", "currency": "USD",
     "balance": -1240.60, "credit_limit": 5000.0, "interest_rate_percent": 22.9, "opened_on": "2020-04-22",
     "iban": None, "routing_number": None, "account_number_last4": "9914"},
]


def _t(tid, acc, date, desc, amount, category):
    return {"transaction_id": tid, "account_id": acc, "date": date, "description": desc, "amount": amount,
            "direction": "credit" if amount > 0 else "debit", "category": category, "transfer_id": None}


_TRANSACTIONS: list[dict] = [
    _t("TX-90001", "ACC-1001", "2026-02-02", "Payroll - Lumen Analytics", 3850.00, "income"),
    _t("TX-90002", "ACC-1001", "2026-02-03", "Rent - Alder Court Apartments", -1900.00, "housing"),
    _t("TX-90003", "ACC-1001", "2026-02-07", "Pacific Power utility bill", -96.42, "utilities"),
    _t("TX-90004", "ACC-1004", "2026-02-08", "Greenleaf Market", -134.18, "groceries"),
    _t("TX-90005", "ACC-1004", "2026-02-11", "Skyline Air ticket SK 530", -412.00, "travel"),
    _t("TX-90006", "ACC-1001", "2026-02-14", "Transfer to savings", -500.00, "transfer"),
    _t("TX-90007", "ACC-1002", "2026-02-14", "Transfer from checking", 500.00, "transfer"),
    _t("TX-90008", "ACC-1004", "2026-02-15", "Cinema Nova", -31.50, "entertainment"),
    _t("TX-90009", "ACC-1003", "2026-02-16", "Hotel Lumiere Marais", -524.00, "travel"),
    _t("TX-90010", "ACC-1001", "2026-02-16", "Payroll - Lumen Analytics", 3850.00, "income"),
    _t("TX-90011", "ACC-1004", "2026-02-19", "Greenleaf Market", -98.77, "groceries"),
    _t("TX-90012", "ACC-1001", "2026-02-20", "Credit card payment", -600.00, "transfer"),
    _t("TX-90013", "ACC-1004", "2026-02-20", "Payment - thank you", 600.00, "transfer"),
    _t("TX-90014", "ACC-1002", "2026-02-28", "Interest payment", 61.12, "interest"),
    _t("TX-90015", "ACC-1004", "2026-02-27", "Streamly subscription", -15.99, "entertainment"),
    _t("TX-90016", "ACC-1001", "2026-03-01", "Gym membership - IronWorks", -45.00, "health"),
]


class AccountSummary(TypedDict):
    account_id: str
    nickname: str
    account_type: str
    currency: str
    balance: float
    account_number_last4: str


class Account(TypedDict):
    account_id: str
    nickname: str
    account_type: str
    currency: str
    balance: float
    available_balance: float
    credit_limit: float | None
    interest_rate_percent: float
    opened_on: str
    iban: str | None
    routing_number: str | None
    account_number_last4: str
    holder_name: str


class Balance(TypedDict):
    account_id: str
    currency: str
    current_balance: float
    available_balance: float
    as_of: str


class Transaction(TypedDict):
    transaction_id: str
    account_id: str
    date: str
    description: str
    amount: float
    direction: str
    category: str
    transfer_id: str | None


class Transfer(TypedDict):
    transfer_id: str
    status: str
    date: str
    from_account_id: str
    to_account_id: str
    amount: float
    currency: str
    converted_amount: float
    to_currency: str
    exchange_rate: float
    memo: str | None
    from_balance_after: float
    to_balance_after: float


class ExchangeRate(TypedDict):
    from_currency: str
    to_currency: str
    rate: float
    as_of: str


class Conversion(TypedDict):
    amount: float
    from_currency: str
    converted_amount: float
    to_currency: str
    rate: float
    as_of: str


def _currency(code: str, field: str) -> str:
    c = str(code or "").strip().upper()
    if c not in _RATES_PER_USD:
        raise ToolCallError(f"Unsupported {field} {code!r}; supported currencies: {', '.join(_RATES_PER_USD)}.")
    return c


def _rate(src: str, dst: str) -> float:
    return round(_RATES_PER_USD[dst] / _RATES_PER_USD[src], 6)


def _round(amount: float, currency: str) -> float:
    return float(round(amount)) if currency == "JPY" else round(amount + (1e-9 if amount >= 0 else -1e-9), 2)


def _date(value: str, field: str) -> str:
    try:
        return _dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ToolCallError(f"{field} {value!r} is not a date in YYYY-MM-DD format, e.g. '2026-02-15'.") from None


class BankServer:
    """Online banking for one customer with checking, savings, euro and credit-card accounts: list
    accounts, read balances and transaction history, move money between the accounts (with
    automatic currency conversion) and look up exchange rates."""

    name = "bank"
    title = "Bank"
    domain = "finance"

    def __init__(self) -> None:
        self._accounts = keyed(_ACCOUNTS, "account_id")
        self._transactions = copy.deepcopy(_TRANSACTIONS)
        self._next_tx = 90017
        self._next_transfer = 501

    # ------------------------------------------------------------------ helpers

    def _account(self, account_id: str, field: str = "account_id") -> dict:
        return lookup(self._accounts, account_id,
                      f"Unknown {field} {account_id!r}. Valid accounts: {', '.join(self._accounts)} (see list_accounts).")

    @staticmethod
    def _available(a: dict) -> float:
        if a["account_type"] == "credit":
            return round(a["credit_limit"] + a["balance"], 2)
        return a["balance"]

    def _add_tx(self, account_id: str, description: str, amount: float, transfer_id: str) -> None:
        tx = _t(f"TX-{self._next_tx}", account_id, TODAY, description, amount, "transfer")
        tx["transfer_id"] = transfer_id
        self._next_tx += 1
        self._transactions.append(tx)

    # ------------------------------------------------------------------ tools

    def list_accounts(self, account_type: AccountType | None = None) -> list[AccountSummary]:
        """List the customer's accounts.

        Returns each account's account_id, nickname, type, currency and current balance
        (negative for money owed on the credit card).

        Args:
            account_type: Only list accounts of this type; omit for all accounts.

        Returns:
            A list of account summaries.
        """
        if account_type is not None and account_type not in ("checking", "savings", "credit"):
            raise ToolCallError(f"Unknown account_type {account_type!r}; use checking, savings or credit.")
        return [{"account_id": a["account_id"], "nickname": a["nickname"], "account_type": a["account_type"],
                 "currency": a["currency"], "balance": a["balance"],
                 "account_number_last4": a["account_number_last4"]}
                for a in self._accounts.values() if account_type is None or a["account_type"] == account_type]

    def get_account(self, account_id: str) -> Account:
        """Get the full details of one account.

        Returns type, currency, balance, available balance, credit limit, interest rate,
        opening date and routing/IBAN details.

        Args:
            account_id: Account identifier such as 'ACC-1002', as returned by list_accounts.

        Returns:
            The account record.
        """
        a = copy.deepcopy(self._account(account_id))
        a["available_balance"] = self._available(a)
        a["holder_name"] = "Dana Whitfield"
        return a  # type: ignore[return-value]

    def get_balance(self, account_id: str) -> Balance:
        """Get the current and available balance of an account.

        For the credit card the current balance is negative (amount owed) and the available
        balance is the remaining credit.

        Args:
            account_id: Account identifier such as 'ACC-1001', as returned by list_accounts.

        Returns:
            The balance.
        """
        a = self._account(account_id)
        return {"account_id": a["account_id"], "currency": a["currency"], "current_balance": a["balance"],
                "available_balance": self._available(a), "as_of": TODAY}

    def list_transactions(self, account_id: str, start_date: str | None = None, end_date: str | None = None,
                          direction: Literal["debit", "credit"] | None = None, category: str | None = None,
                          limit: int = 20) -> list[Transaction]:
        """List an account's transactions, newest first.

        Returns date, description, signed amount (negative = money out), direction, category and,
        for transfers, the transfer_id.

        Args:
            account_id: Account identifier such as 'ACC-1004', as returned by list_accounts.
            start_date: Earliest transaction date to include, YYYY-MM-DD, e.g. '2026-02-01'.
            end_date: Latest transaction date to include, YYYY-MM-DD, e.g. '2026-02-28'.
            direction: 'debit' for money out or 'credit' for money in; omit for both.
            category: Spending category to filter by, e.g. 'groceries', 'travel', 'income' or 'transfer'.
            limit: Maximum number of transactions to return (1-100).

        Returns:
            A list of transactions; empty when none matches.
        """
        a = self._account(account_id)
        start = _date(start_date, "start_date") if start_date is not None else None
        end = _date(end_date, "end_date") if end_date is not None else None
        if start and end and start > end:
            raise ToolCallError(f"start_date {start} is after end_date {end}.")
        if direction is not None:
            one_of("direction", direction, ("debit", "credit"))
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ToolCallError(f"limit must be an integer between 1 and 100, got {limit!r}.")
        out = [copy.deepcopy(t) for t in self._transactions
               if t["account_id"] == a["account_id"]
               and (start is None or t["date"] >= start) and (end is None or t["date"] <= end)
               and (direction is None or t["direction"] == direction)
               and (category is None or t["category"] == str(category).strip().lower())]
        out.sort(key=lambda t: (t["date"], t["transaction_id"]), reverse=True)
        return out[:limit]

    def transfer_funds(self, from_account_id: str, to_account_id: str, amount: float,
                       memo: str | None = None) -> Transfer:
        """Move money between two of the customer's accounts.

        The amount is in the source account's currency and is converted at today's rate when
        the currencies differ. Paying into the credit card reduces the amount owed. Fails on
        insufficient funds; the credit card cannot be a source. Returns the completed transfer.

        Args:
            from_account_id: Account to take the money from, e.g. 'ACC-1002', as returned by list_accounts.
            to_account_id: Account to put the money into, e.g. 'ACC-1001', as returned by list_accounts.
            amount: Amount to move, in the source account's currency, e.g. 250.0.
            memo: Short note stored with both transactions, e.g. 'March rent top-up'.

        Returns:
            The transfer with the converted amount and both balances afterwards.
        """
        src = self._account(from_account_id, "from_account_id")
        dst = self._account(to_account_id, "to_account_id")
        if src is dst:
            raise ToolCallError("from_account_id and to_account_id must be different accounts.")
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise ToolCallError(f"amount must be a number, got {amount!r}.")
        amount = _round(float(amount), src["currency"])
        if amount <= 0:
            raise ToolCallError(f"amount must be positive, got {amount}.")
        if src["account_type"] == "credit":
            raise ToolCallError(
                f"{src['account_id']} is a credit card; cash transfers from it are not supported. "
                f"Choose a checking or savings account as the source."
            )
        if amount > src["balance"]:
            raise ToolCallError(
                f"Insufficient funds in {src['account_id']}: available {src['balance']:.2f} {src['currency']}, "
                f"requested {amount:.2f} {src['currency']}."
            )
        rate = _rate(src["currency"], dst["currency"])
        converted = _round(amount * rate, dst["currency"])
        if dst["account_type"] == "credit" and converted > -dst["balance"] + 1e-9:
            raise ToolCallError(
                f"Payment of {converted:.2f} {dst['currency']} exceeds the {(-dst['balance']):.2f} owed on "
                f"{dst['account_id']}."
            )
        transfer_id = f"TRF-{self._next_transfer}"
        self._next_transfer += 1
        src["balance"] = _round(src["balance"] - amount, src["currency"])
        dst["balance"] = _round(dst["balance"] + converted, dst["currency"])
        note = (memo or "").strip() or None
        self._add_tx(src["account_id"], f"Transfer to {dst['nickname']}" + (f" - {note}" if note else ""),
                     -amount, transfer_id)
        self._add_tx(dst["account_id"], f"Transfer from {src['nickname']}" + (f" - {note}" if note else ""),
                     converted, transfer_id)
        return {"transfer_id": transfer_id, "status": "completed", "date": TODAY,
                "from_account_id": src["account_id"], "to_account_id": dst["account_id"], "amount": amount,
                "currency": src["currency"], "converted_amount": converted, "to_currency": dst["currency"],
                "exchange_rate": rate, "memo": note, "from_balance_after": src["balance"],
                "to_balance_after": dst["balance"]}

    def get_exchange_rate(self, from_currency: Currency, to_currency: Currency) -> ExchangeRate:
        """Get today's exchange rate between two currencies.

        Returns how many units of to_currency one unit of from_currency buys.

        Args:
            from_currency: ISO 4217 code of the currency to convert from, e.g. 'USD' (an account's currency).
            to_currency: ISO 4217 code of the currency to convert to, e.g. 'EUR'.

        Returns:
            The exchange rate.
        """
        src = _currency(from_currency, "from_currency")
        dst = _currency(to_currency, "to_currency")
        return {"from_currency": src, "to_currency": dst, "rate": _rate(src, dst), "as_of": TODAY}

    def convert_currency(self, amount: float, from_currency: Currency, to_currency: Currency) -> Conversion:
        """Convert an amount of money between currencies at today's rate (no money moves).

        Returns the converted amount, rounded to the target currency's minor unit, and the rate used.

        Args:
            amount: Amount to convert, in from_currency, e.g. 860.40.
            from_currency: ISO 4217 code of the amount's currency, e.g. 'EUR'.
            to_currency: ISO 4217 code of the currency wanted, e.g. 'USD'.

        Returns:
            The conversion.
        """
        src = _currency(from_currency, "from_currency")
        dst = _currency(to_currency, "to_currency")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            raise ToolCallError(f"amount must be a non-negative number, got {amount!r}.")
        rate = _rate(src, dst)
        return {"amount": float(amount), "from_currency": src, "converted_amount": _round(amount * rate, dst),
                "to_currency": dst, "rate": rate, "as_of": TODAY}
