"""Prepaid credits: a balance per account and currency, kept as a double-entry journal.

Every movement is one journal entry whose postings sum to zero per currency:

- grant (an admin adds credits): ``customer:<id>`` +a, ``operator:grants`` -a
- purchase (an order paid with credits): ``customer:<id>`` -a, ``sales:<product>`` +a
- refund: the purchase reversed

``credit_balances`` holds each customer account's balance (the sum of its postings) so
a debit is one conditional UPDATE (``... WHERE balance >= amount``): concurrent orders
on one balance serialise on its row and none can overspend; a CHECK constraint
(``balance >= 0``) backs it up in the database itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    String,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from oceanmart.accounts import Account, get_account
from oceanmart.db import Base, UTCDateTime, utcnow
from oceanmart.errors import InsufficientCredits, InvalidInput
from pricing.money import Currency, Money

GRANTS = "operator:grants"


def customer_account(account_id: int) -> str:
    return f"customer:{account_id}"


def sales_account(product_id: str) -> str:
    return f"sales:{product_id}"


class CreditBalance(Base):
    __tablename__ = "credit_balances"
    __table_args__ = (CheckConstraint("balance >= 0", name="non_negative"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JournalEntry(Base):
    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # grant | purchase | refund
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    memo: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(64))


class JournalPosting(Base):
    __tablename__ = "journal_postings"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    ledger_account: Mapped[str] = mapped_column(String(80), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)  # signed minor units


@dataclass(frozen=True, slots=True)
class EntryInfo:
    id: int
    kind: str
    account: str
    amount: Money
    balance: Money  # the customer's balance after the entry
    order_id: str | None
    created_at: datetime


def _entry(
    session: Session,
    *,
    kind: str,
    account_id: int,
    postings: list[tuple[str, int]],
    currency: Currency,
    created_by: str,
    order_id: str | None,
    memo: str,
    now: datetime,
) -> JournalEntry:
    if sum(a for _, a in postings) != 0:  # pragma: no cover - a programming error
        raise AssertionError("journal entry does not balance")
    entry = JournalEntry(
        created_at=now,
        kind=kind,
        account_id=account_id,
        order_id=order_id,
        memo=memo,
        created_by=created_by,
    )
    session.add(entry)
    session.flush()
    session.add_all(
        JournalPosting(entry_id=entry.id, ledger_account=acc, currency=currency.value, amount=a)
        for acc, a in postings
    )
    session.flush()
    return entry


def _credit(session: Session, account_id: int, money: Money, now: datetime) -> None:
    """Add to a balance, creating its row on first use (an upsert, race-free)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(CreditBalance).values(
        account_id=account_id, currency=money.currency.value, balance=money.amount, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["account_id", "currency"],
        set_={"balance": CreditBalance.balance + money.amount, "updated_at": now},
    )
    session.execute(stmt)


def balance(session: Session, account_id: int, cur: Currency) -> Money:
    value = session.scalar(
        select(CreditBalance.balance).where(
            CreditBalance.account_id == account_id, CreditBalance.currency == cur.value
        )
    )
    return Money(int(value or 0), cur)


def balances(session: Session, account_id: int) -> list[Money]:
    rows = session.execute(
        select(CreditBalance.currency, CreditBalance.balance)
        .where(CreditBalance.account_id == account_id)
        .order_by(CreditBalance.currency)
    )
    return [Money(int(b), Currency(c)) for c, b in rows]


def grant_credits(
    session: Session,
    account_name: str,
    money: Money,
    *,
    created_by: str,
    memo: str = "",
    now: datetime | None = None,
) -> EntryInfo:
    """Add prepaid credits to an account (an admin action)."""
    if money.amount <= 0:
        raise InvalidInput("a credit grant must be a positive amount")
    now = now or utcnow()
    acc = get_account(session, account_name)
    _credit(session, acc.id, money, now)
    entry = _entry(
        session,
        kind="grant",
        account_id=acc.id,
        postings=[(customer_account(acc.id), money.amount), (GRANTS, -money.amount)],
        currency=money.currency,
        created_by=created_by,
        order_id=None,
        memo=memo,
        now=now,
    )
    after = balance(session, acc.id, money.currency)
    return EntryInfo(entry.id, "grant", acc.name, money, after, None, now)


def debit_for_order(
    session: Session,
    account_id: int,
    money: Money,
    *,
    order_id: str,
    product_id: str,
    now: datetime,
) -> int:
    """Take an order's amount from the balance, or raise InsufficientCredits; returns
    the journal entry id. The conditional UPDATE is the whole concurrency story."""
    taken = session.execute(
        update(CreditBalance)
        .where(
            CreditBalance.account_id == account_id,
            CreditBalance.currency == money.currency.value,
            CreditBalance.balance >= money.amount,
        )
        .values(balance=CreditBalance.balance - money.amount, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        have = balance(session, account_id, money.currency)
        raise InsufficientCredits(
            f"the order costs {money.display()} but the credit balance is {have.display()}",
            extensions={
                "required": money.as_dict(),
                "balance": have.as_dict(),
                "order": order_id,
            },
        )
    entry = _entry(
        session,
        kind="purchase",
        account_id=account_id,
        postings=[
            (customer_account(account_id), -money.amount),
            (sales_account(product_id), money.amount),
        ],
        currency=money.currency,
        created_by="order",
        order_id=order_id,
        memo=f"order {order_id}",
        now=now,
    )
    return entry.id


def refund_to_credits(
    session: Session,
    account_id: int,
    money: Money,
    *,
    order_id: str,
    product_id: str,
    now: datetime,
) -> int:
    """Return an order's amount to the balance (the purchase entry reversed)."""
    _credit(session, account_id, money, now)
    entry = _entry(
        session,
        kind="refund",
        account_id=account_id,
        postings=[
            (customer_account(account_id), money.amount),
            (sales_account(product_id), -money.amount),
        ],
        currency=money.currency,
        created_by="order",
        order_id=order_id,
        memo=f"refund of order {order_id}",
        now=now,
    )
    return entry.id


@dataclass(frozen=True, slots=True)
class JournalCheck:
    entries: int
    unbalanced_entries: list[int]
    mismatched_balances: list[tuple[str, str, int, int]]  # (account, currency, table, journal)

    @property
    def ok(self) -> bool:
        return not self.unbalanced_entries and not self.mismatched_balances


def check_journal(session: Session) -> JournalCheck:
    """Every entry sums to zero per currency, and every balance row equals the sum of
    its customer's postings."""
    entries = session.scalar(select(func.count(JournalEntry.id))) or 0
    unbalanced = [
        int(e)
        for (e,) in session.execute(
            select(JournalPosting.entry_id)
            .group_by(JournalPosting.entry_id, JournalPosting.currency)
            .having(func.sum(JournalPosting.amount) != 0)
        )
    ]
    sums = {
        (acc, cur): int(total)
        for acc, cur, total in session.execute(
            select(
                JournalPosting.ledger_account,
                JournalPosting.currency,
                func.sum(JournalPosting.amount),
            )
            .where(JournalPosting.ledger_account.like("customer:%"))
            .group_by(JournalPosting.ledger_account, JournalPosting.currency)
        )
    }
    mismatched = []
    names = {row.id: row.name for row in session.execute(select(Account.id, Account.name))}
    seen = set()
    for row in session.scalars(select(CreditBalance)):
        key = (customer_account(row.account_id), row.currency)
        seen.add(key)
        if sums.get(key, 0) != row.balance:
            mismatched.append(
                (names.get(row.account_id, "?"), row.currency, row.balance, sums.get(key, 0))
            )
    for (acc, cur), total in sums.items():
        if (acc, cur) not in seen and total != 0:
            mismatched.append((acc, cur, 0, total))
    return JournalCheck(int(entries), sorted(unbalanced), mismatched)
