"""The Brazilian household the Pluggy emulator serves: a salaried São Paulo household with checking account(s) and a
Mastercard in BRL (salary, PIX, boletos, direct debits, card bills in installments), categorized with Pluggy's taxonomy.

Built on the generic ledger machinery of `finance.sandbox.ledger` (entries, day-by-day ledgers, pending→posted views).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from random import Random
from typing import Any

from finance.sandbox.ledger import (
    AccountSpec,
    Entry,
    Installment,
    Ledger,
    Merchant,
    Party,
    add_months,
    business_day,
    cached_ledger,
    stable_uuid,
)

SAO_PAULO = timezone(timedelta(hours=-3), "America/Sao_Paulo")  # Brazil has had no daylight saving time since 2019
HISTORY_MONTHS = 13
CARD_CLOSE_DAY = 3
CARD_DUE_AFTER_CLOSE = timedelta(days=7)
CARD_LAST4 = "8670"


def _cnpj(text: str) -> str:
    """A made-up CNPJ (14 digits with valid check digits), stable per `text`."""
    base = [int(c) for c in f"{int(uuid.UUID(stable_uuid(text)).hex[:12], 16) % 10**8:08d}"] + [0, 0, 0, 1]
    for weights in ((5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2), (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)):
        rest = sum(d * w for d, w in zip(base, weights, strict=False)) % 11
        base.append(0 if rest < 2 else 11 - rest)
    return "".join(map(str, base))


def _formatted_cnpj(digits: str) -> str:
    return f"{digits[:2]}.{digits[2:5]}.{digits[5:8]}/{digits[8:12]}-{digits[12:]}"


def _merchant(name: str, business: str, cnae: str, category: str, descriptor: str, mcc: int) -> Merchant:
    return Merchant(name, business, _cnpj(business), cnae, category, descriptor, mcc)


def _company(name: str, bank: str, branch: str, account: str) -> Party:
    return Party(name, "CNPJ", _formatted_cnpj(_cnpj(name)), bank, branch, account)


HOLDER = Party("John Doe", "CPF", "416.799.495-00", "999", "0001", "12345-0")
EMPLOYER = _company("ACME LTDA", "341", "0912", "10442-1")
LANDLORD = _company("IMOBILIARIA LAR PAULISTA LTDA", "237", "3321", "0098812-4")
TELECOM = _company("TELEFONICA BRASIL S.A.", "001", "1897", "600112-9")
PEOPLE = (
    Party("Maria Oliveira Santos", "CPF", "***.482.917-**", "260", "0001", "8723451-2"),
    Party("João Pedro Almeida", "CPF", "***.193.604-**", "341", "1520", "33210-7"),
    Party("Ana Carolina Souza", "CPF", "***.770.215-**", "237", "0441", "0051876-3"),
    Party("Carlos Eduardo Lima", "CPF", "***.358.042-**", "001", "3011", "21877-X"),
    Party("Fernanda Costa Ribeiro", "CPF", "***.624.889-**", "077", "0001", "4410923-1"),
    Party("Lucas Martins Ferreira", "CPF", "***.905.371-**", "104", "2874", "00019822-6"),
    Party("Juliana Gomes Pereira", "CPF", "***.217.563-**", "336", "0001", "9012334-5"),
    Party("Diarista Rosa Aparecida", "CPF", "***.646.120-**", "104", "0611", "00044721-0"),
)

M = _merchant
GROCERIES = (
    M("Pão de Açúcar", "COMPANHIA BRASILEIRA DE DISTRIBUICAO", "4711302", "10000000", "PAO DE ACUCAR-0412", 5411),
    M("Carrefour", "CARREFOUR COMERCIO E INDUSTRIA LTDA", "4711301", "10000000", "CARREFOUR HIPER PINHEIROS", 5411),
    M("Assaí", "SENDAS DISTRIBUIDORA S/A", "4639701", "10000000", "ASSAI ATACADISTA LJ 27", 5411),
)
IFOOD = M("iFood", "IFOOD.COM AGENCIA DE RESTAURANTES ONLINE S.A.", "7490104", "11020000", "IFOOD *IFOOD", 5814)
RIDES = (
    M("Uber", "UBER DO BRASIL TECNOLOGIA LTDA.", "7490104", "19010000", "UBER *TRIP HELP.UBER.COM", 4121),
    M("99", "99 TECNOLOGIA LTDA", "7490104", "19010000", "99APP *99RIDES", 4121),
)
PHARMACIES = (M("Drogasil", "RAIA DROGASIL S/A", "4771701", "18020000", "DROGASIL 2231", 5912),)
GAS_STATIONS = (
    M("Posto Shell", "RAIZEN COMBUSTIVEIS S.A.", "4731800", "19050001", "POSTO SHELL SELECT REBOUCAS", 5541),
    M("Posto Ipiranga", "IPIRANGA PRODUTOS DE PETROLEO S.A.", "4731800", "19050001", "AUTO POSTO IPIRANGA", 5541),
)
RESTAURANTS = (
    M("Coco Bambu", "COCO BAMBU RESTAURANTES LTDA", "5611201", "11010000", "COCO BAMBU JK", 5812),
    M("Outback", "OUTBACK STEAKHOUSE RESTAURANTES BRASIL S.A.", "5611201", "11010000", "OUTBACK MORUMBI", 5812),
    M("Madero", "MADERO INDUSTRIA E COMERCIO S.A.", "5611201", "11010000", "MADERO CONTAINER", 5812),
    M("Bar do Juarez", "BAR E RESTAURANTE DO JUAREZ LTDA", "5611204", "11010000", "BAR DO JUAREZ MOEMA", 5813),
)
SHOPS = (
    M("Amazon", "AMAZON SERVICOS DE VAREJO DO BRASIL LTDA.", "4789099", "08010000", "AMAZON BR", 5999),
    M("Mercado Livre", "EBAZAR.COM.BR LTDA", "4789099", "08010000", "MERCADOLIVRE*MLIVRE", 5999),
    M("Magazine Luiza", "MAGAZINE LUIZA S/A", "4753900", "08020000", "MAGALU*MAGAZINELUIZA", 5732),
    M("Renner", "LOJAS RENNER S.A.", "4781400", "08040000", "LOJAS RENNER SHOP IBIRAPUERA", 5651),
)
NETFLIX = M("Netflix", "NETFLIX ENTRETENIMENTO BRASIL LTDA.", "5911100", "09020000", "NETFLIX.COM", 4899)
SPOTIFY = M("Spotify", "SPOTIFY BRASIL SERVICOS DE MUSICA LTDA.", "9001999", "09030000", "SPOTIFY", 5815)
METRO = M("Metrô SP", "COMPANHIA DO METROPOLITANO DE SAO PAULO", "4912402", "19020000", "METRO SP BILHETERIA", 4111)
FOREIGN_SHOPS = (
    M("OpenAI", "OPENAI LLC", "6201501", "09000000", "OPENAI *CHATGPT SUBSCR", 5817),
    M("Amazon US", "AMAZON.COM SERVICES LLC", "4789099", "08010000", "AMAZON.COM*MKTPL US", 5942),
    M("Steam", "VALVE CORPORATION", "5821200", "09010000", "STEAMGAMES.COM 4259522", 5816),
    M("Airbnb", "AIRBNB INC", "5590699", "12020000", "AIRBNB * HMK2Q9", 7011),
)
DEBIT_SHOPS = (
    M("Padaria Real", "PANIFICADORA REAL LTDA", "1091102", "11000000", "PADARIA REAL", 5462),
    M("Hortifruti", "HORTIFRUTI VILA MADALENA LTDA", "4724500", "10000000", "HORTIFRUTI VL MADALENA", 5411),
    GROCERIES[2],
    PHARMACIES[0],
)
del M

_PROVIDER_CODES = {
    "salary": "0153", "pix_out": "0470", "pix_in": "0471", "boleto": "0304", "debit_auto": "0402", "fee": "0701",
    "ted_out": "0210", "ted_in": "0211", "debit_card": "0500", "atm": "0611", "own_transfer": "0320",
    "bill_payment": "0330",
}


@dataclass(frozen=True, slots=True)
class _MonthPlan:
    """The fixed dates and amounts of one month."""

    salary_day: date
    fee_day: date
    rent_day: date
    electricity_day: date
    water_day: date
    internet_day: date
    sweep_day: date
    twin_day: date
    electricity: float
    water: float


def _nth_business_day(year: int, month: int, n: int) -> date:
    day, seen = date(year, month, 1), 0
    while True:
        if day.weekday() < 5:
            seen += 1
            if seen == n:
                return day
        day += timedelta(days=1)


def close_date_for(day: date) -> date:
    """The closing date of the card bill a purchase on `day` belongs to."""
    close = day.replace(day=CARD_CLOSE_DAY)
    return close if day <= close else add_months(close, 1)


def latest_close(cutoff: datetime) -> date:
    """The closing date of the card's latest closed bill as of `cutoff` (the bill closing today is still open)."""
    today = cutoff.astimezone(SAO_PAULO).date()
    close = close_date_for(today)
    return close if close < today else add_months(close, -1)


def due_date_for(close: date) -> date:
    """When the bill that closes on `close` is due."""
    return business_day(close + CARD_DUE_AFTER_CLOSE)


def bill_due_on(day: date) -> date | None:
    """The closing date of the bill due on `day`, if one is."""
    close = day.replace(day=CARD_CLOSE_DAY)
    for candidate in (close, add_months(close, -1)):
        if candidate < day and due_date_for(candidate) == day:
            return candidate
    return None


def bill_total(card_entries: list[Entry], close: date) -> float:
    """What the card bill closing on `close` asks for (positive when owed): the cycle's movements, payments excluded."""
    opened = add_months(close, -1)
    total = 0.0
    for entry in reversed(card_entries):
        entry_day = entry.when.date()
        if entry_day <= opened:
            break
        if entry_day <= close and entry.kind != "bill_payment":
            total += entry.final_amount
    return round(-total, 2)


def usd_brl_rate(day: date) -> float:
    """A smooth, made-up USD→BRL rate for `day`."""
    x = day.toordinal()
    return round(5.25 + 0.3 * math.sin(x / 45) + 0.08 * math.sin(x / 6.3), 4)


class _CardDays:
    """The household's card spending, day by day (mixed into `BrazilianHousehold`, which builds the entries)."""

    card: int | None
    planted_plan_day: date
    bill_plan_day: date
    _key: str

    def _card_calendar(self, day: date, plan: _MonthPlan, rng: Random, out: list[Entry]) -> None:
        card = self.card or 0
        if day.day == 7:
            out.append(self._purchase(card, day, NETFLIX, 44.90, rng, pending_days=2, exact_share=0))
        if day.day == 12:
            out.append(self._purchase(card, day, SPOTIFY, 21.90, rng, pending_days=2, exact_share=0))
        if day.day == 18:
            out.extend(self._foreign(day, FOREIGN_SHOPS[0], 20.0, rng))
        if day.day == 25:
            out.append(self._posted(card, self._midnight(day), -39.0, "ANUIDADE DIFERENCIADA", "16030000", "fee",
                                    rng, fee_type="ANNUAL_FEE", bill_id=self._bill_id(day)))
        if day == plan.twin_day:
            pending_days = rng.randint(2, 4)
            for _ in range(2):  # two identical, legitimate fares: both must survive any dedupe
                out.append(self._purchase(card, day, METRO, 5.20, rng, pending_days=pending_days, exact_share=0))

    def _foreign(self, day: date, merchant: Merchant, usd: float, rng: Random) -> list[Entry]:
        """A USD card purchase (amount in USD, BRL at the day's rate) and its IOF."""
        card = self.card or 0
        entry = self._purchase(card, day, merchant, round(usd * usd_brl_rate(day), 2), rng, pending_days=3,
                               exact_share=0.5)
        entry.foreign = ("USD", -round(usd, 2))
        iof = self._posted(card, self._midnight(day), -round(-entry.amount * 0.035, 2),
                           "IOF COMPRA INTERNACIONAL", "15020000", "iof", rng, bill_id=self._bill_id(day))
        return [entry, iof]

    def _card_daily(self, day: date, rng: Random, out: list[Entry], ledger: Ledger) -> None:
        card = self.card or 0
        already = len(out)
        if rng.random() < 0.30:
            out.append(self._purchase(card, day, IFOOD, rng.uniform(28, 110), rng, pending_days=rng.randint(2, 4),
                                      exact_share=0.45, evening=True))
        if rng.random() < 0.35:
            merchant = RIDES[0] if rng.random() < 0.7 else RIDES[1]
            out.append(self._purchase(card, day, merchant, rng.uniform(9, 65), rng, pending_days=rng.randint(2, 4),
                                      exact_share=0.5))
        if rng.random() < 0.13:
            out.append(self._purchase(card, day, rng.choice(GROCERIES), rng.uniform(80, 480), rng,
                                      pending_days=rng.randint(2, 4)))
        if rng.random() < 0.15:
            tip = rng.uniform(0.10, 0.20) if rng.random() < 0.65 else 0.0
            out.append(self._purchase(card, day, rng.choice(RESTAURANTS), rng.uniform(50, 220), rng,
                                      pending_days=rng.randint(2, 4), tip=tip, exact_share=0.3, evening=True))
        if rng.random() < 0.10:
            out.append(self._purchase(card, day, rng.choice(GAS_STATIONS), rng.uniform(120, 320), rng,
                                      pending_days=rng.randint(2, 4)))
        if rng.random() < 0.07:
            out.append(self._purchase(card, day, PHARMACIES[0], rng.uniform(15, 180), rng,
                                      pending_days=rng.randint(2, 4)))
        if rng.random() < 0.07:
            self._shopping(day, rng, out, ledger)
        if day == self.planted_plan_day:  # every connection has a plan still being paid (its own random stream)
            self._shopping(day, Random(f"{self._key}/planted-plan"), out, ledger, parts=10)
        if day == self.bill_plan_day:
            self._bill_installments(day, Random(f"{self._key}/bill-plan"), out, ledger)
        if rng.random() < 0.025:
            merchant = FOREIGN_SHOPS[3] if rng.random() < 0.1 else rng.choice(FOREIGN_SHOPS[1:3])
            usd = rng.uniform(80, 400) if merchant.name == "Airbnb" else rng.uniform(5, 90)
            out.extend(self._foreign(day, merchant, usd, rng))
        if rng.random() < 0.015:
            merchant = rng.choice(SHOPS[:2])
            out.append(self._posted(card, self._midnight(day), rng.uniform(30, 250), f"ESTORNO {merchant.descriptor}",
                                    merchant.category_id, "refund", rng, merchant=merchant,
                                    bill_id=self._bill_id(day)))
        if not any(e.kind == "purchase" for e in out[already:]):
            # At least one card purchase a day, so a recent pending one always exists.
            out.append(self._purchase(card, day, RIDES[0], rng.uniform(9, 40), rng,
                                      pending_days=rng.randint(2, 4), exact_share=0.5))

    def _bill_installments(self, day: date, rng: Random, out: list[Entry], ledger: Ledger, parts: int = 6) -> None:
        """An earlier bill financed in `parts` monthly installments ("parcelamento de fatura"), one row per bill."""
        card = self.card or 0
        share = round(rng.uniform(250, 420), 2)
        purchase_day = self._midnight(day)
        for n in range(1, parts + 1):
            when_day = add_months(day, n - 1)
            description = f"PARCELAMENTO DE FATURA {n:02d}/{parts:02d}"
            entry = Entry(card, self._midnight(when_day), -share, description, "02000000", "bill_installment",
                          description_raw=description, installment=Installment(n, parts, -share * parts, purchase_day),
                          lag=timedelta(minutes=rng.randint(5 * 60, 9 * 60)), bill_id=self._bill_id(when_day))
            if n == 1:
                out.append(entry)
            else:
                ledger.schedule(entry)

    def _shopping(self, day: date, rng: Random, out: list[Entry], ledger: Ledger, *, parts: int | None = None) -> None:
        """A shop purchase; big ones are often split in installments, one row per month (`parts` forces a big one in
        that many)."""
        card = self.card or 0
        merchant = rng.choice(SHOPS)
        big = parts is not None or rng.random() < 0.15
        total = round(rng.uniform(800, 3000) if big else rng.uniform(40, 600), 2)
        if parts is None:
            parts = rng.choice((2, 3, 4, 5, 6, 10)) if total > 400 and rng.random() < 0.7 else 1
        first = self._purchase(card, day, merchant, total if parts == 1 else round(total / parts, 2), rng,
                               pending_days=rng.randint(2, 4))
        out.append(first)
        if parts == 1:
            return
        purchase_day = self._midnight(day)
        share = round(total / parts, 2)
        for n in range(1, parts + 1):
            amount = share if n < parts else round(total - share * (parts - 1), 2)
            installment = Installment(n, parts, -total, purchase_day)
            description = f"{merchant.descriptor} PARC {n:02d}/{parts:02d}"
            if n == 1:
                first.installment, first.description = installment, description
                continue
            when_day = add_months(day, n - 1)
            entry = Entry(card, self._midnight(when_day), -amount, description, merchant.category_id, "installment",
                          description_raw=description, merchant=merchant, installment=installment,
                          lag=timedelta(minutes=rng.randint(5 * 60, 9 * 60)), bill_id=self._bill_id(when_day))
            ledger.schedule(entry)


class BrazilianHousehold(_CardDays):
    """A salaried São Paulo household: checking account(s) and a Mastercard, in BRL.

    Per month on checking: salary (5th business day), rent by boleto, ENEL/SABESP by automatic debit, VIVO by boleto,
    the account fee, the card bill, many PIX transfers in and out, a TED now and then, debit-card purchases (some
    pending for a day), ATM withdrawals, and own-account transfers that keep the balance sensible. On the card:
    subscriptions, a USD subscription with its IOF, iFood (often late at night), rides, groceries, restaurants (whose
    posted amount adds a tip), fuel, pharmacy, shopping (some in installments), occasional USD purchases and refunds,
    and one pair of identical metro fares a month. Card purchases stay pending 2–4 days.
    """

    def __init__(self, seed: int, item_id: str, created_at: datetime, *, checking_accounts: int = 1,
                 card: bool = True) -> None:
        if checking_accounts < 1:
            raise ValueError("A household needs a checking account")
        self._key = f"{seed}/{item_id}"
        created_local = created_at.astimezone(SAO_PAULO).date()
        self.start = add_months(created_local.replace(day=1), -HISTORY_MONTHS)
        rng = Random(f"{self._key}/setup")
        specs = [AccountSpec("checking", 0, round(rng.uniform(3000, 7000), 2))]
        specs += [AccountSpec("checking", i, round(rng.uniform(800, 3000), 2)) for i in range(1, checking_accounts)]
        self.card = checking_accounts if card else None
        if card:
            specs.append(AccountSpec("card", checking_accounts, 0.0))
        self.accounts = tuple(specs)
        self.salary = round(rng.uniform(11800, 13200), 0)
        self.rent = round(rng.uniform(2400, 3200), 0)
        self._plans: dict[tuple[int, int], _MonthPlan] = {}
        # A purchase in 10 installments 5 to 10 weeks before connecting: the card always has a plan with months to go.
        self.planted_plan_day = created_local - timedelta(days=Random(f"{self._key}/planted").randint(35, 70))
        # A bill financed in six installments a few weeks before connecting: some paid, some still to come.
        self.bill_plan_day = close_date_for(created_local - timedelta(days=Random(f"{self._key}/bill").randint(40, 80)))

    # -- the calendar ------------------------------------------------------------------------------------------------

    def _plan(self, year: int, month: int) -> _MonthPlan:
        plan = self._plans.get((year, month))
        if plan is None:
            rng = Random(f"{self._key}/plan/{year}-{month:02d}")
            plan = self._plans[(year, month)] = _MonthPlan(
                salary_day=_nth_business_day(year, month, 5),
                fee_day=_nth_business_day(year, month, 2),
                rent_day=business_day(date(year, month, 15)),
                electricity_day=business_day(date(year, month, 12)),
                water_day=business_day(date(year, month, 18)),
                internet_day=business_day(date(year, month, 20)),
                sweep_day=business_day(date(year, month, 16)),
                twin_day=date(year, month, rng.randint(2, 27)),
                electricity=round(rng.uniform(120, 260), 2),
                water=round(rng.uniform(60, 140), 2),
            )
        return plan

    @staticmethod
    def _at(day: date, minutes: int) -> datetime:
        return datetime.combine(day, time(minutes // 60, minutes % 60), SAO_PAULO)

    @staticmethod
    def _midnight(day: date) -> datetime:
        return datetime.combine(day, time(0), SAO_PAULO)

    def _bill_id(self, day: date) -> str:
        return stable_uuid(self._key, "bill", close_date_for(day).isoformat())

    def bill_id_for_close(self, close: date) -> str:
        """The id of the card bill that closes on `close` (what the card's rows carry as `billId`)."""
        return self._bill_id(close)

    # -- one day -----------------------------------------------------------------------------------------------------

    def day(self, day: date, ledger: Ledger) -> list[Entry]:
        """Every entry dated `day` (installments after the first are scheduled on the ledger)."""
        rng = Random(f"{self._key}/{day.isoformat()}")
        plan = self._plan(day.year, day.month)
        out: list[Entry] = []
        self._checking_calendar(day, plan, rng, out, ledger)
        self._checking_daily(day, rng, out)
        if self.card is not None:
            self._card_calendar(day, plan, rng, out)
            self._card_daily(day, rng, out, ledger)
        if len(self.accounts) - (self.card is not None) > 1:
            self._second_checking(day, rng, out)
        self._sweep(day, plan, out, ledger)
        return out

    def _posted(self, account: int, when: datetime, amount: float, description: str, category: str, kind: str,
                rng: Random, **extra: Any) -> Entry:
        """An entry that shows up directly as posted: minutes after an exact time, or during its day."""
        exact = bool(extra.pop("exact_time", False))
        lag = timedelta(minutes=rng.randint(1, 240)) if exact else timedelta(minutes=rng.randint(330, 1260))
        return Entry(account, when, round(amount, 2), description, category, kind, exact_time=exact, lag=lag,
                     provider_code=_PROVIDER_CODES.get(kind), **extra)

    def _checking_calendar(self, day: date, plan: _MonthPlan, rng: Random, out: list[Entry], ledger: Ledger) -> None:
        midnight = self._midnight(day)
        if day == plan.salary_day:
            out.append(self._posted(0, midnight, self.salary, "SALARIO ACME LTDA", "01010000", "salary", rng,
                                    description_raw="CRED SALARIO ACME LTDA FOLHA", method="TED",
                                    operation="FOLHA_PAGAMENTO", counterparty=EMPLOYER, outgoing=False))
        if (day.month, day.day) in ((11, 30), (12, 20)):
            out.append(self._posted(0, midnight, self.salary / 2,
                                    "13 SALARIO ACME LTDA", "01010000", "salary", rng, method="TED",
                                    operation="FOLHA_PAGAMENTO", counterparty=EMPLOYER, outgoing=False))
        if day == plan.fee_day:
            out.append(self._posted(0, midnight, -32.90, "TARIFA PACOTE SERVICOS", "16010000", "fee", rng,
                                    description_raw="TARIFA BANCARIA PACOTE SERVICOS PADRONIZADO",
                                    operation="PACOTE_TARIFA_SERVICOS"))
        if day == plan.rent_day:
            out.append(self._boleto(0, midnight, -self.rent, "PAG BOLETO IMOBILIARIA LAR PAULISTA", "17010000",
                                    LANDLORD, rng, reason="Aluguel"))
        if day == plan.electricity_day:
            out.append(self._posted(0, midnight, -plan.electricity, "DEB AUTOMATICO ENEL SP", "17020002",
                                    "debit_auto", rng, description_raw="DEBITO AUTOMATICO ENEL DISTRIB SP",
                                    operation="CONVENIO_ARRECADACAO"))
        if day == plan.water_day:
            out.append(self._posted(0, midnight, -plan.water, "DEB AUTOMATICO SABESP", "17020001", "debit_auto", rng,
                                    description_raw="DEBITO AUTOMATICO SABESP CIA SANEAMENTO",
                                    operation="CONVENIO_ARRECADACAO"))
        if day == plan.internet_day:
            out.append(self._boleto(0, midnight, -119.99, "PAG BOLETO VIVO FIBRA", "07010001", TELECOM, rng))
        close = bill_due_on(day) if self.card is not None else None
        if close is not None:
            owed = bill_total(ledger.entries[self.card or 0], close)
            if owed > 0:
                out.append(self._posted(0, midnight, -owed, "PAGAMENTO FATURA CARTAO", "05100000", "bill_payment",
                                        rng, description_raw="PAGTO FATURA CARTAO MASTERCARD FINAL " + CARD_LAST4,
                                        operation="OUTROS"))
                out.append(self._posted(self.card, midnight, owed, "PAGAMENTO RECEBIDO - OBRIGADO", "05100000",
                                        "bill_payment", rng, bill_id=self._bill_id(day)))

    def _boleto(self, account: int, when: datetime, amount: float, description: str, category: str,
                receiver: Party, rng: Random, reason: str | None = None) -> Entry:
        digits = "".join(str(rng.randint(0, 9)) for _ in range(25))
        cents = f"{round(abs(amount) * 100):010d}"
        factor = f"{(when.date() - date(2022, 5, 29)).days % 9000 + 1000:04d}"
        barcode = f"{receiver.bank_code}9{rng.randint(1, 9)}{factor}{cents}{digits}"
        line = (f"{barcode[:4]}{digits[:1]}.{digits[1:5]}{rng.randint(0, 9)} {digits[5:10]}.{digits[10:15]}"
                f"{rng.randint(0, 9)} {digits[15:20]}.{digits[20:25]}{rng.randint(0, 9)} {barcode[4]} {factor}{cents}")
        return self._posted(account, when, amount, description, category, "boleto", rng, method="BOLETO",
                            operation="BOLETO", counterparty=receiver, reason=reason, boleto=(line, barcode),
                            description_raw=f"PAGAMENTO DE BOLETO {receiver.name}")

    def _pix(self, account: int, day: date, amount: float, person: Party, rng: Random) -> Entry:
        outgoing = amount < 0
        when = self._at(day, rng.randint(7 * 60, 22 * 60 + 59))
        verb = "ENVIADO" if outgoing else "RECEBIDO"
        reason = rng.choice((None, None, "Racha do jantar", "Presente", "Valeu!", "Conta do bar"))
        return self._posted(account, when, amount, f"PIX {verb} {person.name.upper()}", "05070000",
                            "pix_out" if outgoing else "pix_in", rng, exact_time=True, method="PIX", operation="PIX",
                            counterparty=person, outgoing=outgoing, reason=reason,
                            description_raw=f"PIX {verb} {when:%d/%m %H:%M} {person.name}")

    def _checking_daily(self, day: date, rng: Random, out: list[Entry]) -> None:
        roll = rng.random()
        for _ in range(2 if roll < 0.15 else 1 if roll < 0.6 else 0):
            amount = rng.uniform(400, 1200) if rng.random() < 0.04 else rng.uniform(10, 180)
            out.append(self._pix(0, day, -amount, rng.choice(PEOPLE), rng))
        if rng.random() < 0.14:
            out.append(self._pix(0, day, rng.uniform(20, 420), rng.choice(PEOPLE[:7]), rng))
        if rng.random() < 0.025:
            person = rng.choice(PEOPLE[:7])
            when = self._at(day, rng.randint(9 * 60, 16 * 60))
            out.append(self._posted(0, when, -rng.uniform(300, 2000), f"TED ENVIADA {person.name.upper()}",
                                    "05080000", "ted_out", rng, exact_time=True, method="TED", operation="TED",
                                    counterparty=person))
            out.append(self._posted(0, when, -9.50, "TARIFA TED", "16020000", "fee", rng, exact_time=True,
                                    operation="TARIFA_SERVICOS_AVULSOS"))
        if rng.random() < 0.012:
            person = rng.choice(PEOPLE[:7])
            out.append(self._posted(0, self._at(day, rng.randint(9 * 60, 17 * 60)), rng.uniform(200, 1500),
                                    f"TED RECEBIDA {person.name.upper()}", "05080000", "ted_in", rng,
                                    exact_time=True, method="TED", operation="TED", counterparty=person,
                                    outgoing=False))
        roll = rng.random()
        for _ in range(2 if roll < 0.2 else 1 if roll < 0.8 else 0):
            merchant = rng.choice(DEBIT_SHOPS)
            high = {"10000000": 250.0, "18020000": 140.0}.get(merchant.category_id, 45.0)
            out.append(self._purchase(0, day, merchant, rng.uniform(8, high), rng, pending_days=1,
                                      pending_share=0.35, prefix="COMPRA CARTAO DEBITO "))
        if rng.random() < 0.04:
            out.append(self._posted(0, self._at(day, rng.randint(8 * 60, 22 * 60)), -50.0 * rng.randint(2, 8),
                                    "SAQUE 24H BANCO24HORAS", "04010000", "atm", rng, exact_time=True,
                                    operation="SAQUE"))

    def _purchase(self, account: int, day: date, merchant: Merchant, amount: float, rng: Random, *,
                  pending_days: int, pending_share: float = 1.0, prefix: str = "", tip: float = 0.0,
                  exact_share: float = 0.2, evening: bool = False) -> Entry:
        """A card purchase (debit on checking, credit on the card) that may stay pending for a few days."""
        exact = rng.random() < exact_share
        if exact:
            minutes = rng.randint(19 * 60, 23 * 60 + 50) if evening else rng.randint(7 * 60, 23 * 60 + 30)
            when, lag = self._at(day, minutes), timedelta(minutes=rng.randint(2, 20))
        else:
            when, lag = self._midnight(day), timedelta(minutes=rng.randint(9 * 60, 22 * 60))
        pends = rng.random() < pending_share
        pending_for = timedelta(days=pending_days, minutes=rng.randint(5 * 60, 9 * 60)) if pends else None
        posted = round(amount * (1 + tip), 2) if tip and pends else None
        on_card = account == self.card
        kind = "purchase" if on_card else "debit_card"
        return Entry(account, when, -round(amount, 2), prefix + merchant.descriptor, merchant.category_id, kind,
                     exact_time=exact, description_raw=f"{prefix}{merchant.descriptor} SAO PAULO BRA",
                     merchant=merchant, operation=None if on_card else "CARTAO", lag=lag, pending_for=pending_for,
                     posted_amount=-posted if posted is not None else None,
                     bill_id=self._bill_id(day) if on_card else None, provider_code=_PROVIDER_CODES.get(kind))

    def _second_checking(self, day: date, rng: Random, out: list[Entry]) -> None:
        """The second checking account: a monthly transfer in from the first one, and a few small PIX."""
        midnight = self._midnight(day)
        if day.day == 6:
            out.append(self._posted(0, midnight, -1000.0, "TRANSF ENTRE CONTAS PROPRIAS", "04000000", "own_transfer",
                                    rng, operation="TRANSFERENCIA_MESMA_INSTITUICAO"))
            out.append(self._posted(1, midnight, 1000.0, "TRANSF ENTRE CONTAS PROPRIAS", "04000000", "own_transfer",
                                    rng, operation="TRANSFERENCIA_MESMA_INSTITUICAO"))
        if rng.random() < 0.12:
            out.append(self._pix(1, day, -rng.uniform(10, 120), rng.choice(PEOPLE), rng))

    def _sweep(self, day: date, plan: _MonthPlan, out: list[Entry], ledger: Ledger) -> None:
        """Own-account transfers that keep the main checking balance between ~R$ 600 and ~R$ 9,000."""
        balance = ledger.balances[0] + sum(e.final_amount for e in out if e.account == 0)
        amount = 0.0
        if day == plan.sweep_day and balance > 9000:
            amount = -100.0 * ((balance - 6000) // 100)
        elif balance < 600:
            amount = 100.0 * -((balance - 2500) // 100)
        if not amount:
            return
        rng = Random(f"{self._key}/sweep/{day.isoformat()}")
        midnight = self._midnight(day)
        two_accounts = len(self.accounts) - (self.card is not None) > 1
        counterparty = Party(HOLDER.name, HOLDER.document_type, HOLDER.document, "260", "0001", "7781203-4")
        transfers = [self._posted(0, midnight, amount, "TRANSF ENTRE CONTAS PROPRIAS", "04000000", "own_transfer",
                                  rng, operation="TRANSFERENCIA_MESMA_INSTITUICAO",
                                  counterparty=None if two_accounts else counterparty, outgoing=amount < 0)]
        if two_accounts:
            transfers.append(self._posted(1, midnight, -amount, "TRANSF ENTRE CONTAS PROPRIAS", "04000000",
                                          "own_transfer", rng, operation="TRANSFERENCIA_MESMA_INSTITUICAO"))
        # Money moved in lands before the day's outflows; money moved out leaves after them.
        if amount > 0:
            out[:0] = transfers
        else:
            out.extend(transfers)


def brazilian_ledger(seed: int, item_id: str, created_at: datetime, *, checking_accounts: int = 1,
                     card: bool = True) -> Ledger:
    """The (cached) ledger of one sandbox connection; account i of the connection is `ledger.entries[i]`."""
    key = ("brl", seed, item_id, created_at.isoformat(), checking_accounts, card)
    return cached_ledger(key, lambda: Ledger(f"{seed}/{item_id}", BrazilianHousehold(
        seed, item_id, created_at, checking_accounts=checking_accounts, card=card)))
