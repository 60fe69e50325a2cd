"""The HTTP API: ``create_app(engine, keys)`` returns a FastAPI app (see docs/http-api.md)."""

from wfapps.api.app import CONSOLE_DIR, create_app
from wfapps.api.services import ApiOptions
from wfapps.keys import authenticate, create_api_key

__all__ = ["CONSOLE_DIR", "ApiOptions", "authenticate", "create_api_key", "create_app"]
