"""Catalog: products, versions and variables; selections; the subset engine."""
