"""The US household the Plaid emulator serves: USD payroll, rent, cards and loans, categorized with Plaid's personal
finance categories, and a scripted profile that replays given rows (Plaid's custom sandbox users).

Built on the generic ledger machinery of `finance.sandbox.ledger` (entries, day-by-day ledgers, pending→posted views).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

from finance.sandbox.ledger import (
    AccountSpec,
    Entry,
    Ledger,
    Merchant,
    Party,
    add_months,
    business_day,
    cached_ledger,
    stable_uuid,
)

HISTORY_MONTHS = 13
"""How many months of history before the item's creation month a household has."""


NEW_YORK = ZoneInfo("America/New_York")
US_CARD_LAST4 = "3333"
US_ACCOUNT_KINDS = ("checking", "savings", "cd", "card", "money_market", "ira", "401k", "student", "mortgage",
                    "brokerage", "installment")
"""The account kinds a `UsHousehold` can hold (Plaid's sandbox `user_good` has all of them)."""
INSTALLMENT_TERM = 36
"""Months of the household's installment (personal) loan, repaid in equal monthly payments."""
INSTALLMENT_RATE = 0.0899
"""The installment loan's fixed annual rate."""
PFC_PRIMARIES = (
    "INCOME", "TRANSFER_IN", "TRANSFER_OUT", "LOAN_PAYMENTS", "LOAN_DISBURSEMENTS", "BANK_FEES", "ENTERTAINMENT",
    "FOOD_AND_DRINK", "GENERAL_MERCHANDISE", "HOME_IMPROVEMENT", "MEDICAL", "PERSONAL_CARE", "GENERAL_SERVICES",
    "GOVERNMENT_AND_NON_PROFIT", "TRANSPORTATION", "TRAVEL", "RENT_AND_UTILITIES", "OTHER",
)
"""Plaid's personal finance category primaries (v1 and v2); a detailed category is its primary plus a suffix."""


def pfc_primary(detailed: str) -> str:
    """The primary personal finance category of a detailed one (FOOD_AND_DRINK_GROCERIES → FOOD_AND_DRINK)."""
    for primary in PFC_PRIMARIES:
        if detailed.startswith(primary + "_"):
            return primary
    raise ValueError(f"Not a personal finance category: {detailed!r}")


@dataclass(frozen=True, slots=True)
class UsMerchant(Merchant):
    """A US merchant: `category_id` is Plaid's detailed personal finance category, `channel` the payment channel
    ("in store", "online" or "other"), `kind` the counterparty type, `location` (address, city, region, zip)."""

    website: str | None = None
    channel: str = "in store"
    kind: str = "merchant"
    location: tuple[str, str, str, str] | None = None


def _annuity(principal: float, rate: float, months: int) -> float:
    """The level monthly payment that repays `principal` at annual `rate` in `months` payments."""
    monthly = rate / 12
    return principal * monthly / (1 - (1 + monthly) ** -months)


def _ein(text: str) -> str:
    """A made-up employer identification number, stable per `text`."""
    digits = f"{uuid.UUID(stable_uuid(text)).int % 10**9:09d}"
    return f"{digits[:2]}-{digits[2:]}"


def _us(name: str, business: str, naics: str, category: str, descriptor: str, mcc: int, website: str | None,
        **extra: Any) -> UsMerchant:
    return UsMerchant(name, business, _ein(business), naics, category, descriptor, mcc, website, **extra)


WHOLE_FOODS = _us("Whole Foods", "WHOLE FOODS MARKET INC", "445110", "FOOD_AND_DRINK_GROCERIES", "WHOLEFDS BKN 10234",
                  5411, "wholefoodsmarket.com", location=("214 3rd St", "Brooklyn", "NY", "11215"))
TRADER_JOES = _us("Trader Joe's", "TRADER JOE'S COMPANY", "445110", "FOOD_AND_DRINK_GROCERIES", "TRADER JOE S #558",
                  5411, "traderjoes.com", location=("142 E 14th St", "New York", "NY", "10003"))
US_GROCERIES = (WHOLE_FOODS, TRADER_JOES)
SIT_DOWN = (
    _us("The Smith", "THE SMITH RESTAURANT LLC", "722511", "FOOD_AND_DRINK_RESTAURANT", "THE SMITH EAST VILLAGE",
        5812, "thesmithrestaurant.com", location=("55 3rd Ave", "New York", "NY", "10003")),
    _us("Balthazar", "BALTHAZAR RESTAURANT LLC", "722511", "FOOD_AND_DRINK_RESTAURANT", "BALTHAZAR RESTAURANT",
        5812, "balthazarny.com", location=("80 Spring St", "New York", "NY", "10012")),
)
QUICK_FOOD = (
    _us("Sweetgreen", "SWEETGREEN INC", "722513", "FOOD_AND_DRINK_RESTAURANT", "SWEETGREEN BROADWAY", 5814,
        "sweetgreen.com", location=("1164 Broadway", "New York", "NY", "10001")),
    _us("Shake Shack", "SHAKE SHACK INC", "722513", "FOOD_AND_DRINK_FAST_FOOD", "SHAKE SHACK #1 MADISON SQ", 5814,
        "shakeshack.com", location=("Madison Square Park", "New York", "NY", "10010")),
    _us("Joe's Pizza", "JOES PIZZA BROADWAY INC", "722513", "FOOD_AND_DRINK_FAST_FOOD", "JOES PIZZA BROADWAY", 5814,
        None, location=("1435 Broadway", "New York", "NY", "10018")),
)
DOORDASH = _us("DoorDash", "DOORDASH INC", "492210", "FOOD_AND_DRINK_RESTAURANT", "DD *DOORDASH SWEETGREEN", 5812,
               "doordash.com", channel="online", kind="marketplace")
STARBUCKS = _us("Starbucks", "STARBUCKS CORPORATION", "722515", "FOOD_AND_DRINK_COFFEE", "STARBUCKS STORE 11823",
                5814, "starbucks.com", location=("1585 Broadway", "New York", "NY", "10036"))
UBER = _us("Uber", "UBER TECHNOLOGIES INC", "485310", "TRANSPORTATION_TAXIS_AND_RIDE_SHARES",
           "UBER *TRIP HELP.UBER.COM", 4121, "uber.com", channel="online")
MTA = _us("MTA", "METROPOLITAN TRANSPORTATION AUTHORITY", "485111", "TRANSPORTATION_PUBLIC_TRANSIT", "MTA*NYCT PAYGO",
          4111, "mta.info", location=("2 Broadway", "New York", "NY", "10004"))
AMAZON = _us("Amazon", "AMAZON.COM SERVICES LLC", "454110", "GENERAL_MERCHANDISE_ONLINE_MARKETPLACES",
             "AMAZON MKTPL*2K4TX9", 5942, "amazon.com", channel="online", kind="marketplace")
TARGET = _us("Target", "TARGET CORPORATION", "452210", "GENERAL_MERCHANDISE_SUPERSTORES", "TARGET 00012345", 5310,
             "target.com", location=("255 Greenwich St", "New York", "NY", "10007"))
CVS = _us("CVS Pharmacy", "CVS PHARMACY INC", "446110", "MEDICAL_PHARMACIES_AND_SUPPLEMENTS", "CVS/PHARMACY #02912",
          5912, "cvs.com", location=("630 Lexington Ave", "New York", "NY", "10022"))
NETFLIX_US = _us("Netflix", "NETFLIX INC", "516210", "ENTERTAINMENT_TV_AND_MOVIES", "NETFLIX.COM", 4899,
                 "netflix.com", channel="online")
SPOTIFY_US = _us("Spotify", "SPOTIFY USA INC", "516210", "ENTERTAINMENT_MUSIC_AND_AUDIO", "SPOTIFY USA", 5815,
                 "spotify.com", channel="online")
PLANET_FITNESS = _us("Planet Fitness", "PLANET FITNESS INC", "713940", "PERSONAL_CARE_GYMS_AND_FITNESS_CENTERS",
                     "PLANET FITNESS CLUB FEES", 7997, "planetfitness.com", channel="online")
T_MOBILE = _us("T-Mobile", "T-MOBILE USA INC", "517312", "RENT_AND_UTILITIES_TELEPHONE", "T-MOBILE AUTOPAY", 4814,
               "t-mobile.com", channel="online")
CON_EDISON = _us("Con Edison", "CONSOLIDATED EDISON CO OF NY", "221122", "RENT_AND_UTILITIES_GAS_AND_ELECTRICITY",
                 "CON ED OF NY INTELL CK", 4900, "coned.com", channel="other")
VERIZON = _us("Verizon", "VERIZON COMMUNICATIONS INC", "517111", "RENT_AND_UTILITIES_INTERNET_AND_CABLE",
              "VERIZON FIOS PAYMENT", 4899, "verizon.com", channel="other")
AVALON = _us("AvalonBay Communities", "AVALONBAY COMMUNITIES INC", "531110", "RENT_AND_UTILITIES_RENT",
             "AVALONBAY RENT PAYMENT", 6513, "avaloncommunities.com", channel="online")
VENMO = _us("Venmo", "PAYPAL INC", "522320", "TRANSFER_OUT_ACCOUNT_TRANSFER", "VENMO PAYMENT", 4829, "venmo.com",
            channel="online", kind="payment_app")
US_EMPLOYER = Party("Acme Corp")
WIRE_SENDER = Party("Barclays Bank UK", bank_code="BUKBGB22", branch="202015", account="55555555")
"""Who sends the occasional international wire (a relative in London): UK account number and sort code (BACS), and
the bank's BIC, as Plaid reports them. (No IBAN: plaid-python 46.0.0 cannot read a non-null `iban`, a generator bug
on the nullable string it declares as a composed schema.)"""
US_FRIENDS = ("ALEX KIM", "PRIYA SHAH", "SAM JOHNSON", "MARIA GARCIA")


class UsHousehold:
    """A salaried New York household in USD, with the accounts named by `accounts` (kinds of `US_ACCOUNT_KINDS`).

    Entry fields as the Plaid emulator reads them: `category_id` is the detailed personal finance category, `method`
    the payment channel, `operation` the transaction code, `description` Plaid's `name` and `description_raw` the
    original description; amounts are signed from the user's side as everywhere in this module.

    Checking: biweekly payroll (Fridays), rent on the first business day, Con Edison and Verizon by ACH, the student
    loan payment, the card's statement balance on the 25th, a monthly transfer to savings, Starbucks and subway fares by
    debit card (some pending a day), Venmo and Zelle, ATM withdrawals with their fee, and sweeps to or from savings
    that keep the balance sensible. Card: Netflix, Spotify, T-Mobile and the gym every month, groceries (Whole Foods,
    Trader Joe's), restaurants (sit-down ones post with a tip), Uber (sometimes tipped), DoorDash, Amazon, Target and
    refunds; card purchases stay pending 1–5 days. Savings, CD and money market earn monthly interest; the student loan
    accrues interest; the IRA, 401k, brokerage and mortgage move monthly (their rows are not transactions Plaid syncs).
    Checking also pays a monthly deposit into the brokerage account and the installment loan's level payment, and
    now and then receives an international wire (the sender's UK account number, sort code and BIC known).
    `dynamic` (Plaid's `user_transactions_dynamic`): more purchases, every one pending for 1–2 days first.
    """

    def __init__(self, seed: int, item_id: str, created_at: datetime, *,
                 accounts: tuple[str, ...] = ("checking", "savings", "card"), dynamic: bool = False) -> None:
        if "checking" not in accounts or len(set(accounts)) != len(accounts) or set(accounts) - set(US_ACCOUNT_KINDS):
            raise ValueError(f"Invalid account kinds {accounts!r}")
        self._key = f"us/{seed}/{item_id}"
        self.start = add_months(created_at.astimezone(NEW_YORK).date().replace(day=1), -HISTORY_MONTHS)
        self.dynamic = dynamic
        rng = Random(f"{self._key}/setup")
        opening = {"checking": rng.uniform(2500, 6000), "savings": rng.uniform(8000, 20000), "cd": 5000.0,
                   "card": -rng.uniform(200, 900), "money_market": rng.uniform(15000, 40000),
                   "ira": rng.uniform(20000, 60000), "401k": rng.uniform(40000, 120000),
                   "student": -rng.uniform(18000, 35000), "mortgage": -rng.uniform(240000, 380000)}
        later = Random(f"{self._key}/setup/2026")  # kinds added later draw apart: the others' data stays as it was
        self.installment_principal = round(later.uniform(6000, 12000), -2)
        self.installment_payment = round(_annuity(self.installment_principal, INSTALLMENT_RATE, INSTALLMENT_TERM), 2)
        self.brokerage_deposit = 50.0 * later.randint(4, 10)
        opening.update(brokerage=later.uniform(15000, 45000), installment=-self.installment_principal)
        self.accounts = tuple(AccountSpec(kind, i, round(opening[kind], 2)) for i, kind in enumerate(accounts))
        self._index = {kind: i for i, kind in enumerate(accounts)}
        self.salary = round(rng.uniform(85000, 120000), -3)
        self.paycheck = round(self.salary * 0.72 / 26, 2)
        self.rent = round(rng.uniform(1900, 2600), -1)
        self.student_payment = round(rng.uniform(250, 400), 2)
        self.savings_transfer = 100.0 * rng.randint(3, 6)
        self._payday = self.start + timedelta(days=(4 - self.start.weekday()) % 7 + 7 * rng.randint(0, 1))
        self._statements: dict[tuple[int, int], float] = {}

    def account(self, kind: str) -> int | None:
        """The index of the account of `kind`, if the household has one."""
        return self._index.get(kind)

    @staticmethod
    def _at(day: date, minutes: int) -> datetime:
        return datetime.combine(day, time(minutes // 60, minutes % 60), NEW_YORK)

    def _posted(self, account: int, day: date, amount: float, description: str, category: str, kind: str,
                rng: Random, *, channel: str = "other", code: str | None = None, raw: str | None = None,
                merchant: UsMerchant | None = None, counterparty: Party | None = None) -> Entry:
        """A row dated `day` (no time of day) that shows up posted during that day."""
        return Entry(account, self._at(day, 0), round(amount, 2), description, category, kind,
                     description_raw=raw or description, merchant=merchant, method=channel, operation=code,
                     counterparty=counterparty, lag=timedelta(minutes=rng.randint(330, 1260)))

    def _purchase(self, account: int, day: date, merchant: UsMerchant, amount: float, rng: Random, *,
                  pending_days: tuple[int, int], pending_share: float = 1.0, tip: float = 0.0,
                  evening: bool = False) -> Entry:
        """A card purchase (debit card on checking) at a known time, often pending first; a tip raises the posted
        amount."""
        minutes = rng.randint(18 * 60, 23 * 60 + 30) if evening else rng.randint(7 * 60, 22 * 60)
        pends = self.dynamic or rng.random() < pending_share
        low, high = (1, 2) if self.dynamic else pending_days
        pending_for = timedelta(days=rng.randint(low, high), hours=rng.randint(4, 10)) if pends else None
        posted = round(amount * (1 + tip), 2) if tip and pends else None
        where = f" {merchant.location[1].upper()} {merchant.location[2]}" if merchant.location else ""
        debit = account != self.account("card")
        return Entry(account, self._at(day, minutes), -round(amount, 2), merchant.descriptor, merchant.category_id,
                     "debit_card" if debit else "purchase", exact_time=True,
                     description_raw=("POS DEBIT " if debit else "") + merchant.descriptor + where,
                     merchant=merchant, method=merchant.channel, operation="purchase",
                     lag=timedelta(minutes=rng.randint(1, 30)), pending_for=pending_for,
                     posted_amount=-posted if posted is not None else None)

    def day(self, day: date, ledger: Ledger) -> list[Entry]:
        """Every entry dated `day`."""
        rng = Random(f"{self._key}/{day.isoformat()}")
        month_rng = Random(f"{self._key}/month/{day.year}-{day.month:02d}")
        out: list[Entry] = []
        card = self.account("card")
        if card is not None and day.day == 6:  # the statement closed yesterday
            self._statements[(day.year, day.month)] = round(-ledger.balances[card], 2)
        self._checking_calendar(day, month_rng, rng, out)
        self._checking_daily(day, rng, out)
        if card is not None:
            self._card_calendar(card, day, rng, out)
            self._card_daily(card, day, rng, out)
        self._other_accounts(day, rng, out, ledger)
        self._sweep(day, out, ledger)
        return out

    def _checking_calendar(self, day: date, month_rng: Random, rng: Random, out: list[Entry]) -> None:
        first = business_day(date(day.year, day.month, 1))
        if day >= self._payday and (day - self._payday).days % 14 == 0:
            out.append(self._posted(0, day, self.paycheck, "ACME CORP PAYROLL", "INCOME_WAGES", "payroll", rng,
                                    raw="ACME CORP DES:PAYROLL ID:XXXXX4821 INDN:JANE DOE CO ID:XXXXX12345 PPD",
                                    counterparty=US_EMPLOYER))
            k401 = self.account("401k")
            if k401 is not None:
                out.append(self._posted(k401, day, round(self.salary * 0.06 / 26, 2), "EMPLOYEE CONTRIBUTION",
                                        "TRANSFER_IN_INVESTMENT_AND_RETIREMENT_FUNDS", "contribution", rng))
        if day == first:
            out.append(self._posted(0, day, -self.rent, AVALON.descriptor, AVALON.category_id, "rent", rng,
                                    channel="online", code="bill payment", merchant=AVALON,
                                    raw="AVALONBAY COMM DES:WEB PMTS ID:XXXXX7731 INDN:JANE DOE"))
        if day == business_day(date(day.year, day.month, 12)):
            out.append(self._posted(0, day, -round(month_rng.uniform(55, 140), 2), CON_EDISON.descriptor,
                                    CON_EDISON.category_id, "utility", rng, code="bill payment", merchant=CON_EDISON))
        if day == business_day(date(day.year, day.month, 20)):
            out.append(self._posted(0, day, -79.99, VERIZON.descriptor, VERIZON.category_id, "utility", rng,
                                    code="bill payment", merchant=VERIZON))
        if day == business_day(date(day.year, day.month, 15)):
            out.append(self._posted(0, day, -self.student_payment, "DEPT EDUCATION STUDENT LN",
                                    "LOAN_PAYMENTS_STUDENT_LOAN_PAYMENT", "loan_payment", rng, code="bill payment",
                                    raw="DEPT EDUCATION DES:STUDENT LN ID:XXXXX0042 INDN:JANE DOE PPD"))
            student = self.account("student")
            if student is not None:
                out.append(self._posted(student, day, self.student_payment, "PAYMENT RECEIVED - THANK YOU",
                                        "LOAN_PAYMENTS_STUDENT_LOAN_PAYMENT", "loan_payment", rng, code="payment"))
        self._loans_and_investing(day, rng, out)
        savings = self.account("savings")
        if savings is not None and day == business_day(date(day.year, day.month, 2)):
            out.append(self._posted(0, day, -self.savings_transfer, "ONLINE TRANSFER TO SAV XXXXXX1111",
                                    "TRANSFER_OUT_SAVINGS", "transfer", rng, channel="online", code="transfer"))
            out.append(self._posted(savings, day, self.savings_transfer, "ONLINE TRANSFER FROM CHK XXXXXX0000",
                                    "TRANSFER_IN_SAVINGS", "transfer", rng, channel="online", code="transfer"))
        card = self.account("card")
        statement = self._statements.get((day.year, day.month), 0.0)
        if card is not None and statement > 0 and day == business_day(date(day.year, day.month, 25)):
            out.append(self._posted(0, day, -statement, f"CREDIT CARD {US_CARD_LAST4} PAYMENT",
                                    "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT", "card_payment", rng, code="bill payment",
                                    raw=f"ONLINE PAYMENT TO CREDIT CARD XXXXXXXXXXXX{US_CARD_LAST4}"))
            out.append(self._posted(card, day, statement, "PAYMENT - THANK YOU", "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT",
                                    "card_payment", rng, code="payment"))

    def _loans_and_investing(self, day: date, rng: Random, out: list[Entry]) -> None:
        """The monthly deposit into the brokerage account and the installment loan's payment, both from checking."""
        brokerage = self.account("brokerage")
        if brokerage is not None and day == business_day(date(day.year, day.month, 3)):
            out.append(self._posted(0, day, -self.brokerage_deposit, "ONLINE TRANSFER TO BROKERAGE XXXXXX9999",
                                    "TRANSFER_OUT_INVESTMENT_AND_RETIREMENT_FUNDS", "transfer", rng, channel="online",
                                    code="transfer"))
            out.append(self._posted(brokerage, day, self.brokerage_deposit, "AUTOMATIC INVESTMENT DEPOSIT",
                                    "TRANSFER_IN_INVESTMENT_AND_RETIREMENT_FUNDS", "contribution", rng))
        installment = self.account("installment")
        if installment is not None and day == business_day(date(day.year, day.month, 10)):
            out.append(self._posted(0, day, -self.installment_payment, "PLAID LENDING LOAN PMT",
                                    "LOAN_PAYMENTS_PERSONAL_LOAN_PAYMENT", "loan_payment", rng, code="bill payment",
                                    raw="PLAID LENDING DES:LOAN PMT ID:XXXXX3141 INDN:JANE DOE PPD"))
            out.append(self._posted(installment, day, self.installment_payment, "PAYMENT RECEIVED - THANK YOU",
                                    "LOAN_PAYMENTS_PERSONAL_LOAN_PAYMENT", "loan_payment", rng, code="payment"))
        wire = Random(f"{self._key}/wire/{day.isoformat()}")  # apart from the day's draws, which stay as they were
        if wire.random() < 0.012:
            out.append(self._posted(0, day, round(wire.uniform(200, 1500), 2), "WIRE TRANSFER IN BARCLAYS LONDON",
                                    "TRANSFER_IN_ACCOUNT_TRANSFER", "wire", wire, channel="other", code="transfer",
                                    raw="INCOMING WIRE ORIG:ELLEN DOE BNF:JANE DOE REF:FAMILY",
                                    counterparty=WIRE_SENDER))

    def _checking_daily(self, day: date, rng: Random, out: list[Entry]) -> None:
        if rng.random() < (0.8 if self.dynamic else 0.35):
            out.append(self._purchase(0, day, STARBUCKS, rng.uniform(4.5, 9.5), rng, pending_days=(1, 1),
                                      pending_share=0.5, tip=0.15 if self.dynamic else 0.0))
        if day.weekday() < 5 and rng.random() < 0.6:
            for _ in range(2):  # two identical, legitimate fares: both must survive any dedupe
                out.append(self._purchase(0, day, MTA, 2.90, rng, pending_days=(1, 1), pending_share=0.3))
        if rng.random() < 0.05:
            out.append(self._purchase(0, day, CVS, rng.uniform(8, 60), rng, pending_days=(1, 2), pending_share=0.5))
        if rng.random() < 0.08:
            friend = rng.choice(US_FRIENDS)
            out.append(self._posted(0, day, -rng.uniform(10, 80), f"VENMO PAYMENT {friend}", VENMO.category_id,
                                    "p2p", rng, channel="online", code="transfer", merchant=VENMO,
                                    raw=f"VENMO DES:PAYMENT ID:XXXXX5521 INDN:{friend} WEB"))
        if rng.random() < 0.04:
            friend = rng.choice(US_FRIENDS)
            out.append(self._posted(0, day, rng.uniform(20, 150), f"ZELLE FROM {friend}",
                                    "TRANSFER_IN_ACCOUNT_TRANSFER", "p2p", rng, channel="online", code="transfer",
                                    raw=f"ZELLE PAYMENT FROM {friend} CONF# {rng.randint(10**8, 10**9 - 1)}"))
        if rng.random() < 0.02:
            out.append(self._posted(0, day, -20.0 * rng.randint(2, 10), "ATM WITHDRAWAL 1585 BROADWAY",
                                    "TRANSFER_OUT_WITHDRAWAL", "atm", rng, channel="in store", code="atm"))
            out.append(self._posted(0, day, -3.0, "NON-BANK ATM FEE", "BANK_FEES_ATM_FEES", "fee", rng,
                                    code="bank charge"))

    def _card_calendar(self, card: int, day: date, rng: Random, out: list[Entry]) -> None:
        for merchant, day_of_month, amount in ((NETFLIX_US, 7, 15.49), (T_MOBILE, 8, 70.0), (SPOTIFY_US, 12, 11.99),
                                               (PLANET_FITNESS, 17, 24.99)):
            if day.day == day_of_month:
                out.append(self._purchase(card, day, merchant, amount, rng, pending_days=(1, 2)))

    def _card_daily(self, card: int, day: date, rng: Random, out: list[Entry]) -> None:
        already = len(out)
        if rng.random() < 0.25:
            out.append(self._purchase(card, day, rng.choice(US_GROCERIES), rng.uniform(35, 180), rng,
                                      pending_days=(1, 4)))
        if rng.random() < 0.15:
            tip = rng.uniform(0.15, 0.22) if rng.random() < 0.8 else 0.0
            out.append(self._purchase(card, day, rng.choice(SIT_DOWN), rng.uniform(40, 140), rng,
                                      pending_days=(2, 5), tip=tip, evening=True))
        for _ in range(2 if self.dynamic else 1):
            if rng.random() < (0.5 if self.dynamic else 0.3):
                out.append(self._purchase(card, day, rng.choice(QUICK_FOOD), rng.uniform(11, 28), rng,
                                          pending_days=(1, 4)))
        if rng.random() < 0.3:
            tip = rng.uniform(0.1, 0.2) if rng.random() < 0.4 else 0.0
            out.append(self._purchase(card, day, UBER, rng.uniform(11, 48), rng, pending_days=(1, 4), tip=tip))
        if rng.random() < 0.1:
            out.append(self._purchase(card, day, DOORDASH, rng.uniform(22, 60), rng, pending_days=(1, 4),
                                      evening=True))
        if rng.random() < 0.15:
            out.append(self._purchase(card, day, AMAZON, rng.uniform(12, 150), rng, pending_days=(1, 4)))
        if rng.random() < 0.05:
            out.append(self._purchase(card, day, TARGET, rng.uniform(20, 140), rng, pending_days=(1, 4)))
        if rng.random() < 0.01:
            out.append(self._posted(card, day, rng.uniform(15, 80), "AMAZON MKTPL REFUND", AMAZON.category_id,
                                    "refund", rng, channel="online", code="refund", merchant=AMAZON))
        if not any(e.kind == "purchase" for e in out[already:]):
            # At least one card purchase a day, so a recent pending one always exists.
            out.append(self._purchase(card, day, UBER, rng.uniform(9, 25), rng, pending_days=(1, 4)))

    def _other_accounts(self, day: date, rng: Random, out: list[Entry], ledger: Ledger) -> None:
        """Interest, market moves and principal on the accounts besides checking and the card."""
        month_end = (day + timedelta(days=1)).day == 1
        for kind, rate, description in (("savings", 0.04, "INTEREST PAYMENT"), ("cd", 0.002, "CD INTEREST"),
                                        ("money_market", 0.0185, "INTEREST PAYMENT")):
            account = self.account(kind)
            if account is not None and month_end:
                balance = ledger.balances[account] + sum(e.amount for e in out if e.account == account)
                out.append(self._posted(account, day, balance * rate / 12, description, "INCOME_INTEREST_EARNED",
                                        "interest", rng, code="interest"))
        for kind in ("ira", "401k", "brokerage"):
            account = self.account(kind)
            if account is not None and month_end:
                change = ledger.balances[account] * rng.uniform(-0.03, 0.04)
                out.append(self._posted(account, day, change, "MARKET CHANGE", "OTHER_OTHER", "market", rng))
        installment = self.account("installment")
        if installment is not None and month_end and ledger.balances[installment] < 0:
            out.append(self._posted(installment, day, ledger.balances[installment] * INSTALLMENT_RATE / 12,
                                    "INTEREST CHARGED", "BANK_FEES_INTEREST_CHARGE", "interest", rng, code="interest"))
        student = self.account("student")
        if student is not None and month_end:
            out.append(self._posted(student, day, ledger.balances[student] * 0.055 / 12, "INTEREST CHARGED",
                                    "BANK_FEES_INTEREST_CHARGE", "interest", rng, code="interest"))
        mortgage = self.account("mortgage")
        if mortgage is not None and day.day == 1:
            out.append(self._posted(mortgage, day, rng.uniform(380, 460), "PRINCIPAL PAYMENT",
                                    "LOAN_PAYMENTS_MORTGAGE_PAYMENT", "principal", rng, code="payment"))

    def _sweep(self, day: date, out: list[Entry], ledger: Ledger) -> None:
        """Transfers between checking and savings that keep checking between ~$800 and ~$9,000."""
        savings = self.account("savings")
        if savings is None:
            return
        balance = ledger.balances[0] + sum(e.final_amount for e in out if e.account == 0)
        amount = 0.0
        if day.day == 16 and balance > 9000:
            amount = -100.0 * ((balance - 6000) // 100)
        elif balance < 800 and ledger.balances[savings] > 3000:
            amount = 100.0 * -((balance - 2500) // 100)
        if not amount:
            return
        rng = Random(f"{self._key}/sweep/{day.isoformat()}")
        to_savings = amount < 0
        transfers = [
            self._posted(0, day, amount, "ONLINE TRANSFER TO SAV XXXXXX1111" if to_savings
                         else "ONLINE TRANSFER FROM SAV XXXXXX1111",
                         "TRANSFER_OUT_SAVINGS" if to_savings else "TRANSFER_IN_ACCOUNT_TRANSFER", "transfer", rng,
                         channel="online", code="transfer"),
            self._posted(savings, day, -amount, "ONLINE TRANSFER FROM CHK XXXXXX0000" if to_savings
                         else "ONLINE TRANSFER TO CHK XXXXXX0000",
                         "TRANSFER_IN_SAVINGS" if to_savings else "TRANSFER_OUT_ACCOUNT_TRANSFER", "transfer", rng,
                         channel="online", code="transfer"),
        ]
        # Money moved in lands before the day's outflows; money moved out leaves after them.
        if amount > 0:
            out[:0] = transfers
        else:
            out.extend(transfers)


def us_ledger(seed: int, item_id: str, created_at: datetime, *,
              accounts: tuple[str, ...] = ("checking", "savings", "card"), dynamic: bool = False) -> Ledger:
    """The (cached) ledger of one US sandbox item; account i of the item is `ledger.entries[i]`."""
    key = ("usd", seed, item_id, created_at.isoformat(), tuple(accounts), dynamic)
    return cached_ledger(key, lambda: Ledger(f"us/{seed}/{item_id}", UsHousehold(
        seed, item_id, created_at, accounts=tuple(accounts), dynamic=dynamic)))


@dataclass(frozen=True, slots=True)
class ScriptedRow:
    """One given row: transacted (and pending) on `transacted`, posted on `posted`; `amount` signed from the user's
    side; `category_id` a detailed personal finance category."""

    account: int
    transacted: date
    posted: date
    amount: float
    description: str
    category_id: str


class ScriptedProfile:
    """A profile that replays given rows (a Plaid custom sandbox user's transactions) and nothing else.

    A row exists from local midnight of its transacted date and is pending until local midnight of its posted date.
    """

    def __init__(self, start: date, accounts: tuple[AccountSpec, ...], rows: tuple[ScriptedRow, ...]) -> None:
        self.start = min([start, *(row.transacted for row in rows)])
        self.accounts = accounts
        self._rows: dict[date, list[ScriptedRow]] = {}
        for row in rows:
            self._rows.setdefault(row.transacted, []).append(row)

    def day(self, day: date, ledger: Ledger) -> list[Entry]:
        """The given rows transacted on `day`."""
        midnight = datetime.combine(day, time(0), NEW_YORK)
        return [Entry(row.account, midnight, row.amount, row.description, row.category_id, "scripted",
                      description_raw=row.description, method="other", lag=timedelta(0),
                      pending_for=timedelta(days=(row.posted - row.transacted).days)
                      if row.posted > row.transacted else None)
                for row in self._rows.get(day, [])]
