"""Thin routers: parse, call a service, return a response model."""
