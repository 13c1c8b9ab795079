"""Liabilities: /liabilities/get for the household's card (APRs, statements), student loan, mortgage and installment
loan (the `loan` liabilities of Plaid's newer API).

Every figure follows the item's ledger as of its last refresh: statement balances are the card's balance when each
statement closed (on the 5th), last payments are the ledger's payment rows, year-to-date sums add up this year's rows.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from finance.providers.plaid.sandbox.accounts import _AccountMeta
from finance.providers.plaid.sandbox.base import PlaidApiError, PlaidBase, _Call, _money, _object, _strings
from finance.providers.plaid.sandbox.household import INSTALLMENT_RATE, INSTALLMENT_TERM, NEW_YORK
from finance.sandbox.ledger import Entry, Ledger, add_months, business_day

CARD_APRS = (("purchase_apr", 12.5), ("cash_apr", 27.99), ("balance_transfer_apr", 14.99))
STUDENT_RATE = 5.5
MORTGAGE_RATE = 6.125
MORTGAGE_ESCROW = 452.18
PAYMENT_KINDS = frozenset({"card_payment", "loan_payment", "principal"})
STATEMENT_DAY = 5
"""The card's statement closes on the 5th (the household pays it by the 25th)."""


def _next_on(today: date, day_of_month: int) -> date:
    """The first business day falling on or after `day_of_month` this month, or next month once that has passed."""
    due = business_day(date(today.year, today.month, day_of_month))
    return due if due >= today else business_day(add_months(date(today.year, today.month, day_of_month), 1))


class _Rows:
    """One account's ledger rows as of a moment, and the sums /liabilities/get reports."""

    def __init__(self, ledger: Ledger, index: int, moment: datetime) -> None:
        self.entries = [entry for entry, pending, _ in ledger.view(index, moment) if not pending]
        self.today = moment.astimezone(NEW_YORK).date()
        payments = [e for e in self.entries if e.kind in PAYMENT_KINDS and e.final_amount > 0]
        self.last_payment: Entry | None = payments[-1] if payments else None

    def day_of(self, entry: Entry) -> date:
        return entry.when.astimezone(NEW_YORK).date()

    def balance_on(self, day: date) -> float:
        """The balance (negative: owed) at the end of `day`."""
        balance = None
        for entry in self.entries:
            if self.day_of(entry) > day:
                break
            balance = entry.balance
        return balance if balance is not None else 0.0

    def this_year(self, kind: str) -> float:
        """The amount of this year's rows of `kind`, as a positive sum."""
        return abs(sum(e.final_amount for e in self.entries
                       if e.kind == kind and self.day_of(e).year == self.today.year))

    def payment(self) -> tuple[float | None, str | None]:
        last = self.last_payment
        return (_money(last.final_amount), self.day_of(last).isoformat()) if last else (None, None)


class LiabilitiesMixin(PlaidBase):
    """/liabilities/get."""

    def _liabilities_get(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call, healthy=True)
        institution = self._institution(item["institution_id"])
        if "liabilities" not in institution["products"]:
            raise PlaidApiError("PRODUCTS_NOT_SUPPORTED", f"{institution['name']} does not support liabilities")
        accounts = [(i, meta) for i, meta in enumerate(self._layout(item)) if meta.owed]
        if not accounts:
            raise PlaidApiError("NO_LIABILITY_ACCOUNTS")
        wanted = _strings(_object(call.body, "options"), "account_ids")
        if wanted is not None:
            if not wanted or any(a not in {meta.account_id for _, meta in accounts} for a in wanted):
                raise PlaidApiError("INVALID_ACCOUNT_ID")
            accounts = [(i, meta) for i, meta in accounts if meta.account_id in wanted]
        if "liabilities" not in item["products"]:
            item["products"] = [*item["products"], "liabilities"]
            self._save()
        moment = self._snapshot(item, call.now)
        view, ledger = self._view(item, moment), self._ledger(item)
        found: dict[str, list[dict[str, Any]]] = {"credit": [], "student": [], "mortgage": [], "loan": []}
        for index, meta in accounts:
            rows, owed = _Rows(ledger, index, moment), max(-view.balances[index][0], 0.0)
            if meta.type == "credit":
                found["credit"].append(self._card_liability(meta, rows, owed))
            elif meta.subtype == "student":
                found["student"].append(self._student_liability(meta, rows, owed, ledger))
            elif meta.subtype == "mortgage":
                found["mortgage"].append(self._mortgage_liability(meta, rows, owed, ledger))
            else:
                found["loan"].append(self._loan_liability(meta, rows, owed, ledger))
        return {"accounts": [self._account_json(meta, view.balances[i]) for i, meta in accounts],
                "liabilities": {kind: entries or None for kind, entries in found.items()},
                "item": self._item_json(item)}

    @staticmethod
    def _account_number(meta: _AccountMeta) -> str:
        return f"{int(meta.account_id[:12], 36) % 10**10:010d}"

    def _card_liability(self, meta: _AccountMeta, rows: _Rows, owed: float) -> dict[str, Any]:
        today = rows.today
        issued = date(today.year, today.month, STATEMENT_DAY)
        if issued >= today:
            issued = add_months(issued, -1)
        statement = max(-rows.balance_on(issued), 0.0)
        last_amount, last_date = rows.payment()
        return {
            "account_id": meta.account_id,
            "aprs": [{"apr_percentage": rate, "apr_type": kind,
                      "balance_subject_to_apr": _money(owed) if kind == "purchase_apr" else 0.0,
                      "interest_charge_amount": 0.0} for kind, rate in CARD_APRS],
            "is_overdue": False, "last_payment_amount": last_amount, "last_payment_date": last_date,
            "last_statement_issue_date": issued.isoformat(), "last_statement_balance": _money(statement),
            "minimum_payment_amount": _money(min(statement, max(25.0, statement * 0.01))),
            "next_payment_due_date": _next_on(today, 25).isoformat() if statement else None,
            "cash_advance_limit": round((meta.limit or 0.0) * 0.2, 2) if meta.limit else None,
        }

    def _student_liability(self, meta: _AccountMeta, rows: _Rows, owed: float, ledger: Ledger) -> dict[str, Any]:
        start = ledger.profile.start
        originated = add_months(start, -60)
        last_amount, last_date = rows.payment()
        paid = sum(1 for e in rows.entries if e.kind == "loan_payment")
        interest = rows.this_year("interest")
        number = self._account_number(meta)
        return {
            "account_id": meta.account_id, "account_number": number,
            "disbursement_dates": [originated.isoformat()],
            "expected_payoff_date": add_months(originated, 120).isoformat(), "guarantor": "DEPT OF ED",
            "interest_rate_percentage": STUDENT_RATE, "is_overdue": False, "last_payment_amount": last_amount,
            "last_payment_date": last_date,
            "last_statement_balance": _money(-rows.balance_on(date(rows.today.year, rows.today.month, 1))),
            "last_statement_issue_date": date(rows.today.year, rows.today.month, 1).isoformat(),
            "loan_name": "Consolidation", "loan_status": {"end_date": None, "type": "repayment"},
            "minimum_payment_amount": last_amount, "next_payment_due_date": _next_on(rows.today, 15).isoformat(),
            "origination_date": originated.isoformat(),
            "origination_principal_amount": _money(round(owed * 1.4, -2)), "outstanding_interest_amount": 0.0,
            "payment_reference_number": number, "pslf_status": {
                "estimated_eligibility_date": None, "payments_made": 48 + paid, "payments_remaining": 72 - paid},
            "repayment_plan": {"description": "Standard Repayment", "type": "standard"}, "sequence_number": "1",
            "servicer_address": {"city": "Wilkes-Barre", "region": "PA", "street": "123 Main St",
                                 "postal_code": "18773", "country": "US"},
            "ytd_interest_paid": _money(interest),
            "ytd_principal_paid": _money(max(rows.this_year("loan_payment") - interest, 0.0)),
        }

    def _mortgage_liability(self, meta: _AccountMeta, rows: _Rows, owed: float, ledger: Ledger) -> dict[str, Any]:
        originated = add_months(ledger.profile.start, -48)
        principal = rows.last_payment.final_amount if rows.last_payment else 0.0
        interest = owed * MORTGAGE_RATE / 100 / 12
        payments_this_year = sum(1 for e in rows.entries
                                 if e.kind == "principal" and rows.day_of(e).year == rows.today.year)
        last_date = rows.payment()[1]
        return {
            "account_id": meta.account_id, "account_number": self._account_number(meta), "current_late_fee": 0.0,
            "escrow_balance": 3141.54, "has_pmi": False, "has_prepayment_penalty": False,
            "interest_rate": {"percentage": MORTGAGE_RATE, "type": "fixed"},
            "last_payment_amount": _money(principal + interest + MORTGAGE_ESCROW) if last_date else None,
            "last_payment_date": last_date, "loan_type_description": "conventional", "loan_term": "30 year",
            "maturity_date": add_months(originated, 360).isoformat(),
            "next_monthly_payment": _money(principal + interest + MORTGAGE_ESCROW),
            "next_payment_due_date": _next_on(rows.today + timedelta(days=1), 1).isoformat(),
            "origination_date": originated.isoformat(),
            "origination_principal_amount": _money(round(owed * 1.08, -3)), "past_due_amount": 0.0,
            "property_address": {"city": "Malakoff", "country": "US", "postal_code": "14236", "region": "NY",
                                 "street": "2992 Cameron Road"},
            "ytd_interest_paid": _money(interest * payments_this_year),
            "ytd_principal_paid": _money(rows.this_year("principal")),
        }

    def _loan_liability(self, meta: _AccountMeta, rows: _Rows, owed: float, ledger: Ledger) -> dict[str, Any]:
        start = ledger.profile.start
        principal = float(getattr(ledger.profile, "installment_principal", owed))
        payment = getattr(ledger.profile, "installment_payment", None)
        last_amount, last_date = rows.payment()
        return {
            "account_id": meta.account_id, "account_number": self._account_number(meta),
            "interest_rate": {"percentage": round(INSTALLMENT_RATE * 100, 2), "type": "fixed"},
            "principal_balance": _money(owed), "origination_principal_amount": _money(principal),
            "origination_date": start.isoformat(), "loan_term_months": INSTALLMENT_TERM,
            "maturity_date": add_months(start, INSTALLMENT_TERM).isoformat(), "payment_count": INSTALLMENT_TERM,
            "payment_frequency": "monthly", "next_payment_amount": payment,
            "next_payment_due_date": _next_on(rows.today, 10).isoformat() if owed else None,
            "last_payment_amount": last_amount, "last_payment_date": last_date,
            "payoff_amount": _money(owed * (1 + INSTALLMENT_RATE / 12)),
            "ytd_interest_paid": _money(rows.this_year("interest")), "compounding_period": "monthly",
        }
