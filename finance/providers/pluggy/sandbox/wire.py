"""Pluggy's JSON rendering of ledger entries (the `Transaction` object), and `generate_transactions`, a fast bulk
generator of Pluggy-shaped rows for benchmarks and load tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from random import Random
from time import gmtime as _gmtime
from time import strftime as _strftime
from typing import Any

from finance.providers.pluggy.sandbox.categories import PLUGGY_CATEGORIES
from finance.providers.pluggy.sandbox.household import (
    CARD_LAST4,
    DEBIT_SHOPS,
    GAS_STATIONS,
    GROCERIES,
    HOLDER,
    IFOOD,
    METRO,
    NETFLIX,
    PEOPLE,
    PHARMACIES,
    RESTAURANTS,
    RIDES,
    SAO_PAULO,
    SHOPS,
    SPOTIFY,
    close_date_for,
    due_date_for,
)
from finance.sandbox.ledger import Entry, Merchant, Party, iso_z


def pluggy_merchant(merchant: Merchant) -> dict[str, Any]:
    """The `merchant` object of a Pluggy transaction."""
    return {"name": merchant.name, "businessName": merchant.business_name, "cnpj": merchant.tax_id,
            "cnae": merchant.industry_code, "category": PLUGGY_CATEGORIES[merchant.category_id][0]}


def _participant(party: Party | None) -> dict[str, Any] | None:
    if party is None:
        return None
    document = {"type": party.document_type, "value": party.document} if party.document else None
    return {"name": party.name, "branchNumber": party.branch, "accountNumber": party.account,
            "routingNumber": party.bank_code, "routingNumberISPB": None, "documentNumber": document}


def _payment_data(entry: Entry, amount: float) -> dict[str, Any] | None:
    if entry.method is None:
        return None
    payer, receiver = (HOLDER, entry.counterparty) if entry.outgoing else (entry.counterparty, HOLDER)
    boleto = None
    if entry.boleto is not None:
        boleto = {"digitableLine": entry.boleto[0], "barcode": entry.boleto[1], "baseAmount": abs(amount),
                  "penaltyAmount": 0, "interestAmount": 0, "discountAmount": 0}
    reference = entry.id.replace("-", "")
    if entry.method == "PIX":  # an end-to-end id: "E" + ISPB + yyyyMMddHHmm + 11 characters
        reference = f"E99999999{entry.when.astimezone(UTC):%Y%m%d%H%M}{reference[:11]}"
    return {"payer": _participant(payer), "receiver": _participant(receiver), "reason": entry.reason,
            "paymentMethod": entry.method, "referenceNumber": reference[:32], "receiverReferenceId": None,
            "boletoMetadata": boleto}


def _bill_post_date(entry: Entry) -> str:
    """The local day a card row was posted onto its bill ("YYYY-MM-DD"): when a pending purchase settled, else the
    day the row appeared (pluggy-sdk 0.92.0 `CreditCardMetadata.billPostDate`; pending rows are on no bill yet)."""
    posted = entry.posts_at or entry.when + entry.lag
    return posted.astimezone(SAO_PAULO).date().isoformat()


def pluggy_transaction(entry: Entry, *, account_id: str, pending: bool, created_at: datetime, flip: bool,
                       card_number: str | None = None, category_id: str | None = None,
                       updated_at: datetime | None = None, closed_through: date | None = None,
                       open_finance: bool = False) -> dict[str, Any]:
    """An entry as Pluggy's `Transaction` object.

    flip: negate amounts and balance (credit cards under the "purchases positive" convention).
    card_number: set for credit-card accounts, which get `creditCardMetadata` (with `transactionDateTime` only when
    the institution knows the time of day, as Open Finance card data carries it).
    category_id / updated_at: a user's re-categorization (PATCH /transactions/{id}) and when it happened.
    closed_through: the closing date of the card's latest closed bill; a row of a bill still open has no `billId`
    yet (GET /bills lists closed bills only). open_finance: card rows carry `billForecastDate`, the month of the
    bill they are expected on ("YYYY-MM"), which only Open Finance connectors send.
    """
    amount = entry.amount if pending else entry.final_amount
    sign = -1.0 if flip else 1.0
    category = category_id or entry.category_id
    metadata = None
    if card_number is not None:
        close = close_date_for(entry.when.astimezone(SAO_PAULO).date())
        closed = closed_through is None or close <= closed_through
        metadata = {"cardNumber": card_number, "billId": entry.bill_id if closed and not pending else None,
                    "billPostDate": None if pending else _bill_post_date(entry),
                    "payeeMCC": entry.merchant.mcc if entry.merchant else None,
                    "purchaseDate": iso_z(entry.when),
                    "transactionDateTime": iso_z(entry.when) if entry.exact_time else None}
        if open_finance:
            metadata["billForecastDate"] = f"{due_date_for(close):%Y-%m}"
        if entry.installment is not None:
            metadata.update(installmentNumber=entry.installment.number,
                            totalInstallments=entry.installment.total,
                            totalAmount=round(sign * entry.installment.total_amount, 2),
                            purchaseDate=iso_z(entry.installment.purchase_date),
                            paymentType="INSTALLMENT")
        if entry.fee_type is not None:
            metadata["feeType"] = entry.fee_type
        if entry.kind == "bill_installment":  # a past bill paid in installments ("parcelamento de fatura")
            metadata["otherCreditsType"] = "BILL_INSTALLMENT"
    created = iso_z(created_at)
    tx: dict[str, Any] = {
        "id": entry.pending_id if pending else entry.id,
        "accountId": account_id,
        "date": iso_z(entry.when),
        "description": entry.description,
        "descriptionRaw": entry.description_raw,
        "currencyCode": "BRL",
        "amount": round(sign * amount, 2),
        "amountInAccountCurrency": None,
        "balance": round(sign * entry.balance, 2),
        "category": PLUGGY_CATEGORIES.get(category, PLUGGY_CATEGORIES["99999999"])[0],
        "categoryId": category,
        "type": "DEBIT" if amount < 0 else "CREDIT",
        "status": "PENDING" if pending else "POSTED",
        "providerCode": entry.provider_code,
        "providerId": None,
        "operationType": entry.operation,
        "operationTypeAdditionalInfo": None,
        "order": entry.order,
        "paymentData": _payment_data(entry, amount),
        "merchant": pluggy_merchant(entry.merchant) if entry.merchant else None,
        "creditCardMetadata": metadata,
        "createdAt": created,
        "updatedAt": iso_z(updated_at) if updated_at else created,
    }
    if entry.foreign is not None:
        tx["currencyCode"] = entry.foreign[0]
        tx["amountInAccountCurrency"] = tx["amount"]
        tx["amount"] = round(sign * entry.foreign[1], 2)
    return tx


@dataclass(frozen=True, slots=True)
class _Template:
    """One kind of row for the bulk generator, with everything that does not vary prebuilt."""

    description: str
    category_id: str
    category: str
    low: float
    high: float
    sign: float
    operation: str | None
    merchant: dict[str, Any] | None
    payment: dict[str, Any] | None


def _merchant_template(merchant: Merchant, low: float, high: float, prefix: str = "") -> _Template:
    return _Template(prefix + merchant.descriptor, merchant.category_id, PLUGGY_CATEGORIES[merchant.category_id][0],
                     low, high, -1.0, "CARTAO" if prefix else None, pluggy_merchant(merchant), None)


def _pix_template(person: Party, sign: float) -> _Template:
    verb = "ENVIADO" if sign < 0 else "RECEBIDO"
    payer, receiver = (HOLDER, person) if sign < 0 else (person, HOLDER)
    payment = {"payer": _participant(payer), "receiver": _participant(receiver), "reason": None,
               "paymentMethod": "PIX", "referenceNumber": None, "receiverReferenceId": None, "boletoMetadata": None}
    return _Template(f"PIX {verb} {person.name.upper()}", "05070000", "Transfer - PIX", 10, 400, sign, "PIX", None,
                     payment)


def _plain_template(description: str, category_id: str, low: float, high: float, sign: float,
                    operation: str | None) -> _Template:
    return _Template(description, category_id, PLUGGY_CATEGORIES[category_id][0], low, high, sign, operation, None,
                     None)


_BULK_TEMPLATES: dict[str, tuple[_Template, ...]] = {
    "checking": (
        *(_merchant_template(m, 8, 250, "COMPRA CARTAO DEBITO ") for m in DEBIT_SHOPS for _ in range(4)),
        *(_pix_template(p, -1.0) for p in PEOPLE for _ in range(2)),
        *(_pix_template(p, 1.0) for p in PEOPLE[:4]),
        _plain_template("SALARIO ACME LTDA", "01010000", 2500, 4000, 1.0, "FOLHA_PAGAMENTO"),
        _plain_template("PAG BOLETO IMOBILIARIA LAR PAULISTA", "17010000", 600, 900, -1.0, "BOLETO"),
        _plain_template("DEB AUTOMATICO ENEL SP", "17020002", 60, 160, -1.0, "CONVENIO_ARRECADACAO"),
        _plain_template("PAGAMENTO FATURA CARTAO", "05100000", 400, 1200, -1.0, "OUTROS"),
        _plain_template("TARIFA PACOTE SERVICOS", "16010000", 10, 35, -1.0, "PACOTE_TARIFA_SERVICOS"),
        _plain_template("TRANSF ENTRE CONTAS PROPRIAS", "04000000", 100, 900, 1.0,
                        "TRANSFERENCIA_MESMA_INSTITUICAO"),
    ),
    "card": (
        *(_merchant_template(IFOOD, 28, 110) for _ in range(6)),
        *(_merchant_template(m, 9, 65) for m in RIDES for _ in range(3)),
        *(_merchant_template(m, 80, 480) for m in GROCERIES),
        *(_merchant_template(m, 60, 320) for m in RESTAURANTS),
        *(_merchant_template(m, 120, 320) for m in GAS_STATIONS),
        *(_merchant_template(m, 60, 900) for m in SHOPS),
        _merchant_template(PHARMACIES[0], 15, 180),
        _merchant_template(NETFLIX, 44.9, 44.9),
        _merchant_template(SPOTIFY, 21.9, 21.9),
        _merchant_template(METRO, 5.2, 5.2),
        _plain_template("PAGAMENTO RECEBIDO - OBRIGADO", "05100000", 300, 1500, 1.0, None),
    ),
}


def _timestamp(moment: date | datetime) -> float:
    if isinstance(moment, datetime):
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return datetime.combine(moment, time(0), SAO_PAULO).timestamp()


def generate_transactions(seed: int, account_id: str, account_kind: str, start: date | datetime,
                          end: date | datetime, per_month: int, *,
                          card_sign: str = "purchase_positive") -> Iterator[dict[str, Any]]:
    """Many Pluggy-shaped, posted transactions of one account, fast, in date order (for benchmarks and load tests).

    Unlike `brazilian_ledger` there is no calendar, pending churn or bill logic: rows are drawn from the same
    merchants and counterparties, `per_month` per 30.4 days between `start` (inclusive) and `end` (exclusive),
    deterministically from (seed, account_id, account_kind). account_kind: "checking" or "card". Nested objects
    (merchant, paymentData) may be shared between rows: treat rows as read-only.
    """
    templates = _BULK_TEMPLATES.get(account_kind)
    if templates is None:
        raise ValueError(f"account_kind must be 'checking' or 'card', not {account_kind!r}")
    first, last = _timestamp(start), _timestamp(end)
    rng = Random(f"bulk/{seed}/{account_id}/{account_kind}")
    random, bits, choices = rng.random, rng.getrandbits, len(templates)
    card = account_kind == "card"
    sign = -1.0 if card and card_sign == "purchase_positive" else 1.0
    balance = 0.0 if card else 5000.0
    metadata = {"cardNumber": CARD_LAST4} if card else None
    fmt = "%Y-%m-%dT%H:%M:%S.000Z"
    per_day, carry = per_month / 30.4375, 0.0
    midnight = datetime.fromtimestamp(first, SAO_PAULO).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    while midnight < last:
        carry += per_day
        count = int(carry)
        carry -= count
        dated_only = sum(random() < 0.6 for _ in range(count))  # most rows carry only the day (03:00Z)
        moments = [midnight] * dated_only + sorted(midnight + random() * 86400 for _ in range(count - dated_only))
        for order, moment in enumerate(moments):
            if not first <= moment < last:
                continue
            template = templates[int(random() * choices)]
            amount = round(template.sign * (template.low + (template.high - template.low) * random()), 2)
            balance = round(balance + amount, 2)
            created = _strftime(fmt, _gmtime(moment + 21600))
            yield {
                "id": str(uuid.UUID(int=bits(128), version=4)),
                "accountId": account_id,
                "date": _strftime(fmt, _gmtime(moment)),
                "description": template.description,
                "descriptionRaw": template.description,
                "currencyCode": "BRL",
                "amount": sign * amount,
                "amountInAccountCurrency": None,
                "balance": sign * balance,
                "category": template.category,
                "categoryId": template.category_id,
                "type": "DEBIT" if amount < 0 else "CREDIT",
                "status": "POSTED",
                "providerCode": None,
                "providerId": None,
                "operationType": template.operation,
                "operationTypeAdditionalInfo": None,
                "order": order,
                "paymentData": template.payment,
                "merchant": template.merchant,
                "creditCardMetadata": metadata,
                "createdAt": created,
                "updatedAt": created,
            }
        midnight += 86400


VARIANT_SHARE = 0.12
"""How often each real-world variant shows up on a row (seeded per row)."""


def real_world_variants(tx: dict[str, Any], seed: int, *, open_finance: bool) -> dict[str, Any]:
    """`tx` with the variants real Pluggy answers have and the SDK types allow (reference/pluggy.md §5.2):
    `acquirerData: null`, `providerId` as a string (always on Open Finance connectors), a null running `balance`,
    and `billId`, `purchaseDate` and `merchant.category` absent rather than null. Chosen per row from `seed`, so a
    row looks the same on every read."""
    rng = Random(f"{seed}/{tx['id']}/variants")
    rolls = [rng.random() for _ in range(6)]
    if rolls[0] < VARIANT_SHARE:
        tx["acquirerData"] = None
    if open_finance or rolls[1] < VARIANT_SHARE:
        tx["providerId"] = f"{rng.getrandbits(64):016X}"
    if rolls[2] < VARIANT_SHARE:
        tx["balance"] = None
    metadata = tx.get("creditCardMetadata")
    if metadata is not None:
        if metadata.get("billId") is None and rolls[3] < 0.5:
            del metadata["billId"]
        if rolls[4] < VARIANT_SHARE:
            del metadata["purchaseDate"]
    merchant = tx.get("merchant")
    if merchant is not None and rolls[5] < VARIANT_SHARE:
        tx["merchant"] = {k: v for k, v in merchant.items() if k != "category"}
    return tx
