"""Baseline: the schema of the store as it was when migrations began (issue 14), written out in full so that a later
change of finance/store/schema.py needs a revision of its own (tests/test_migrations.py fails without one).

A store made before migrations existed (a DuckDB file with no alembic_version table) is adopted: its missing tables
are created and the nullable columns newer code added are added (what finance/store/migrate.py used to do), and
nothing in it is rewritten or dropped.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision: str | None = None
branch_labels = None
depends_on = None


def tables(meta: sa.MetaData) -> None:
    """The baseline's tables, on `meta`."""
    sa.Table(
        'accounts', meta,
        sa.Column('id', sa.String(), primary_key=True, comment='provider:external id'),
        sa.Column('connection_id', sa.String(), nullable=False),
        sa.Column('provider', sa.String(), nullable=False),
        sa.Column('external_id', sa.String(), nullable=False),
        sa.Column('type', sa.String(), nullable=False, comment='checking, savings, credit_card, loan, investment, '
                                                               'other'),
        sa.Column('subtype', sa.String(), comment="the provider's subtype, verbatim"),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('mask', sa.String(), comment='last digits of the account number'),
        sa.Column('currency', sa.String(3), nullable=False),
        sa.Column('current_balance', sa.Numeric(18, 2), comment="signed: a card's amount owed is negative"),
        sa.Column('available_balance', sa.Numeric(18, 2)),
        sa.Column('credit_limit', sa.Numeric(18, 2)),
        sa.Column('balance_as_of', sa.DateTime(timezone=True)),
        sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        'alert_settings', meta,
        sa.Column('name', sa.String(), primary_key=True, comment='off:<kind> or threshold:<currency>'),
        sa.Column('value', sa.String(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        comment='Which alert kinds are off and the large-transaction thresholds; each change is also in audit_log.',
    )
    sa.Table(
        'alerts', meta,
        sa.Column('key', sa.String(), primary_key=True, comment='dedupe key: an alert is raised once, e.g. '
                                                                'over_budget:2026-12:food:BRL'),
        sa.Column('kind', sa.String(), nullable=False, comment='large_transaction, over_budget, new_subscription, '
                                                               'price_change, reconnect'),
        sa.Column('title', sa.String(), nullable=False, comment='plain text; may hold bank text'),
        sa.Column('detail', sa.String(), nullable=False, comment='plain text; may hold bank text'),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('read_at', sa.DateTime(timezone=True), comment='when the user marked it read; NULL: unread'),
        sa.Column('email_state', sa.String(), comment='pending or sent; NULL when no SMTP was configured at the time'),
        sa.Column('email_attempts', sa.Integer(), nullable=False),
        sa.Column('email_last_attempt_at', sa.DateTime(timezone=True)),
        sa.Column('email_error', sa.String(), comment='why the last e-mail attempt failed (never the password)'),
        comment='Alerts raised for the user; marking read is also in audit_log.',
    )
    sa.Table(
        'audit_log', meta,
        sa.Column('id', sa.String(), primary_key=True),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(), nullable=False),
        sa.Column('action', sa.String(), nullable=False),
        sa.Column('object_id', sa.String()),
        sa.Column('detail', sa.String()),
    )
    sa.Table(
        'balance_history', meta,
        sa.Column('account_id', sa.String(), primary_key=True),
        sa.Column('day', sa.Date(), primary_key=True),
        sa.Column('balance', sa.Numeric(18, 2), nullable=False, comment='end-of-day balance, signed like '
                                                                        'current_balance'),
        sa.Column('currency', sa.String(3), nullable=False),
        sa.Column('source', sa.String(), nullable=False, comment='snapshot (seen at a sync) or reconstructed'),
    )
    sa.Table(
        'balance_thresholds', meta,
        sa.Column('account_id', sa.String(), primary_key=True),
        sa.Column('threshold', sa.Numeric(18, 2), nullable=False, comment='warn when the forecast balance goes below '
                                                                          'this'),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        comment='Forecast thresholds the user set on the Forecast page; each change is also in audit_log.',
    )
    sa.Table(
        'budgets', meta,
        sa.Column('id', sa.String(), primary_key=True),
        sa.Column('month', sa.Date(), nullable=False, comment='the first day of the month'),
        sa.Column('category', sa.String(), nullable=False, comment='a spending category; a parent covers its children'),
        sa.Column('currency', sa.String(3), nullable=False),
        sa.Column('amount', sa.Numeric(18, 2), nullable=False, comment='positive'),
        sa.Column('rollover', sa.Boolean(), nullable=False, comment="what is left (or overspent) carries into the next "
                                                                    "month's budget"),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('month', 'category', 'currency', name='budgets_month_category_currency'),
        comment='Monthly budgets the user set on the Budgets page; each change is also in audit_log.',
    )
    sa.Table(
        'categories', meta,
        sa.Column('id', sa.String(), primary_key=True),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('parent_id', sa.String()),
        sa.Column('kind', sa.String(), nullable=False, comment='income, expense, transfer, other'),
    )
    sa.Table(
        'category_rules', meta,
        sa.Column('id', sa.String(), primary_key=True),
        sa.Column('merchant', sa.String(), nullable=False),
        sa.Column('category', sa.String(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        'connections', meta,
        sa.Column('id', sa.String(), primary_key=True, comment='provider:external id'),
        sa.Column('provider', sa.String(), nullable=False),
        sa.Column('external_id', sa.String(), nullable=False, comment="the provider's item id"),
        sa.Column('institution_id', sa.String()),
        sa.Column('institution_name', sa.String()),
        sa.Column('institution_logo_url', sa.String()),
        sa.Column('is_sandbox', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(), nullable=False, comment='active, syncing, needs_input, needs_reconnect, ...'),
        sa.Column('provider_status', sa.String(), comment="the provider's own status, verbatim"),
        sa.Column('status_detail', sa.String(), comment='what the user should know or do'),
        sa.Column('error_code', sa.String()),
        sa.Column('consent_expires_at', sa.DateTime(timezone=True)),
        sa.Column('last_success_at', sa.DateTime(timezone=True), comment='end of the last successful sync'),
        sa.Column('last_attempt_at', sa.DateTime(timezone=True)),
        sa.Column('owner', sa.String(), comment='the signed-in user this connection belongs to, if login is on'),
        sa.Column('encrypted_secret', sa.String(), comment='provider access token, encrypted; never shown'),
        sa.Column('sync_cursor', sa.String(), comment='provider sync position, stored with the data it produced'),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('signal_code', sa.String(), comment='a provider webhook that needs the user (PENDING_DISCONNECT, '
                                                      'USER_PERMISSION_REVOKED, ITEM_DELETED, ...) until a reconnect'),
        sa.Column('signal_detail', sa.String(), comment='what that webhook means for the user'),
        sa.Column('signal_at', sa.DateTime(timezone=True), comment='when the webhook arrived'),
        sa.Column('signal_until', sa.DateTime(timezone=True), comment='when the announced expiry or disconnection '
                                                                      'happens'),
    )
    sa.Table(
        'exchange_rates', meta,
        sa.Column('id', sa.String(), primary_key=True),
        sa.Column('from_currency', sa.String(3), nullable=False),
        sa.Column('to_currency', sa.String(3), nullable=False),
        sa.Column('rate', sa.Numeric(24, 12), nullable=False, comment='1 from_currency = rate to_currency'),
        sa.Column('valid_from', sa.Date(), nullable=False, comment="in force from this date until the pair's next "
                                                                   "rate"),
        sa.Column('note', sa.String(), comment='where the rate came from, for the user'),
        sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
        comment='Exchange rates the user entered on the Money page; each change is also in audit_log.',
    )
    sa.Table(
        'recurring_choices', meta,
        sa.Column('series_key', sa.String(), primary_key=True, comment='Series.key of the detected series'),
        sa.Column('status', sa.String(), nullable=False, comment='detected, confirmed or dismissed'),
        sa.Column('name', sa.String(), comment="the user's name for the series, instead of the merchant"),
        sa.Column('amount', sa.Numeric(18, 2), comment="the user's expected amount (signed), instead of the latest"),
        sa.Column('cadence', sa.String(), comment='weekly, monthly or yearly, instead of the detected one'),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        comment="The user's confirm/dismiss/edit of recurring series; each change is also in audit_log.",
    )
    sa.Table(
        'sync_runs', meta,
        sa.Column('id', sa.String(), primary_key=True),
        sa.Column('connection_id', sa.String(), nullable=False),
        sa.Column('trigger', sa.String(), nullable=False, comment='connect, manual, webhook, schedule, cli'),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True)),
        sa.Column('duration_ms', sa.Integer()),
        sa.Column('window_start', sa.Date(), comment='earliest date re-read by this run'),
        sa.Column('outcome', sa.String(), nullable=False, comment='running, success, failed, interrupted'),
        sa.Column('added', sa.Integer(), nullable=False),
        sa.Column('modified', sa.Integer(), nullable=False),
        sa.Column('removed', sa.Integer(), nullable=False),
        sa.Column('merged', sa.Integer(), nullable=False, comment='pending rows merged into posted ones'),
        sa.Column('accounts', sa.Integer(), nullable=False),
        sa.Column('requests', sa.Integer(), nullable=False),
        sa.Column('error_code', sa.String()),
        sa.Column('message', sa.String(), comment='what happened, for a person'),
        sa.Column('process', sa.String(), comment='the process running it (host/pid/start): a running row whose '
                                                  'process is gone was interrupted'),
        sa.Column('set_aside', sa.Integer(), comment='rows the provider sent that cannot be real, kept out of the '
                                                     'store'),
    )
    sa.Table(
        'transactions', meta,
        sa.Column('id', sa.String(), nullable=False, comment="provider:provider's transaction id (unique)"),
        sa.Column('account_id', sa.String(), nullable=False),
        sa.Column('connection_id', sa.String(), nullable=False),
        sa.Column('provider', sa.String(), nullable=False),
        sa.Column('external_id', sa.String(), nullable=False),
        sa.Column('booked_date', sa.Date(), nullable=False, comment="local date in the account's country"),
        sa.Column('authorized_date', sa.Date()),
        sa.Column('amount', sa.Numeric(18, 2), nullable=False, comment='negative = money leaves the user; account '
                                                                       'currency'),
        sa.Column('currency', sa.String(3), nullable=False),
        sa.Column('original_amount', sa.Numeric(18, 2), comment='in the original currency, when it differs'),
        sa.Column('original_currency', sa.String(3)),
        sa.Column('description', sa.String(), nullable=False),
        sa.Column('merchant', sa.String()),
        sa.Column('category', sa.String(), nullable=False, comment="unified category from the provider's"),
        sa.Column('provider_category', sa.String()),
        sa.Column('provider_category_id', sa.String()),
        sa.Column('status', sa.String(), nullable=False, comment='pending or posted'),
        sa.Column('pending_id', sa.String(), comment='the pending row this posted row replaced'),
        sa.Column('payment_method', sa.String(), comment='PIX, TED, DOC, TEV, BOLETO, CARD, ...'),
        sa.Column('installment_number', sa.Integer()),
        sa.Column('installment_total', sa.Integer()),
        sa.Column('user_category', sa.String(), comment="the user's override; wins over category"),
        sa.Column('note', sa.String()),
        sa.Column('deleted_at', sa.DateTime(timezone=True), comment='tombstone: the user deleted it; re-syncs keep it '
                                                                    'hidden'),
        sa.Column('provider_created_at', sa.DateTime(timezone=True)),
        sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        'webhook_events', meta,
        sa.Column('id', sa.String(), primary_key=True, comment='provider:event id'),
        sa.Column('provider', sa.String(), nullable=False),
        sa.Column('event_type', sa.String(), nullable=False),
        sa.Column('connection_id', sa.String()),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.String(), nullable=False, comment='queued, processed, ignored, failed'),
        sa.Column('detail', sa.String(), comment='what the event did, for a person'),
        sa.Column('item_id', sa.String(), comment="the provider's item id the event names"),
        sa.Column('error', sa.String(), comment='why processing failed'),
        sa.Column('processed_at', sa.DateTime(timezone=True)),
        sa.Column('payload', sa.String(), comment='the verified JSON body (ids and codes, no amounts)'),
    )


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT table_name, column_name FROM information_schema.columns "
                                "WHERE table_schema = current_schema()")).all()
    present: dict[str, set[str]] = {}
    for table_name, column_name in rows:
        present.setdefault(str(table_name), set()).add(str(column_name))
    meta = sa.MetaData()
    tables(meta)
    for table in meta.sorted_tables:
        if table.name not in present:
            table.create(bind)
            continue
        for column in table.columns:
            if column.name in present[table.name]:
                continue
            if not column.nullable or column.primary_key:
                raise RuntimeError(f"The store lacks the required column {table.name}.{column.name}, which cannot be "
                                   "added to existing rows; export your data and start from a new database.")
            op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
    if "transactions" in present:  # older code indexed (account_id, booked_date); the schema dropped it as too costly
        op.execute("DROP INDEX IF EXISTS ix_transactions_account_date")


def downgrade() -> None:
    meta = sa.MetaData()
    tables(meta)
    meta.drop_all(op.get_bind())
