"""Which URLs the container may fetch, and fetching them with that rule kept.

Workflows and inputs come from strangers, and the container's own ComfyUI
listens on 127.0.0.1: a URL such as ``http://127.0.0.1:8188/interrupt`` or a
cloud metadata address must never be requested on a user's behalf.

Why it is built this way:

- **One parse.** ``parse_target`` takes the host, port and scheme from the URL
  exactly as requests prepares it and urllib3 connects to it (``parse_url`` on
  the prepared URL), and refuses any URL whose parses disagree with
  ``urllib.parse`` or that holds a form where they could (a backslash, userinfo
  ``@``, a percent-encoded host, a zone id, an odd port or IP literal form).
  Every decision — the address check, the token, the cache key, what the logs
  show — is taken from that ``Target``, and the request is sent to its URL.
- **Connect to the checked address.** ``check_target`` resolves the host once
  and checks every address; the session from ``new_session`` then connects
  only to that address (``PinnedSession.pin``), keeping the name for TLS SNI,
  certificate checks and the Host header. A connection to a host that was not
  pinned is refused, so a second DNS answer (DNS rebinding) cannot slip in.
  Sessions ignore the environment (no proxies, no ``.netrc`` credentials).
- **Every redirect hop** is parsed, resolved, checked and pinned again;
  caller headers (tokens) go only to the first hop's exact origin.
- **A scope per prediction** (``Scope``): a deadline and a cancel shared by all
  its downloads. ``Scope.call`` runs blocking network work in a helper thread
  and waits in short slices, so an asynchronous cancel (Cog's) lands within a
  fraction of a second; aborting shuts down every socket the scope opened, so
  blocked reads end, partial files are removed and locks released.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Literal, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .errors import (
    DownloadError,
    PredictionInterruptedError,
    PredictionTimeoutError,
    UnsafeInputError,
    redact,
    redacted_repr,
)
from .logs import get_logger

log = get_logger(__name__)

# Cloud metadata endpoints that are not covered by the address rules below.
_METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data", "metadata.azure.internal"}
MAX_REDIRECTS = 5

_T = TypeVar("_T")
AbortReason = Literal["deadline", "cancel"]  # why a Scope stopped its downloads
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$")
_FORBIDDEN_CHARS = re.compile(r"[\\\x00-\x1f\x7f]")

# Blocks that are never fetched, besides what ipaddress calls non-global.
_BLOCKED_V4 = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "100.100.100.200/32",
)]
_BLOCKED_V6 = [ipaddress.ip_network(n) for n in (
    "::/128", "::1/128", "::/96", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "fd00:ec2::254/128",
)]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TEREDO = ipaddress.ip_network("2001::/32")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")


@dataclass(frozen=True)
class UrlPolicy:
    """What a fetch may reach; ``allow_private`` is for tests and trusted LANs."""

    allow_private: bool = False
    timeout_s: float = 30.0  # to connect, and between any two reads
    total_timeout_s: float = 300.0  # for a whole body: a server trickling bytes cannot hold a prediction


def is_http_url(value: Any) -> bool:
    return isinstance(value, str) and value[:8].lower().startswith(("http://", "https://"))


# --- one parse ------------------------------------------------------------------------


@redacted_repr
@dataclass(frozen=True)
class Target:
    """A URL as the HTTP client will send it: the only parse any decision is taken from.

    It holds the raw URL (``raw_url``, secrets included) because that is what
    is sent; only the request and the cache key read it. ``str()``, ``repr()``
    and ``shown`` give the URL with its secrets hidden, so formatting a Target
    into any text cannot leak a token.
    """

    raw_url: str  # the prepared URL requests sends: send it; it shows only redacted (str, repr, shown)
    scheme: Literal["http", "https"]
    host: str  # lower case, no brackets, no trailing dot: what the connection is made to
    port: int

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @property
    def shown(self) -> str:
        """The URL for messages and logs: secrets hidden, the host contacted visible."""
        return redact(self.raw_url)

    def __str__(self) -> str:
        return self.shown


def _refuse(url: str, reason: str, fix: str = "Give a plain http(s) URL: scheme://host[:port]/path?query.") -> UnsafeInputError:
    return UnsafeInputError(f"URL {url!r} is refused: {reason}.", fix=fix, url=url)


def _normal_host(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


def parse_target(url: str) -> Target:
    """The Target of ``url``, or UnsafeInputError when it is not one unambiguous http(s) URL."""
    if not isinstance(url, str) or not url:
        raise _refuse(str(url), "it is empty or not text")
    if _FORBIDDEN_CHARS.search(url):
        raise _refuse(url, "it contains a backslash or a control character, which URL parsers read differently")
    split = urlsplit(url)
    scheme = split.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeInputError(
            f"URL {url!r} uses the scheme {split.scheme or '(none)'!r}; only http and https are fetched.",
            fix="Give an http:// or https:// URL.", url=url,
        )
    if "@" in split.netloc:
        raise _refuse(url, "it carries user information ('user@host'), which can hide the real host",
                      fix="Remove the 'user:password@' part; pass credentials as a ?token= query parameter if the "
                      "server accepts one.")
    try:
        split_port = split.port
    except ValueError:
        raise _refuse(url, "its port is not one number from 1 to 65535") from None
    host_text = split.hostname or ""
    if not host_text:
        raise _refuse(url, "it has no host name", fix="Give a complete http(s) URL.")
    if "%" in split.netloc:
        raise _refuse(url, "its host is percent-encoded or carries an IPv6 zone id")
    if split_port == 0 or (":" in split.netloc.rsplit("]", 1)[-1] and not split.netloc.rsplit(":", 1)[1].isdigit()):
        raise _refuse(url, "its port is not one number from 1 to 65535")
    try:
        prepared = requests.Request("GET", url).prepare()
        parsed = urllib3.util.parse_url(prepared.url or "")
    except (requests.RequestException, urllib3.exceptions.HTTPError, ValueError, UnicodeError):
        raise _refuse(url, "it cannot be parsed as an http(s) URL") from None
    host = _normal_host(parsed.host or "")
    port = parsed.port or (443 if scheme == "https" else 80)
    try:
        expected = _normal_host(host_text if host_text.isascii() else host_text.encode("idna").decode("ascii"))
    except UnicodeError:
        raise _refuse(url, "its host is not a valid international domain name") from None
    if (parsed.scheme or "").lower() != scheme or host != expected or parsed.auth \
            or port != (split_port or (443 if scheme == "https" else 80)):
        raise _refuse(url, "URL parsers disagree about its host or port")
    _check_host_form(url, host)
    return Target(raw_url=prepared.url or url, scheme="https" if scheme == "https" else "http", host=host, port=port)


def _check_host_form(url: str, host: str) -> None:
    """A DNS name, a dotted-quad IPv4 or an IPv6 literal; nothing in between (0x7f.1, 2130706433)."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        raise _refuse(url, "its host is an IP address written in an unusual form (hex, octal, integer or short)",
                      fix="Write IPv4 addresses as four decimal numbers, or use a host name.")
    if not _HOST_NAME.match(host):
        raise _refuse(url, "its host is not a valid host name")


# --- addresses ----------------------------------------------------------------------------


def _embedded_v4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, NAT64, 6to4, Teredo, compatible)."""
    found = []
    if ip.ipv4_mapped:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour:
        found.append(ip.sixtofour)
    if ip in _TEREDO and ip.teredo:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def address_is_private(address: str) -> bool:
    """True unless ``address`` is a public unicast address (IPv4 or IPv6, embedded forms checked)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True  # a zone id or garbage: never connect
    if isinstance(ip, ipaddress.IPv6Address):
        if any(address_is_private(str(v4)) for v4 in _embedded_v4(ip)):
            return True
        if ip in _NAT64 or ip in _SIXTOFOUR:
            return False  # the embedded IPv4 address is public
        blocked = _BLOCKED_V6
    else:
        blocked = _BLOCKED_V4
    if any(ip in net for net in blocked):
        return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_link_local


def check_target(target: Target, policy: UrlPolicy) -> str:
    """Resolve the target's host once, check every address; return the address to connect to."""
    if not policy.allow_private and target.host in _METADATA_HOSTS:
        raise UnsafeInputError(
            f"URL {target.shown!r} points at a cloud metadata service, which is never fetched.",
            fix="Use a public URL.", url=target.shown,
        )
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DownloadError(
            f"Could not resolve the host {target.host!r} of URL {target.shown!r}: {getattr(exc, 'strerror', None) or exc}.",
            fix="Check the spelling of the URL's host name.", url=target.shown,
        ) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise DownloadError(f"The host {target.host!r} of URL {target.shown!r} has no address.", url=target.shown)
    if not policy.allow_private:
        for address in addresses:
            if address_is_private(address):
                raise UnsafeInputError(
                    f"URL {target.shown!r} resolves to {address}, a loopback, private, link-local, reserved or "
                    "metadata address; such URLs are refused so a workflow cannot reach services inside the container.",
                    fix="Use a public URL, or set CW_ALLOW_PRIVATE_URLS=1 if you run the container on a trusted network.",
                    url=target.shown,
                )
    return addresses[0]


def check_url(url: str, policy: UrlPolicy) -> Target:
    """Parse and check ``url`` (no connection); raise UnsafeInputError unless it is fetchable."""
    target = parse_target(url)
    check_target(target, policy)
    return target


# --- credentials ----------------------------------------------------------------------------

# The exact hosts each operator token is sent to (https, port 443, no subdomains a URL could pick).
TOKEN_HOSTS = {"hf_token": frozenset({"huggingface.co", "hf.co"}), "civitai_token": frozenset({"civitai.com"})}


def token_header(target: Target, *, hf_token: str | None, civitai_token: str | None) -> dict[str, str]:
    """The Authorization header for ``target`` (an operator token), or {} — decided from the one parse."""
    if target.scheme != "https" or target.port != 443:
        return {}
    if hf_token and target.host in TOKEN_HOSTS["hf_token"]:
        return {"Authorization": f"Bearer {hf_token}"}
    if civitai_token and target.host in TOKEN_HOSTS["civitai_token"]:
        return {"Authorization": f"Bearer {civitai_token}"}
    return {}


# --- a prediction's scope: deadline, cancel, sockets ------------------------------------------


class Scope:
    """One prediction's network work: its deadline, its cancel, and the sockets to shut when either comes."""

    def __init__(self, deadline: float | None = None, *, what: str = "the prediction") -> None:
        self.deadline = deadline  # time.monotonic() value, None = no deadline
        self.what = what
        self.aborted = threading.Event()
        self.reason: AbortReason | None = None
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._callbacks: list[Callable[[], None]] = []

    @classmethod
    def within(cls, seconds: float | None) -> "Scope":
        return cls(None if not seconds or seconds <= 0 else time.monotonic() + seconds)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
        if self.aborted.is_set():
            _shutdown(sock)

    def on_abort(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)
        if self.aborted.is_set():
            callback()

    def abort(self, reason: AbortReason) -> None:
        """Stop everything: blocked reads end at once (their sockets are shut down)."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            self.aborted.set()
            sockets, callbacks = list(self._sockets), list(self._callbacks)
        for sock in sockets:
            _shutdown(sock)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - an abort must reach every download
                pass

    def expired(self) -> bool:
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            self.abort("deadline")
        return self.aborted.is_set()

    def error(self) -> Exception:
        if self.reason == "deadline":
            return PredictionTimeoutError(
                f"{self.what[:1].upper()}{self.what[1:]} ran past its deadline (CW_PREDICTION_TIMEOUT) while "
                "downloading; the downloads were stopped and their partial files removed.",
                fix="Host the files somewhere faster, or raise CW_PREDICTION_TIMEOUT.",
            )
        return PredictionInterruptedError("The prediction was cancelled while downloading; partial files were removed.")

    def check(self) -> None:
        """Raise the scope's error once it is aborted or past its deadline."""
        if self.expired():
            raise self.error()

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake (and raise) at an abort or the deadline."""
        remaining = self.remaining()
        if remaining is not None:
            seconds = min(seconds, max(0.0, remaining))
        self.aborted.wait(seconds)
        self.check()

    def call(self, fn: Callable[..., _T], *args: Any, grace_s: float = 1.5, **kwargs: Any) -> _T:
        """``fn(*args, **kwargs)`` in a helper thread, waited for in short slices.

        An asynchronous exception (Cog's cancel) only fires while this thread
        runs Python code, never inside a blocking read or a lock wait; waiting
        in 0.1 s slices lets it land at once. On a cancel or the deadline the
        scope is aborted, the helper gets ``grace_s`` to clean up (partial
        files, locks), and the cancel (or PredictionTimeoutError) is raised.
        """
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=run, name="scope-call", daemon=True).start()
        try:
            while not done.wait(0.1):
                if self.expired():
                    done.wait(grace_s)
                    raise self.error()
        except BaseException:
            self.abort(self.reason or "cancel")
            done.wait(grace_s)
            raise
        if "error" in box:
            error = box.pop("error")
            if self.aborted.is_set() and not isinstance(error, (PredictionTimeoutError, PredictionInterruptedError)):
                raise self.error() from None
            raise error
        return box["value"]


def _shutdown(sock: socket.socket) -> None:
    # Closing a socket does not wake a read blocked on it in another thread; shutting it down does.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# --- sessions that connect only to checked addresses --------------------------------------------


class _PinnedMixin:
    """A urllib3 connection that connects to the address pinned for its host, or not at all."""

    pins: dict[tuple[str, int], str] = {}
    scope: Scope | None = None

    def _new_conn(self) -> socket.socket:  # type: ignore[override]
        name = self._dns_host  # type: ignore[has-type]
        address = self.pins.get((_normal_host(name), self.port))  # type: ignore[attr-defined]
        if address is None:
            raise urllib3.exceptions.NewConnectionError(self, "the address of this host was not checked")  # type: ignore[arg-type]
        if self.scope is not None and self.scope.aborted.is_set():
            raise urllib3.exceptions.NewConnectionError(self, "the download was stopped")  # type: ignore[arg-type]
        self._dns_host = address
        try:
            sock = super()._new_conn()  # type: ignore[misc]
        finally:
            self._dns_host = name
        if self.scope is not None:
            self.scope.register(sock)
        return sock

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        # For https the TLS socket replaces the one _new_conn made (which is then detached): register it too.
        if self.scope is not None and self.sock is not None:  # type: ignore[attr-defined]
            self.scope.register(self.sock)  # type: ignore[attr-defined]


class _PinnedAdapter(HTTPAdapter):
    def __init__(self, pins: dict[tuple[str, int], str], scope: Scope | None) -> None:
        self._pins, self._scope = pins, scope
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        extra = {"pins": self._pins, "scope": self._scope}
        http = type("PinnedHTTPConnection", (_PinnedMixin, HTTPConnection), extra)
        https = type("PinnedHTTPSConnection", (_PinnedMixin, HTTPSConnection), extra)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        raise requests.exceptions.InvalidProxyURL("proxies are not used for fetches on a user's behalf")


class PinnedSession(requests.Session):
    """A Session that connects only to addresses ``pin`` recorded, ignoring proxies and .netrc."""

    def __init__(self, scope: Scope | None = None) -> None:
        super().__init__()
        self.trust_env = False
        self.scope = scope
        self.pins: dict[tuple[str, int], str] = {}
        adapter = _PinnedAdapter(self.pins, scope)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def pin(self, target: Target, address: str) -> None:
        self.pins[(target.host, target.port)] = address

    def checked(self, url: str, policy: UrlPolicy) -> Target:
        """Parse, resolve, check and pin ``url``: the next request to it goes to the checked address."""
        if self.scope is not None:
            self.scope.check()
        target = parse_target(url)
        self.pin(target, check_target(target, policy))
        return target


def new_session(scope: Scope | None = None) -> PinnedSession:
    return PinnedSession(scope)


def next_hop(current: Target, response: requests.Response) -> str:
    """The absolute URL a redirect points to (parsed and checked by the caller, like any URL)."""
    location = response.headers.get("location", "")
    return urljoin(current.raw_url, location.strip())


def open_url(
    session: PinnedSession,
    url: str,
    policy: UrlPolicy,
    *,
    headers: dict[str, str] | None = None,
    stream: bool = True,
    method: str = "GET",
) -> tuple[requests.Response, Target]:
    """GET ``url`` following redirects by hand; every hop is parsed, checked and pinned.

    Returns the response and the Target it came from (the host contacted).
    Caller headers go only to the first hop's exact origin (scheme, host, port).
    Bodies are asked for without Content-Encoding.
    """
    if not isinstance(session, PinnedSession):
        raise TypeError("open_url needs a session from urls.new_session()")
    first = current = session.checked(url, policy)
    for _ in range(MAX_REDIRECTS + 1):
        sent = {"Accept-Encoding": "identity", **((headers or {}) if current.origin == first.origin else {})}
        try:
            response = session.request(
                method, current.raw_url, headers=sent, stream=stream, allow_redirects=False,
                timeout=(policy.timeout_s, policy.timeout_s),
            )
        except requests.Timeout:
            raise DownloadError(
                f"URL {current.shown!r} (host {current.host}) did not answer within {policy.timeout_s:g} s.",
                fix="Check that the URL is reachable, or raise CW_URL_TIMEOUT / CW_DOWNLOAD_TIMEOUT.", url=current.shown,
            ) from None
        except requests.RequestException as exc:
            if session.scope is not None:
                session.scope.check()
            raise DownloadError(
                f"Could not connect to {current.shown!r} (host {current.host}): {type(exc).__name__}.", url=current.shown,
            ) from None
        if response.is_redirect and "location" in response.headers:
            response.close()
            current = session.checked(next_hop(current, response), policy)
            continue
        log.info("Fetching %s from host %s (%s).", url, current.host,
                 session.pins.get((current.host, current.port), "?"))
        return response, current
    raise DownloadError(f"URL {url!r} redirected more than {MAX_REDIRECTS} times.", url=url)


def refuse_encoding(response: requests.Response, target: Target, what: str) -> None:
    """Refuse a body sent with a Content-Encoding although identity was asked for (no decompression bombs)."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        response.close()
        raise DownloadError(
            f"{what} {target.shown!r} (host {target.host}) was sent with Content-Encoding {encoding[:20]!r} although "
            "an unencoded body was asked for; encoded bodies are refused.",
            fix="Host the file on a server that serves it as is.", url=target.shown,
        )


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket under a streaming response (urllib3 -> http.client -> SocketIO), if reachable."""
    try:
        sock = response.raw._fp.fp.raw._sock  # type: ignore[union-attr]
    except AttributeError:
        return None
    return sock if isinstance(sock, socket.socket) else None


class BodyDeadline:
    """Close a streaming response whose body takes longer than ``policy.total_timeout_s``.

    Read timeouts only bound the gap between two reads, so a server trickling a
    byte every few seconds could hold a prediction for hours; and a blocked read
    cannot check a clock itself. A timer closes the connection instead, the read
    fails, and leaving the block raises one clear DownloadError.
    """

    def __init__(self, response: requests.Response, url: str, policy: UrlPolicy) -> None:
        self.url, self.limit, self.expired = url, policy.total_timeout_s, False
        self._socket = _socket_of(response)
        self._timer = threading.Timer(policy.total_timeout_s, self._expire, args=(response,))
        self._timer.daemon = True

    def _expire(self, response: requests.Response) -> None:
        self.expired = True
        if self._socket is not None:
            _shutdown(self._socket)
        response.close()

    def __enter__(self) -> "BodyDeadline":
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        if self.expired:
            raise DownloadError(
                f"URL {self.url!r} took longer than {self.limit:g} s to download.",
                fix="Host the file somewhere faster, or raise CW_URL_TOTAL_TIMEOUT.", url=self.url,
            ) from None


def fetch_text(
    url: str, policy: UrlPolicy, *, limit: int = 64 * 1024**2, what: str = "workflow_json", scope: Scope | None = None,
) -> str:
    """A small UTF-8 document (a workflow given as a URL), fetched under ``policy``.

    The body is never quoted in an error: it may come from a service that should not have answered.
    """
    with new_session(scope) as session:
        response, target = open_url(session, url, policy)
        with response:
            if response.status_code != 200:
                raise DownloadError(f"{what} URL {target.shown!r} (host {target.host}) answered HTTP "
                                    f"{response.status_code}.", url=target.shown)
            refuse_encoding(response, target, f"{what} URL")
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise DownloadError(f"{what} URL {target.shown!r} is larger than {limit >> 20} MB.", url=target.shown)
            body = bytearray()
            try:
                with BodyDeadline(response, url, policy):
                    for chunk in response.iter_content(1 << 16):
                        body += chunk
                        if len(body) > limit:
                            raise DownloadError(f"{what} URL {target.shown!r} is larger than {limit >> 20} MB.",
                                                url=target.shown)
            except requests.RequestException as exc:
                if scope is not None:
                    scope.check()
                raise DownloadError(f"{what} URL {target.shown!r} stopped sending ({type(exc).__name__}).",
                                    url=target.shown) from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise DownloadError(f"{what} URL {target.shown!r} did not return UTF-8 text.", url=target.shown) from None
