"""Pricing and commerce: price books, the quote engine, signed quotes, orders, prepaid
credits and Stripe, entitlements and metering, usage and revenue."""
