"""OAuth 2 client credentials for 1CRM, with token refresh.

1CRM's token endpoint is ``POST <entry point>/auth/user/access_token`` with a JSON body
(both of 1CRM's official clients send JSON; NOTES.md §2.2). The answer is
``{"token_type": "Bearer", "expires_in": 86399, "access_token": ..., "refresh_token": ...}``.
Whether a client-credentials answer carries a refresh token is not documented: when it
does, an expired token is refreshed with it, and when that fails (or there is none) the
client-credentials grant runs again, as 1CRM's own WordPress plugin does.

A token is renewed 30 s before it expires, and once more when the API answers 401 to a
token that was thought valid (revoked, or a clock ahead of ours). Every token and the
client secret are registered for redaction (``BearerToken`` registers what it carries).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator

import httpx
from ledgerlink import BearerToken, ConnectionError_, HttpClient, LedgerlinkError

EARLY = 30.0
"""Seconds before its expiry a token is renewed."""


class OAuth2ClientCredentials(httpx.Auth):
    """``Authorization: Bearer <token>``, the token from the client-credentials grant."""

    def __init__(self, token_client: HttpClient, *, client_id: str, client_secret: str, scope: str,
                 path: str = "auth/user/access_token", clock: Callable[[], float] = time.monotonic,
                 connection: str | None = None) -> None:
        self.client = token_client
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.path = path
        self.clock = clock
        self.connection = connection
        self._bearer: BearerToken | None = None
        self._refresh: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.grants: list[str] = []
        """The grants asked for, in order (for tests and logs: no secrets)."""

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({self.client_id!r}, <redacted>)"

    # -- the token ------------------------------------------------------------------------
    def _ask(self, grant: str, **fields: str) -> None:
        body = {"grant_type": grant, "client_id": self.client_id, "client_secret": self._secret,
                "scope": self.scope, **fields}
        self.grants.append(grant)
        response = self.client.post(self.path, json=body, write=False)
        answer = self.client.json(response, write=False)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise ConnectionError_(
                "1CRM's token endpoint answered without an access_token; check the API client's grant types in "
                "1CRM (Administration > API clients: client credentials must be enabled)",
                connection=self.connection)
        try:
            lifetime = float(answer.get("expires_in") or 3600)
        except (TypeError, ValueError):
            lifetime = 3600.0
        refresh = answer.get("refresh_token")
        self._bearer = BearerToken(token)  # registers the token for redaction
        self._refresh = refresh if isinstance(refresh, str) and refresh else None
        if self._refresh:
            BearerToken(self._refresh)  # redacted as well
        self._expires = self.clock() + max(lifetime - EARLY, 1.0)

    def _renew(self) -> None:
        if self._refresh:
            try:
                self._ask("refresh_token", refresh_token=self._refresh)
                return
            except LedgerlinkError:
                self._refresh = None  # refused or expired: the client-credentials grant again
        self._ask("client_credentials")

    def current(self) -> BearerToken:
        with self._lock:
            if self._bearer is None:
                self._ask("client_credentials")
            elif self.clock() >= self._expires:
                self._renew()
            assert self._bearer is not None
            return self._bearer

    def invalidate(self, used: BearerToken) -> None:
        with self._lock:
            if self._bearer is used:
                self._bearer = None
                self._refresh = None

    # -- httpx ------------------------------------------------------------------------------
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        bearer = self.current()
        next(bearer.sync_auth_flow(request))
        response = yield request
        if response.status_code == 401:
            # Revoked or expired early: one new token, one more try.
            self.invalidate(bearer)
            bearer = self.current()
            next(bearer.sync_auth_flow(request))
            yield request



__all__ = ["OAuth2ClientCredentials"]
