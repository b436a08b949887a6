"""Ledger: the append-only Merkle log of purchases and accesses (arrives with its issue)."""
