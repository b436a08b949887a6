"""OceanMart platform core: settings, database, base errors and the CLI."""

__version__ = "0.1.0"
