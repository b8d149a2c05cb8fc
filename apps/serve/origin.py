"""Which pages and which names may reach the server: the Origin check (CSRF) and the Host check (DNS rebinding).

A browser lets any page it shows send requests to 127.0.0.1. A form or a ``fetch`` of another site reaches
the server carrying that site's ``Origin``; a page whose name an attacker re-points at 127.0.0.1 (DNS
rebinding) reaches it carrying the attacker's name as ``Host``, and may then read the answers too. So
:class:`OriginGuard`, an ASGI middleware in front of every route, refuses both before any work:

* **Host** (421 Misdirected Request). A request that arrived on a loopback address must name a loopback host
  (``localhost``, ``127.x.x.x``, ``[::1]``, any port). One that arrived on another address may name an IP
  address, a loopback name or this machine's name (``socket.gethostname()``): a rebinding page can only send
  a DNS name it owns. The public URL's host and every ``allowed_hosts`` name are accepted on both; ``*``
  accepts any name.
* **Origin** (403). A request that carries ``Origin`` must come from the server's own origin (the scheme and
  accepted ``Host`` of the request, or the public URL's origin) or from a ``cors`` origin (``*``: any).
  Browsers send ``Origin`` on every cross-site POST and ``fetch``; clients that send none (curl, the
  ``openai`` package) are not browsers, and pass.

URLs the server hands out (``response_format=url``) start with :func:`public_base`: the configured public URL,
else the address the connection arrived on, never the request's ``Host``.

The ``check_*`` functions validate the settings once, before any model loads (the CLI calls them first).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from urllib.parse import urlsplit

from prefpaint_sdk.utils import bad_value

from .forms import ApiError

__all__ = ["OriginGuard", "check_allowed_host", "check_cors_origin", "check_public_url", "public_base"]

log = logging.getLogger(__name__)

_DEFAULT_PORT = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


# ---- names and origins --------------------------------------------------------------------------------------
def _ip(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    ip = _ip(host)
    return host == "localhost" if ip is None else ip.is_loopback


def _host_name(text: str) -> str | None:
    """``text`` as a lower-case host (an IPv6 address without brackets), or None if it is no host name."""
    host = text.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        return host if isinstance(_ip(host), ipaddress.IPv6Address) else None
    if _ip(host) is not None:
        return host
    if not host or len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        return None
    return host


def _split_host_header(value: str) -> tuple[str, int | None] | None:
    """``Host: name[:port]`` as (host, port), or None when it is malformed."""
    name, port = value, None
    if value.startswith("["):
        end = value.find("]")
        name, rest = value[: end + 1], value[end + 1:]
        if end < 0 or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    elif value.count(":") == 1:
        name, port_text = value.split(":")
    else:
        port_text = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    host = _host_name(name)
    return None if host is None else (host, port)


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    """An origin (``scheme://host[:port]``) as a comparable (scheme, host, port), or None if it is none."""
    if not origin.isascii() or not origin.isprintable():
        return None
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORT or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    host = _host_name(parts.hostname or "")
    if host is None:
        return None
    return scheme, host, port or _DEFAULT_PORT[scheme]


def _url_origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, _host_name(parts.hostname or "") or "", parts.port or _DEFAULT_PORT[scheme]


# ---- settings, checked before any model loads ---------------------------------------------------------------
def check_public_url(url: str) -> str:
    """The base of the URLs the server hands out, without a trailing ``/``.

    Raises:
        InvalidInputError: not an ``http``/``https`` URL with a host (a path is fine: a proxy's prefix).
    """
    text = str(url)
    fix = "public_url must be an http(s) URL such as https://paint.example.com or http://192.0.2.7:7860"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a port that is no number or out of range
    except ValueError:
        raise bad_value("public_url", f"{fix}; got {text[:100]!r}") from None
    if not text.isascii() or not text.isprintable() or any(c.isspace() for c in text):
        raise bad_value("public_url", f"{fix}; got {text[:100]!r} (use the ASCII or punycode form)")
    if parts.scheme.lower() not in ("http", "https") or _host_name(parts.hostname or "") is None:
        raise bad_value("public_url", f"{fix}; got {text[:100]!r}")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise bad_value("public_url", f"{fix}, without user, query or fragment; got {text[:100]!r}")
    return text.rstrip("/")


def check_allowed_host(name: str) -> str:
    """A host name or IP address the server answers to (lower case; ``*`` for any).

    Raises:
        InvalidInputError: not a host name (no scheme, port or path).
    """
    text = str(name)
    if text.strip() == "*":
        return "*"
    host = _host_name(text) if text.isascii() and text.isprintable() else None
    if host is None:
        raise bad_value("allowed_hosts", f"allowed_hosts must be host names or IP addresses without scheme, port or "
                                         f"path (e.g. paint.example.com), or '*' for any; got {text[:100]!r}")
    return host


def check_cors_origin(origin: str) -> str:
    """A ``cors`` origin as browsers send it (``scheme://host[:port]``), or ``*``.

    Raises:
        InvalidInputError: not an origin (a path, even ``/``, never matches what a browser sends).
    """
    text = str(origin).strip()
    if text == "*":
        return text
    if _origin_key(text) is None or text.endswith("/"):
        raise bad_value("cors", f"cors must be origins such as http://localhost:3000 (scheme, host and port, no "
                                f"path), or '*'; got {text[:100]!r}")
    return text


def public_base(scope, public_url: str | None) -> str:
    """``public_url``, else the address the request's connection arrived on (never its ``Host`` header)."""
    if public_url:
        return public_url
    server = scope.get("server")
    if not server:
        return ""  # e.g. a Unix socket: URLs relative to the server
    host, port = server[0], server[1]
    scheme = scope.get("scheme", "http")
    shown = f"[{host}]" if ":" in str(host) else str(host)
    return f"{scheme}://{shown}" + ("" if port in (None, _DEFAULT_PORT.get(scheme)) else f":{port}")


# ---- the middleware -----------------------------------------------------------------------------------------
class OriginGuard:
    """Refuse a request whose ``Host`` is not a name of this server (421) or whose ``Origin`` is foreign (403).

    Args:
        app: the ASGI app behind it.
        cors: origins allowed to call across sites (checked with :func:`check_cors_origin`); ``*``: any.
        allowed_hosts: more names the server answers to (:func:`check_allowed_host`); ``*``: any.
        public_url: the server's public base (:func:`check_public_url`); its origin and host are its own.
    """

    def __init__(self, app, *, cors=(), allowed_hosts=(), public_url: str | None = None):
        self.app = app
        cors = [check_cors_origin(o) for o in cors or ()]
        hosts = {check_allowed_host(h) for h in allowed_hosts or ()}
        self.any_origin, self.any_host = "*" in cors, "*" in hosts
        self.cors = {_origin_key(o) for o in cors if o != "*"}
        self.hosts = hosts - {"*"}
        self.public = _url_origin(check_public_url(public_url)) if public_url else None
        if self.public is not None:
            self.hosts.add(self.public[1])
        self.machine = {_host_name(socket.gethostname()) or "localhost"}

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refusal = self.refusal(scope)
        if refusal is None:
            return await self.app(scope, receive, send)
        log.info("refused %s %s: %s", scope.get("method", "WEBSOCKET"), scope.get("path", "")[:100], refusal.message)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        from starlette.responses import JSONResponse

        # Connection: close, since the body of a refused request is never read.
        await JSONResponse(refusal.body(), status_code=refusal.status, headers={"Connection": "close"})(
            scope, receive, send)

    def refusal(self, scope) -> ApiError | None:
        """The error that refuses this request, or None when it may go on."""
        hosts, origins = [], []
        for name, value in scope.get("headers", ()):
            if name == b"host":
                hosts.append(value.decode("latin-1"))
            elif name == b"origin":
                origins.append(value.decode("latin-1"))
        server = scope.get("server") or ("", None)
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
        own = {self.public, (scheme, str(server[0]).lower(), server[1])}
        for value in hosts:
            parsed = _split_host_header(value)
            if parsed is None or not self.host_ok(parsed[0], str(server[0])):
                return ApiError(421, f"this server does not answer to the host name {value[:100]!r} (refused as DNS "
                                     "rebinding); connect by its address, or ask its operator to allow the name",
                                param="Host", code="host_not_allowed")
            own.add((scheme, parsed[0], parsed[1] or _DEFAULT_PORT[scheme]))
        for value in origins:
            key = _origin_key(value)
            if not self.any_origin and (key is None or (key not in self.cors and key not in own)):
                return ApiError(403, f"requests from pages of {value[:100]!r} are refused (cross-site request "
                                     "guard): only this server's own page and the origins it allows by CORS may "
                                     "call it", param="Origin", code="origin_not_allowed")
        return None

    def host_ok(self, host: str, arrived_on: str) -> bool:
        if self.any_host or host in self.hosts or _is_loopback(host):
            return True
        if _is_loopback(arrived_on):
            return False
        return _ip(host) is not None or host in self.machine or host == arrived_on.lower()
