"""HTTP API: the FastAPI app factory, auth, routers and problem+json errors."""

from api.app import create_app

__all__ = ["create_app"]
