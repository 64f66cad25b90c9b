"""The admin HTTP API: a QuartTrio app served by hypercorn under the service nursery.

``create_api`` builds the app for one ``Application``; ``serve_api`` serves it, and
``check_bind_security`` refuses a public address without a token.
"""

from __future__ import annotations

from promptpipe.api.app import create_api
from promptpipe.api.server import InsecureBindError, check_bind_security, serve_api

__all__ = ["InsecureBindError", "check_bind_security", "create_api", "serve_api"]
