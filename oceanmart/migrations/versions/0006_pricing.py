"""pricing: price books, quotes, orders, credits journal, Stripe events, console sessions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_index(op.f("ix_stripe_events_order_id"), "stripe_events", ["order_id"], unique=False)
    op.create_table(
        "credit_balances",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_credit_balances_non_negative")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_credit_balances_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "currency", name=op.f("pk_credit_balances")),
    )
    op.create_table(
        "customer_profiles",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_customer_profiles_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_customer_profiles")),
    )
    op.create_table(
        "journal_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("memo", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_journal_entries_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entries")),
    )
    op.create_index(
        op.f("ix_journal_entries_account_id"), "journal_entries", ["account_id"], unique=False
    )
    op.create_index(
        op.f("ix_journal_entries_order_id"), "journal_entries", ["order_id"], unique=False
    )
    op.create_table(
        "price_books",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_price_books_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_books")),
        sa.UniqueConstraint("product_id", "version", name=op.f("uq_price_books_product_id")),
    )
    op.create_index(op.f("ix_price_books_product_id"), "price_books", ["product_id"], unique=False)
    op.create_table(
        "journal_postings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("ledger_account", sa.String(length=80), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entries.id"],
            name=op.f("fk_journal_postings_entry_id_journal_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_postings")),
    )
    op.create_index(
        op.f("ix_journal_postings_entry_id"), "journal_postings", ["entry_id"], unique=False
    )
    op.create_index(
        op.f("ix_journal_postings_ledger_account"),
        "journal_postings",
        ["ledger_account"],
        unique=False,
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name=op.f("fk_web_sessions_key_id_api_keys")
        ),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_web_sessions")),
    )
    op.create_index(op.f("ix_web_sessions_key_id"), "web_sessions", ["key_id"], unique=False)
    op.create_table(
        "quotes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("subset_id", sa.String(length=64), nullable=False),
        sa.Column("price_book_id", sa.Integer(), nullable=False),
        sa.Column("offer", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("free_cells", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=66), nullable=False),
        sa.Column("signature", sa.String(length=132), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_quotes_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["price_book_id"], ["price_books.id"], name=op.f("fk_quotes_price_book_id_price_books")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_quotes_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["subset_id"], ["subsets.id"], name=op.f("fk_quotes_subset_id_subsets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quotes")),
    )
    op.create_index(op.f("ix_quotes_account_id"), "quotes", ["account_id"], unique=False)
    op.create_index(op.f("ix_quotes_product_id"), "quotes", ["product_id"], unique=False)
    op.create_table(
        "orders",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("quote_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("subset_id", sa.String(length=64), nullable=True),
        sa.Column("offer", sa.String(length=16), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=True),
        sa.Column("price_book_id", sa.Integer(), nullable=False),
        sa.Column("payment", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("free_cells", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("provider_share", sa.BigInteger(), nullable=True),
        sa.Column("operator_share", sa.BigInteger(), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column("stripe_session_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_payment_intent", sa.String(length=255), nullable=True),
        sa.Column("refund_id", sa.String(length=255), nullable=True),
        sa.Column("failure", sa.String(length=300), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_orders_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["price_book_id"], ["price_books.id"], name=op.f("fk_orders_price_book_id_price_books")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_orders_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["quote_id"], ["quotes.id"], name=op.f("fk_orders_quote_id_quotes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("quote_id", name=op.f("uq_orders_quote_id")),
    )
    op.create_index(op.f("ix_orders_account_id"), "orders", ["account_id"], unique=False)
    op.create_index(op.f("ix_orders_product_id"), "orders", ["product_id"], unique=False)
    op.create_index(op.f("ix_orders_status"), "orders", ["status"], unique=False)
    op.create_index(
        op.f("ix_orders_stripe_payment_intent"), "orders", ["stripe_payment_intent"], unique=False
    )
    op.create_index(
        op.f("ix_orders_stripe_session_id"), "orders", ["stripe_session_id"], unique=False
    )
    op.create_table(
        "order_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=False),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_transitions_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_transitions")),
    )
    op.create_index(
        op.f("ix_order_transitions_order_id"), "order_transitions", ["order_id"], unique=False
    )
    with op.batch_alter_table("entitlements") as batch:
        batch.add_column(sa.Column("subset_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("order_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("component", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("quota_cells", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("quota_used", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("quota_period", sa.String(length=7), nullable=True))
        batch.create_index(batch.f("ix_entitlements_order_id"), ["order_id"], unique=False)
        batch.create_foreign_key(
            batch.f("fk_entitlements_subset_id_subsets"), "subsets", ["subset_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("entitlements") as batch:
        batch.drop_constraint(batch.f("fk_entitlements_subset_id_subsets"), type_="foreignkey")
        batch.drop_index(batch.f("ix_entitlements_order_id"))
        for column in (
            "quota_period",
            "quota_used",
            "quota_cells",
            "component",
            "order_id",
            "subset_id",
        ):
            batch.drop_column(column)
    for index, table in (
        ("ix_order_transitions_order_id", "order_transitions"),
        ("ix_orders_stripe_session_id", "orders"),
        ("ix_orders_stripe_payment_intent", "orders"),
        ("ix_orders_status", "orders"),
        ("ix_orders_product_id", "orders"),
        ("ix_orders_account_id", "orders"),
        ("ix_quotes_product_id", "quotes"),
        ("ix_quotes_account_id", "quotes"),
        ("ix_web_sessions_key_id", "web_sessions"),
        ("ix_journal_postings_ledger_account", "journal_postings"),
        ("ix_journal_postings_entry_id", "journal_postings"),
        ("ix_price_books_product_id", "price_books"),
        ("ix_journal_entries_order_id", "journal_entries"),
        ("ix_journal_entries_account_id", "journal_entries"),
        ("ix_stripe_events_order_id", "stripe_events"),
    ):
        op.drop_index(op.f(index), table_name=table)
    for table in (
        "order_transitions",
        "orders",
        "quotes",
        "web_sessions",
        "journal_postings",
        "price_books",
        "journal_entries",
        "customer_profiles",
        "credit_balances",
        "stripe_events",
    ):
        op.drop_table(table)
