"""The SQLAlchemy Core schema of the normalized model (see the README for the analyst-facing description).

Money is DECIMAL(18,2) in the account's currency; negative means money leaves the user. Times are
UTC timestamps; `booked_date` is the local calendar day of the account's country.
"""

from __future__ import annotations

import sqlalchemy as sa

from finance.config import LOCAL_HOUSEHOLD

metadata = sa.MetaData()

Money = sa.Numeric(18, 2)
UtcTime = sa.DateTime(timezone=True)

connections = sa.Table(
    "connections", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="provider:external id"),
    sa.Column("provider", sa.String, nullable=False,
              comment="the aggregator this bank login goes through (its name in the providers registry)"),
    sa.Column("external_id", sa.String, nullable=False, comment="the provider's item id"),
    sa.Column("institution_id", sa.String, comment="the provider's id of the bank"),
    sa.Column("institution_name", sa.String, comment="the bank's name, as the provider gives it (bank text)"),
    sa.Column("institution_logo_url", sa.String, comment="the bank's logo, from the provider"),
    sa.Column("is_sandbox", sa.Boolean, nullable=False, default=False,
              comment="true for a provider's sandbox bank (test data)"),
    sa.Column("status", sa.String, nullable=False, comment="active, syncing, needs_input, needs_reconnect, ..."),
    sa.Column("provider_status", sa.String, comment="the provider's own status, verbatim"),
    sa.Column("status_detail", sa.String, comment="what the user should know or do"),
    sa.Column("error_code", sa.String,
              comment="the provider's or the app's code of the last problem (e.g. INVALID_CREDENTIALS)"),
    sa.Column("consent_expires_at", UtcTime,
              comment="when the user's consent ends (Open Finance consents expire); reconnect before"),
    sa.Column("last_success_at", UtcTime, comment="end of the last successful sync"),
    sa.Column("last_attempt_at", UtcTime, comment="start of the last sync attempt, whatever its outcome"),
    sa.Column("owner", sa.String, comment="the signed-in user this connection belongs to, if login is on"),
    sa.Column("encrypted_secret", sa.String, comment="provider access token, encrypted; never shown"),
    sa.Column("sync_cursor", sa.String, comment="provider sync position, stored with the data it produced"),
    sa.Column("created_at", UtcTime, nullable=False, comment="when the bank was first connected"),
    sa.Column("updated_at", UtcTime, nullable=False, comment="when this row last changed"),
    sa.Column("signal_code", sa.String, comment="a provider webhook that needs the user (PENDING_DISCONNECT, "
                                                "USER_PERMISSION_REVOKED, ITEM_DELETED, ...) until a reconnect"),
    sa.Column("signal_detail", sa.String, comment="what that webhook means for the user"),
    sa.Column("signal_at", UtcTime, comment="when the webhook arrived"),
    sa.Column("successor_institution_id", sa.String, comment="the institution to reconnect through: this "
                                                             "connection's own is being retired"),
    sa.Column("signal_until", UtcTime, comment="when the announced expiry or disconnection happens"),
    comment="One row per provider item (a bank login): status, what to do, consent expiry, last sync.",
)

accounts = sa.Table(
    "accounts", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="provider:external id"),
    sa.Column("connection_id", sa.String, nullable=False,
              comment="connections.id of the bank login holding the account"),
    sa.Column("provider", sa.String, nullable=False, comment="the aggregator (as connections.provider)"),
    sa.Column("external_id", sa.String, nullable=False, comment="the provider's account id"),
    sa.Column("type", sa.String, nullable=False, comment="checking, savings, credit_card, loan, investment, other"),
    sa.Column("subtype", sa.String, comment="the provider's subtype, verbatim"),
    sa.Column("name", sa.String, nullable=False, comment="the account's name at the bank (bank text)"),
    sa.Column("mask", sa.String, comment="last digits of the account number"),
    sa.Column("currency", sa.String(3), nullable=False, comment="ISO 4217 code; every amount of the account is in it"),
    sa.Column("current_balance", Money, comment="signed: a card's amount owed is negative"),
    sa.Column("available_balance", Money,
              comment="what can be spent now (card: limit left), signed like current_balance"),
    sa.Column("credit_limit", Money, comment="a card's or credit line's limit, positive"),
    sa.Column("balance_as_of", UtcTime, comment="when the provider last reported the balances"),
    sa.Column("first_seen_at", UtcTime, nullable=False, comment="the sync that first saw the account"),
    sa.Column("last_seen_at", UtcTime, nullable=False, comment="the last sync that saw the account"),
    comment="One row per account: type, currency and balances (a card's amount owed is negative).",
)

transactions = sa.Table(
    "transactions", metadata,
    # Unique, but deliberately not a PRIMARY KEY: its index would more than double the cost of a bulk sync (2.3 s
    # of 4 s for 1M rows, bench/RESULTS.md). The sync's merge, the only writer of rows, keeps ids unique.
    # No other index either: DuckDB answers the dashboard's filters from its per-row-group min/max, and an index on
    # (account_id, booked_date) cost a quarter of a bulk apply without making any page faster (bench/RESULTS.md).
    sa.Column("id", sa.String, nullable=False, comment="provider:provider's transaction id (unique)"),
    sa.Column("account_id", sa.String, nullable=False, comment="accounts.id"),
    sa.Column("connection_id", sa.String, nullable=False, comment="connections.id"),
    sa.Column("provider", sa.String, nullable=False, comment="the aggregator (as connections.provider)"),
    sa.Column("external_id", sa.String, nullable=False, comment="the provider's transaction id"),
    sa.Column("booked_date", sa.Date, nullable=False, comment="local date in the account's country"),
    sa.Column("authorized_date", sa.Date, comment="when a card purchase was authorized, if the provider says"),
    sa.Column("amount", Money, nullable=False, comment="negative = money leaves the user; account currency"),
    sa.Column("currency", sa.String(3), nullable=False, comment="ISO 4217 code of amount (the account's currency)"),
    sa.Column("original_amount", Money, comment="in the original currency, when it differs"),
    sa.Column("original_currency", sa.String(3), comment="ISO 4217 code of original_amount"),
    sa.Column("description", sa.String, nullable=False,
              comment="the statement text, verbatim (bank text: never a formula or markup)"),
    sa.Column("merchant", sa.String, comment="the merchant or counterparty, cleaned up, when known"),
    sa.Column("category", sa.String, nullable=False, comment="unified category from the provider's"),
    sa.Column("provider_category", sa.String, comment="the provider's category name, verbatim"),
    sa.Column("provider_category_id", sa.String, comment="the provider's category id"),
    sa.Column("status", sa.String, nullable=False, comment="pending or posted"),
    sa.Column("pending_id", sa.String, comment="the pending row this posted row replaced"),
    sa.Column("payment_method", sa.String, comment="PIX, TED, DOC, TEV, BOLETO, CARD, ..."),
    sa.Column("installment_number", sa.Integer, comment="which installment this is (parcelado purchases), from 1"),
    sa.Column("installment_total", sa.Integer, comment="how many installments the purchase has"),
    sa.Column("user_category", sa.String, comment="the user's override; wins over category"),
    sa.Column("note", sa.String, comment="the user's note"),
    sa.Column("deleted_at", UtcTime, comment="tombstone: the user deleted it; re-syncs keep it hidden"),
    sa.Column("provider_created_at", UtcTime, comment="when the provider recorded it (orders rows within a day)"),
    sa.Column("first_seen_at", UtcTime, nullable=False, comment="the sync that first saw the row"),
    sa.Column("last_seen_at", UtcTime, nullable=False, comment="the last sync that saw the row"),
    sa.Column("bill_id", sa.String, comment="a card row's bill (card_bills.id), when the provider says which"),
    sa.Column("merchant_category_code", sa.String, comment="ISO 18245 merchant category code, verbatim"),
    sa.Column("counterparty_account", sa.String, comment="the other side's account number, as the provider sends it"),
    sa.Column("import_batch_id", sa.String, comment="the file import that added this row (import_batches.id); NULL "
                                                    "for rows a provider synced"),
    comment="One row per transaction; amount < 0 when money leaves the user. The effective category is the user's, "
            "else the merchant rule's, else the provider's (view effective_transactions); reports skip rows with "
            "deleted_at set.",
)

# PostgreSQL only: one shared table serves many connections and users, so a sync's merge and a page's filters look
# rows up by id, connection and account instead of scanning everyone's rows (DuckDB scans its row groups faster than
# it maintains these; see the comment above).
for _name, *_columns in (("transactions_id", "id"), ("transactions_connection_day", "connection_id", "booked_date"),
                         ("transactions_account_day", "account_id", "booked_date")):
    sa.Index(_name, *(transactions.c[c] for c in _columns)).ddl_if(dialect="postgresql")

balance_history = sa.Table(
    "balance_history", metadata,
    sa.Column("account_id", sa.String, primary_key=True, comment="accounts.id"),
    sa.Column("day", sa.Date, primary_key=True, comment="the calendar day (the account's country)"),
    sa.Column("balance", Money, nullable=False, comment="end-of-day balance, signed like current_balance"),
    sa.Column("currency", sa.String(3), nullable=False, comment="the account's currency"),
    sa.Column("source", sa.String, nullable=False, comment="snapshot (seen at a sync) or reconstructed"),
    comment="End-of-day balance per account and day: snapshots from syncs plus reconstructed history.",
)

sync_runs = sa.Table(
    "sync_runs", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="a random id"),
    sa.Column("connection_id", sa.String, nullable=False, comment="connections.id"),
    sa.Column("trigger", sa.String, nullable=False, comment="connect, manual, webhook, schedule, cli"),
    sa.Column("started_at", UtcTime, nullable=False, comment="when the run started"),
    sa.Column("finished_at", UtcTime, comment="when it ended (NULL while running)"),
    sa.Column("duration_ms", sa.Integer, comment="how long it took, in milliseconds"),
    sa.Column("window_start", sa.Date, comment="earliest date re-read by this run"),
    sa.Column("outcome", sa.String, nullable=False, comment="running, success, failed, interrupted"),
    sa.Column("added", sa.Integer, nullable=False, default=0, comment="transactions added"),
    sa.Column("modified", sa.Integer, nullable=False, default=0, comment="transactions changed"),
    sa.Column("removed", sa.Integer, nullable=False, default=0, comment="transactions the provider removed"),
    sa.Column("merged", sa.Integer, nullable=False, default=0, comment="pending rows merged into posted ones"),
    sa.Column("accounts", sa.Integer, nullable=False, default=0, comment="accounts synced"),
    sa.Column("requests", sa.Integer, nullable=False, default=0, comment="HTTP requests made to the provider"),
    sa.Column("error_code", sa.String,
              comment="the error's code when it failed (STORE_FULL, INVALID_CREDENTIALS, ...)"),
    sa.Column("message", sa.String, comment="what happened, for a person"),
    sa.Column("process", sa.String, comment="the process running it (host/pid/start): a running row whose process "
                                            "is gone was interrupted"),
    sa.Column("set_aside", sa.Integer, comment="rows the provider sent that cannot be real, kept out of the store"),
    comment="One row per sync attempt: trigger, counts, duration, outcome and a message a person can act on.",
)

webhook_events = sa.Table(
    "webhook_events", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="provider:event id"),
    sa.Column("provider", sa.String, nullable=False, comment="the aggregator that sent it"),
    sa.Column("event_type", sa.String, nullable=False, comment="the provider's event name, verbatim"),
    sa.Column("connection_id", sa.String, comment="connections.id it concerns, once known"),
    sa.Column("received_at", UtcTime, nullable=False, comment="when it arrived"),
    sa.Column("outcome", sa.String, nullable=False, comment="queued, processed, ignored, failed"),
    sa.Column("detail", sa.String, comment="what the event did, for a person"),
    sa.Column("item_id", sa.String, comment="the provider's item id the event names"),
    sa.Column("error", sa.String, comment="why processing failed"),
    sa.Column("processed_at", UtcTime, comment="when the worker finished with it"),
    sa.Column("payload", sa.String, comment="the verified JSON body (ids and codes, no amounts)"),
    comment="Provider webhooks received: verified events, stored once, and what the worker did with each.",
)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="a random id"),
    sa.Column("occurred_at", UtcTime, nullable=False, comment="when it happened"),
    sa.Column("actor", sa.String, nullable=False, comment="who did it: the signed-in user, or local"),
    sa.Column("action", sa.String, nullable=False,
              comment="what was done (category_changed, note_changed, budget_set, ...)"),
    sa.Column("object_id", sa.String, comment="the id of what was changed"),
    sa.Column("detail", sa.String, comment="a JSON object with the before and after values"),
    comment="Every change a person made (categories, notes, budgets, rates, alerts ...): who, when, before and after.",
)

categories = sa.Table(
    "categories", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="the category id, dotted below its parent (food.groceries)"),
    sa.Column("name", sa.String, nullable=False, comment="its name for people"),
    sa.Column("parent_id", sa.String, comment="the top-level category it belongs to; NULL for a top-level one"),
    sa.Column("kind", sa.String, nullable=False, comment="income, expense, transfer, other"),
    comment="The unified category taxonomy; kind says how a row counts: income, expense, transfer, other.",
)

category_rules = sa.Table(
    "category_rules", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="a random id"),
    sa.Column("merchant", sa.String, nullable=False, comment="transactions of this merchant (exact) get the category"),
    sa.Column("category", sa.String, nullable=False, comment="categories.id"),
    sa.Column("created_at", UtcTime, nullable=False, comment="when the user made the rule"),
    comment="Merchant → category rules the user made; a rule applies to the merchant's rows without a user category.",
)

# Alerts (finance/alerts.py decides which exist; the Alerts page lists them; e-mailed when SMTP is configured).
alerts = sa.Table(
    "alerts", metadata,
    sa.Column("key", sa.String, primary_key=True, comment="dedupe key: an alert is raised once, e.g. "
                                                         "over_budget:2026-12:food:BRL"),
    sa.Column("kind", sa.String, nullable=False, comment="large_transaction, over_budget, new_subscription, "
                                                         "price_change, reconnect"),
    sa.Column("title", sa.String, nullable=False, comment="plain text; may hold bank text"),
    sa.Column("detail", sa.String, nullable=False, comment="plain text; may hold bank text"),
    sa.Column("created_at", UtcTime, nullable=False, comment="when it was raised"),
    sa.Column("read_at", UtcTime, comment="when the user marked it read; NULL: unread"),
    sa.Column("email_state", sa.String, comment="pending or sent; NULL when no SMTP was configured at the time"),
    sa.Column("email_attempts", sa.Integer, nullable=False, default=0, comment="how many times sending it was tried"),
    sa.Column("email_last_attempt_at", UtcTime, comment="when the last try was"),
    sa.Column("email_error", sa.String, comment="why the last e-mail attempt failed (never the password)"),
    comment="Alerts raised for the user; marking read is also in audit_log.",
)

alert_settings = sa.Table(
    "alert_settings", metadata,
    sa.Column("name", sa.String, primary_key=True, comment="off:<kind> or threshold:<currency>"),
    sa.Column("value", sa.String, nullable=False,
              comment="true/false for off:<kind>, an amount for threshold:<currency>"),
    sa.Column("updated_at", UtcTime, nullable=False, comment="when the user last changed it"),
    comment="Which alert kinds are off and the large-transaction thresholds; each change is also in audit_log.",
)

# What the user decided about a detected recurring series (Recurring page), keyed by the series key
# (finance/recurring.py: account, normalised merchant, currency, cadence), so it survives every re-sync.
recurring_choices = sa.Table(
    "recurring_choices", metadata,
    sa.Column("series_key", sa.String, primary_key=True, comment="Series.key of the detected series"),
    sa.Column("status", sa.String, nullable=False, comment="detected, confirmed or dismissed"),
    sa.Column("name", sa.String, comment="the user's name for the series, instead of the merchant"),
    sa.Column("amount", Money, comment="the user's expected amount (signed), instead of the latest"),
    sa.Column("cadence", sa.String, comment="weekly, monthly or yearly, instead of the detected one"),
    sa.Column("updated_at", UtcTime, nullable=False, comment="when the user last changed it"),
    comment="The user's confirm/dismiss/edit of recurring series; each change is also in audit_log.",
)

# Exchange rates the user enters (Money page). A rate is in force from `valid_from` until a later rate of the same
# pair, in either direction; amounts dated before a currency's first rate stay unconverted (finance/money.py).
exchange_rates = sa.Table(
    "exchange_rates", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="a random id"),
    sa.Column("from_currency", sa.String(3), nullable=False, comment="ISO 4217 code converted from"),
    sa.Column("to_currency", sa.String(3), nullable=False, comment="ISO 4217 code converted to"),
    sa.Column("rate", sa.Numeric(24, 12), nullable=False, comment="1 from_currency = rate to_currency"),
    sa.Column("valid_from", sa.Date, nullable=False, comment="in force from this date until the pair's next rate"),
    sa.Column("note", sa.String, comment="where the rate came from, for the user"),
    sa.Column("entered_at", UtcTime, nullable=False, comment="when the user entered it"),
    comment="Exchange rates the user entered on the Money page; each change is also in audit_log.",
)

# Monthly budgets the user sets (Budgets page): one per month, category and currency; a parent category covers its
# children. Rollover carries what was left into the next month (finance/budgets.py).
budgets = sa.Table(
    "budgets", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="a random id"),
    sa.Column("month", sa.Date, nullable=False, comment="the first day of the month"),
    sa.Column("category", sa.String, nullable=False, comment="a spending category; a parent covers its children"),
    sa.Column("currency", sa.String(3), nullable=False,
              comment="ISO 4217 code; a budget covers this currency's spending only"),
    sa.Column("amount", Money, nullable=False, comment="positive"),
    sa.Column("rollover", sa.Boolean, nullable=False, default=False,
              comment="what is left (or overspent) carries into the next month's budget"),
    sa.Column("created_at", UtcTime, nullable=False, comment="when the user set it"),
    sa.Column("updated_at", UtcTime, nullable=False, comment="when the user last changed it"),
    sa.UniqueConstraint("month", "category", "currency", name="budgets_month_category_currency"),
    comment="Monthly budgets the user set on the Budgets page; each change is also in audit_log.",
)

# The balance each account should stay above in the forecast (Forecast page); without one, bank accounts warn below
# zero and cards past their limit (finance/forecast.py).
balance_thresholds = sa.Table(
    "balance_thresholds", metadata,
    sa.Column("account_id", sa.String, primary_key=True, comment="accounts.id"),
    sa.Column("threshold", Money, nullable=False, comment="warn when the forecast balance goes below this"),
    sa.Column("updated_at", UtcTime, nullable=False, comment="when the user last changed it"),
    comment="Forecast thresholds the user set on the Forecast page; each change is also in audit_log.",
)

# Investments, loans and card bills (issue 19; finance.model's Security … CardBill, written by finance.store.portfolio).
Quantity = sa.Numeric(28, 10)
Price = sa.Numeric(24, 8)
Rate = sa.Numeric(12, 6)

securities = sa.Table(
    "securities", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="provider:provider's security id"),
    sa.Column("connection_id", sa.String, nullable=False, comment="connections.id of the connection that reported it"),
    sa.Column("name", sa.String, nullable=False, comment="as the provider names it (shown as text)"),
    sa.Column("type", sa.String, nullable=False, comment="equity, etf, mutual_fund, fixed_income, cash, crypto, ..."),
    sa.Column("currency", sa.String(3), nullable=False, comment="ISO 4217 code of its prices"),
    sa.Column("ticker", sa.String, comment="exchange symbol, when it has one"),
    sa.Column("isin", sa.String, comment="ISIN, when the provider sends it"),
    sa.Column("close_price", Price, comment="latest price per unit the provider knows"),
    sa.Column("close_price_as_of", sa.Date, comment="the day of close_price"),
    sa.Column("maturity_date", sa.Date, comment="fixed income: when it matures"),
    sa.Column("annual_rate", Rate, comment="fixed income: contracted rate, % a year"),
    sa.Column("updated_at", UtcTime, nullable=False, comment="the read that last wrote it"),
    comment="What holdings are of; replaced per connection at each successful investments fetch.",
)

holdings = sa.Table(
    "holdings", metadata,
    sa.Column("account_id", sa.String, primary_key=True, comment="accounts.id of the investment account"),
    sa.Column("security_id", sa.String, primary_key=True, comment="securities.id"),
    sa.Column("connection_id", sa.String, nullable=False, comment="connections.id"),
    sa.Column("quantity", Quantity, nullable=False, comment="units held"),
    sa.Column("price", Price, comment="per unit"),
    sa.Column("value", Money, nullable=False, comment="positive"),
    sa.Column("cost_basis", Money, comment="what the position cost in total; NULL when unknown"),
    sa.Column("currency", sa.String(3), nullable=False, comment="ISO 4217 code of value and cost_basis"),
    sa.Column("as_of", sa.Date, nullable=False, comment="the price's date"),
    comment="Positions now; replaced per connection at each successful investments fetch.",
)

investment_transactions = sa.Table(
    "investment_transactions", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="provider:provider's id"),
    sa.Column("account_id", sa.String, nullable=False, comment="accounts.id of the investment account"),
    sa.Column("connection_id", sa.String, nullable=False, comment="connections.id"),
    sa.Column("security_id", sa.String, comment="securities.id; NULL for cash movements"),
    sa.Column("date", sa.Date, nullable=False, comment="the trade or settlement day the provider gives"),
    sa.Column("type", sa.String, nullable=False, comment="buy, sell, dividend, fee, transfer, cash, other"),
    sa.Column("amount", Money, nullable=False, comment="cash moved, model sign: a buy is negative"),
    sa.Column("currency", sa.String(3), nullable=False, comment="ISO 4217 code of amount"),
    sa.Column("description", sa.String, nullable=False, comment="as the provider sent it (shown as text)"),
    sa.Column("quantity", Quantity, comment="units gained (+) or given up (-)"),
    sa.Column("price", Price, comment="per unit"),
    sa.Column("fees", Money, comment="fees of the trade, positive"),
    sa.Column("first_seen_at", UtcTime, nullable=False, comment="the sync that first saw it"),
    comment="Buys, sells, dividends and fees of investment accounts; upserted from each read (a window of them).",
)

liabilities = sa.Table(
    "liabilities", metadata,
    sa.Column("account_id", sa.String, primary_key=True, comment="accounts.id of the loan or card"),
    sa.Column("connection_id", sa.String, nullable=False, comment="connections.id"),
    sa.Column("kind", sa.String, nullable=False, comment="credit, student, mortgage, personal, financing, ..."),
    sa.Column("currency", sa.String(3), nullable=False, comment="ISO 4217 code of the amounts"),
    sa.Column("balance", Money, comment="signed like accounts.current_balance: owed is negative"),
    sa.Column("name", sa.String, comment="the contract's name at the bank (shown as text)"),
    sa.Column("interest_rate", Rate, comment="% a year"),
    sa.Column("rate_type", sa.String, comment="fixed or variable, as the provider says"),
    sa.Column("next_payment_date", sa.Date, comment="when the next installment is due"),
    sa.Column("next_payment_amount", Money, comment="what the next installment asks for, positive"),
    sa.Column("minimum_payment", Money, comment="a card's minimum payment, positive"),
    sa.Column("last_payment_date", sa.Date, comment="the day of the last payment"),
    sa.Column("last_payment_amount", Money, comment="the last payment, positive"),
    sa.Column("original_principal", Money, comment="what was borrowed, positive"),
    sa.Column("origination_date", sa.Date, comment="when the loan started"),
    sa.Column("maturity_date", sa.Date, comment="when the last installment is due"),
    sa.Column("installments_total", sa.Integer, comment="how many installments the contract has"),
    sa.Column("installments_paid", sa.Integer, comment="how many are paid"),
    sa.Column("is_overdue", sa.Boolean, comment="the provider says a payment is late"),
    sa.Column("updated_at", UtcTime, nullable=False, comment="the read that last wrote it"),
    comment="Loan, mortgage and card terms; replaced per connection at each successful liabilities fetch.",
)

loan_payments = sa.Table(
    "loan_payments", metadata,
    sa.Column("account_id", sa.String, primary_key=True, comment="accounts.id of the loan"),
    sa.Column("seq", sa.Integer, primary_key=True, comment="order among the loan's payments"),
    sa.Column("day", sa.Date, nullable=False, comment="the payment's day"),
    sa.Column("amount", Money, nullable=False, comment="positive"),
    comment="Known payments of each loan (its balance history is rebuilt from them).",
)

card_bills = sa.Table(
    "card_bills", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="provider:provider's bill id"),
    sa.Column("account_id", sa.String, nullable=False, comment="accounts.id of the card"),
    sa.Column("connection_id", sa.String, nullable=False, comment="connections.id"),
    sa.Column("closing_date", sa.Date, comment="the day the bill closed (or closes)"),
    sa.Column("due_date", sa.Date, nullable=False, comment="the day it must be paid"),
    sa.Column("total", Money, nullable=False, comment="positive: what the bill asks for"),
    sa.Column("minimum_payment", Money, comment="the least the bank accepts, positive"),
    sa.Column("paid_amount", Money, comment="what was paid of it, positive"),
    sa.Column("is_paid", sa.Boolean, comment="the provider says it is paid"),
    sa.Column("currency", sa.String(3), nullable=False, comment="ISO 4217 code of the amounts"),
    sa.Column("updated_at", UtcTime, nullable=False, comment="the read that last wrote it"),
    comment="Card statements (faturas); upserted at each successful bills fetch.",
)

portfolio_status = sa.Table(
    "portfolio_status", metadata,
    sa.Column("connection_id", sa.String, primary_key=True, comment="connections.id"),
    sa.Column("resource", sa.String, primary_key=True, comment="investments, investment_transactions, ..."),
    sa.Column("checked_at", UtcTime, nullable=False, comment="when it was last read"),
    sa.Column("ok", sa.Boolean, nullable=False, comment="whether that read succeeded"),
    sa.Column("error_code", sa.String, comment="the typed error of a failed read (finance.errors)"),
    sa.Column("message", sa.String, comment="why the last read failed, for a person"),
    sa.Column("last_success_at", UtcTime, comment="the last read that succeeded"),
    sa.Column("digest", sa.String, comment="fingerprint of what the last successful read stored"),
    comment="How the last read of each portfolio resource went, per connection.",
)

account_links = sa.Table(
    "account_links", metadata,
    sa.Column("old_account_id", sa.String, primary_key=True, comment="an account of a retired connection"),
    sa.Column("new_account_id", sa.String, nullable=False, comment="the account that continues its history"),
    sa.Column("linked_at", UtcTime, nullable=False, comment="when the reconnect linked them"),
    sa.Column("since", sa.Date, comment="the day the new account's history begins; the old counts before it"),
    comment="Reconnects: the new account's history continues the old one's (charts count them as one).",
)

# File imports (finance/imports; Import files page, `python -m finance import`): each import is one batch that can be
# undone as a whole; imported rows are `transactions` with provider 'import' and their batch in `import_batch_id`.
import_batches = sa.Table(
    "import_batches", metadata,
    sa.Column("id", sa.String, primary_key=True, comment="the import's id (`import --undo` takes it)"),
    sa.Column("account_id", sa.String, nullable=False, comment="accounts.id the rows went into"),
    sa.Column("file_name", sa.String, nullable=False, comment="as uploaded; shown as text"),
    sa.Column("file_sha256", sa.String, nullable=False, comment="the file's SHA-256: the same file again adds nothing"),
    sa.Column("kind", sa.String, nullable=False, comment="csv or ofx"),
    sa.Column("imported_at", UtcTime, nullable=False, comment="when it was imported"),
    sa.Column("actor", sa.String, nullable=False, comment="who imported it (the page or the CLI)"),
    sa.Column("rows_in_file", sa.Integer, nullable=False, comment="transaction rows the file held"),
    sa.Column("added", sa.Integer, nullable=False, comment="rows this import added (undo removes exactly these)"),
    sa.Column("duplicates", sa.Integer, nullable=False, comment="file rows a synced row already describes"),
    sa.Column("already_imported", sa.Integer, nullable=False, comment="file rows an earlier import brought"),
    sa.Column("ambiguous_kept", sa.Integer, nullable=False, comment="possible duplicates the user chose to keep"),
    sa.Column("ambiguous_skipped", sa.Integer, nullable=False, comment="possible duplicates the user skipped"),
    sa.Column("first_date", sa.Date, comment="the file's first booked day"),
    sa.Column("last_date", sa.Date, comment="the file's last booked day"),
    sa.Column("set_balance", Money, comment="the closing balance the file gave a manual account that had none"),
    sa.Column("set_balance_as_of", UtcTime, comment="the day set_balance is of"),
    sa.Column("undone_at", UtcTime, comment="when the import was undone (its rows removed)"),
    comment="One row per file import; the import and its undo are also in audit_log.",
)

import_mappings = sa.Table(
    "import_mappings", metadata,
    sa.Column("account_id", sa.String, primary_key=True, comment="accounts.id the mapping is for"),
    sa.Column("headers", sa.String, nullable=False, comment="the CSV header row, as JSON"),
    sa.Column("mapping", sa.String, nullable=False, comment="finance.imports.csv_reader.ColumnMapping, as JSON"),
    sa.Column("updated_at", UtcTime, nullable=False, comment="when it was last confirmed"),
    comment="The CSV column mapping confirmed for each account, reused by its next import.",
)

import_reviews = sa.Table(
    "import_reviews", metadata,
    sa.Column("transaction_id", sa.String, primary_key=True, comment="an imported row the user chose to keep"),
    sa.Column("synced_id", sa.String, nullable=False, comment="the synced row it looked like"),
    sa.Column("decided_at", UtcTime, nullable=False, comment="when the user decided"),
    sa.Column("actor", sa.String, nullable=False, comment="who decided"),
    comment="Imported rows the user kept beside a synced row that a later sync brought with the same amount and "
            "dates but another description (Import files page); also in audit_log.",
)

# Each person's settings (the interface language, for now). Keyed by user so that each household member keeps their
# own once sign-in exists; until then every browser of the installation is the one user "user".
preferences = sa.Table(
    "preferences", metadata,
    sa.Column("user_id", sa.String, primary_key=True, comment="who: the signed-in e-mail, or \"user\""),
    sa.Column("name", sa.String, primary_key=True, comment="which setting, e.g. language"),
    sa.Column("value", sa.String, nullable=False, comment="the setting's value, e.g. pt_BR"),
    sa.Column("updated_at", UtcTime, nullable=False, comment="when it was last chosen"),
    comment="Per-user settings such as the interface language (finance/i18n.py).",
)

# Households (issue 15). With sign-in, every row of the tables above belongs to one household: `household_id` says
# which. On PostgreSQL row-level security lets a transaction see only the household it set; on DuckDB each household
# has a store file of its own, so the column holds that file's household. LOCAL_HOUSEHOLD is the installation's first
# household: the one a single user had before sign-in, and the whole store without sign-in (defined with the settings,
# which name a household's store).

SHARED_TABLES = frozenset({"categories"})
"""Reference data every household reads alike: no household_id."""

for _table in list(metadata.sorted_tables):
    if _table.name not in SHARED_TABLES:
        _table.append_column(sa.Column(
            "household_id", sa.String, nullable=False, server_default=LOCAL_HOUSEHOLD,
            comment="households.id of the household the row belongs to (see households)"))

# PostgreSQL (revision 0008): row-level security keeps each household to its own rows of these tables, the column's
# default is the transaction's household (none set: the write fails), and the keys a household chooses (alerts.key,
# alert_settings.name, recurring_choices.series_key, preferences' (user_id, name), budgets' month/category/currency)
# and securities.id begin with household_id, so two households never collide. DuckDB keeps the keys above: each
# household's file is its own.
sa.Index("transactions_household_day", transactions.c.household_id,
         transactions.c.booked_date).ddl_if(dialect="postgresql")
# Revision 0009: a household's lookup of each account's balance on each day (reports.net_worth_by_day) checks its
# household in the index, instead of filtering every earlier row of the account.
sa.Index("balance_history_household_account_day", balance_history.c.household_id, balance_history.c.account_id,
         balance_history.c.day).ddl_if(dialect="postgresql")

# The directory: who may sign in and which household each connection is in. Outside the households' data (no
# household_id, no row-level security, never in the analysts' snapshot or the SQL console): only sign-in and the
# routing of webhooks and background syncs read it.
households = sa.Table(
    "households", metadata,
    sa.Column("id", sa.String, primary_key=True,
              comment="a random id; 'local' is the installation's first household"),
    sa.Column("name", sa.String, nullable=False, comment="shown to its members"),
    sa.Column("created_at", UtcTime, nullable=False, comment="when it was created"),
    sa.Column("created_by", sa.String, comment="the e-mail of who created it; NULL for 'local'"),
    comment="Households: the people who share one set of connections and data.",
)

members = sa.Table(
    "members", metadata,
    sa.Column("email", sa.String, primary_key=True, comment="the lower-case e-mail address the person signs in with"),
    sa.Column("household_id", sa.String, nullable=False, comment="households.id: a person belongs to one"),
    sa.Column("role", sa.String, nullable=False,
              comment="owner, member or viewer (a viewer cannot connect, disconnect or edit)"),
    sa.Column("invited_by", sa.String, comment="the owner who invited them; NULL for who created the household"),
    sa.Column("invited_at", UtcTime, nullable=False, comment="when the invitation (or the household) was made"),
    sa.Column("joined_at", UtcTime, comment="their first sign-in; NULL while the invitation is open"),
    sa.Column("subject", sa.String, comment="the identity provider's issuer and subject of their first sign-in"),
    comment="Who belongs to which household, with which role; an open invitation is a row not yet joined.",
)

connection_directory = sa.Table(
    "connection_directory", metadata,
    sa.Column("connection_id", sa.String, primary_key=True, comment="connections.id"),
    sa.Column("household_id", sa.String, nullable=False, comment="households.id of the connection"),
    comment="Which household each connection is in, so a webhook or a scheduled sync reaches the right store.",
)

DIRECTORY_TABLES = frozenset({"households", "members", "connection_directory"})
"""The directory's tables: never copied into a household's snapshot, never reachable from the console."""
