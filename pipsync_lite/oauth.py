"""The OAuth authorization-code flow of Spotware's Open API, for ``pipsync-lite auth``.

1. The user opens :func:`authorization_url` and grants the application access to the
   account(s); the browser is redirected to ``redirect_uri?code=<code>`` (the code lives
   one minute).
2. The code arrives pasted (a bare code, or the whole redirected URL), as an argument, or
   caught by :func:`catch_redirect` listening on the redirect URI's own localhost port.
3. :func:`exchange_code` trades it at the token endpoint: ``GET <token_url>?grant_type=
   authorization_code&code=&redirect_uri=&client_id=&client_secret=``, whose JSON answer
   carries ``accessToken``, ``refreshToken``, ``expiresIn``, ``tokenType`` — or ``errorCode``
   and ``description``.

Blocking standard-library code: it runs in a command, never inside the daemon's loop.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from pipsync_lite.config import Config

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


class OAuthError(Exception):
    """The flow failed in a way the user must act on (the message says how)."""


@dataclass(frozen=True, slots=True)
class Grant:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int | None
    token_type: str


def authorization_url(config: Config) -> str:
    c = config.ctrader
    query = urllib.parse.urlencode(
        {"client_id": c.client_id, "redirect_uri": c.oauth.redirect_uri, "scope": "trading", "product": "web"}
    )
    separator = "&" if "?" in c.oauth.authorize_url else "?"
    return f"{c.oauth.authorize_url}{separator}{query}"


def code_from(text: str) -> str:
    """The code from what the user pasted: the code itself, or the URL the browser ended on."""
    text = text.strip()
    if "://" in text or text.startswith("?") or "code=" in text:
        query = urllib.parse.urlsplit(text).query if "://" in text else text.lstrip("?")
        params = urllib.parse.parse_qs(query)
        if "error" in params:
            raise OAuthError(f"the authorization was refused: {params['error'][0]}")
        if "code" not in params:
            raise OAuthError("that URL carries no code= parameter")
        return params["code"][0]
    if not text:
        raise OAuthError("no code given")
    return text


def exchange_code(config: Config, code: str, timeout: float = 20.0) -> Grant:
    c = config.ctrader
    query = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": c.oauth.redirect_uri,
            "client_id": c.client_id,
            "client_secret": c.client_secret.get_secret_value(),
        }
    )
    separator = "&" if "?" in c.oauth.token_url else "?"
    request = urllib.request.Request(f"{c.oauth.token_url}{separator}{query}", headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as err:
        raw = err.read()
        if not raw:
            raise OAuthError(f"the token endpoint answered HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        raise OAuthError(f"cannot reach the token endpoint {c.oauth.token_url}: {getattr(err, 'reason', err)}") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise OAuthError("the token endpoint did not answer JSON") from None
    if not isinstance(answer, dict):
        raise OAuthError("the token endpoint's answer is not a JSON object")
    if answer.get("errorCode") or not answer.get("accessToken"):
        code_name = answer.get("errorCode") or "NO_TOKEN"
        description = answer.get("description") or "no access token in the answer"
        raise OAuthError(f"the token endpoint refused the code: {code_name}: {description}")
    expires = answer.get("expiresIn")
    return Grant(
        access_token=str(answer["accessToken"]),
        refresh_token=str(answer.get("refreshToken") or ""),
        expires_in=int(expires) if isinstance(expires, int | float) else None,
        token_type=str(answer.get("tokenType") or "bearer"),
    )


def catch_redirect(redirect_uri: str, timeout: float, ready: threading.Event | None = None) -> str:
    """Serve the redirect URI's localhost port until the browser arrives with a code."""
    parts = urllib.parse.urlsplit(redirect_uri)
    if parts.scheme != "http" or parts.hostname not in LOCAL_HOSTS:
        raise OAuthError(f"--listen needs an http://localhost redirect URI, not {redirect_uri}")
    path = parts.path or "/"
    found: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urllib.parse.urlsplit(self.path)
            params = urllib.parse.parse_qs(url.query)
            if url.path != path or not ({"code", "error"} & set(params)):
                self.send_error(404)
                return
            if "error" in params:
                found["error"] = params["error"][0]
                text = "pipsync-lite: the authorization was refused. Go back to the terminal."
            else:
                found["code"] = params["code"][0]
                text = "pipsync-lite received the authorization. You can close this tab."
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # the code is not for logs
            return

    host = "::1" if parts.hostname in ("::1", "[::1]") else "127.0.0.1"
    server_class = _IPv6Server if host == "::1" else http.server.HTTPServer
    with server_class((host, parts.port or 80), Handler) as server:
        server.timeout = 0.5
        if ready is not None:
            ready.set()
        deadline = time.monotonic() + timeout
        while not found and time.monotonic() < deadline:
            server.handle_request()  # returns after one request, or after server.timeout
    if "error" in found:
        raise OAuthError(f"the authorization was refused: {found['error']}")
    if "code" not in found:
        raise OAuthError(f"no redirect arrived within {int(timeout)} s")
    return found["code"]


class _IPv6Server(http.server.HTTPServer):
    address_family = socket.AF_INET6
