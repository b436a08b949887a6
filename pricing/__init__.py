"""Pricing and commerce: entitlements today; price books, quotes, orders and gateways next."""
