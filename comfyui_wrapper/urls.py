"""Which URLs the container may fetch, and fetching them with that rule kept.

Workflows and inputs come from strangers, and the container's own ComfyUI
listens on 127.0.0.1: a URL such as ``http://127.0.0.1:8188/interrupt`` or a
cloud metadata address must never be requested on a user's behalf. The check
runs on every address the host name resolves to, and again on every redirect
hop, because a public URL may redirect to a private one.

Known gap, accepted: a host whose DNS answer changes between our check and the
connection (DNS rebinding) is not caught; the redirect and resolve checks stop
the common cases.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from .errors import DownloadError, UnsafeInputError, redact

# Cloud metadata endpoints that are not covered by "private" or "link-local".
_METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}
_METADATA_ADDRESSES = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class UrlPolicy:
    """What a fetch may reach; ``allow_private`` is for tests and trusted LANs."""

    allow_private: bool = False
    timeout_s: float = 30.0  # to connect, and between any two reads
    total_timeout_s: float = 300.0  # for a whole body: a server trickling bytes cannot hold a prediction


def is_http_url(value: Any) -> bool:
    return isinstance(value, str) and value[:8].lower().startswith(("http://", "https://"))


def _address_is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or ip in _METADATA_ADDRESSES
        or ip in ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
    )


def check_url(url: str, policy: UrlPolicy) -> None:
    """Raise UnsafeInputError unless ``url`` is http(s) to a public address."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeInputError(
            f"URL {redact(url)!r} uses the scheme {parts.scheme or '(none)'!r}; only http and https are fetched.",
            fix="Give an http:// or https:// URL.", url=url,
        )
    host = parts.hostname
    if not host:
        raise UnsafeInputError(f"URL {redact(url)!r} has no host name.", fix="Give a complete http(s) URL.", url=url)
    if policy.allow_private:
        return
    if host.lower().rstrip(".") in _METADATA_HOSTS:
        raise UnsafeInputError(
            f"URL {redact(url)!r} points at a cloud metadata service, which is never fetched.",
            fix="Use a public URL.", url=url,
        )
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DownloadError(
            f"Could not resolve the host {host!r} of URL {redact(url)!r}: {exc.strerror}.",
            fix="Check the spelling of the URL's host name.", url=url,
        ) from None
    for info in infos:
        address = info[4][0]
        if _address_is_private(address):
            raise UnsafeInputError(
                f"URL {redact(url)!r} resolves to {address}, a loopback, private, link-local or metadata "
                "address; such URLs are refused so a workflow cannot reach services inside the container.",
                fix="Use a public URL, or set CW_ALLOW_PRIVATE_URLS=1 if you run the container on a trusted network.",
                url=url,
            )


def open_url(
    session: requests.Session,
    url: str,
    policy: UrlPolicy,
    *,
    headers: dict[str, str] | None = None,
    stream: bool = True,
    method: str = "GET",
) -> requests.Response:
    """GET ``url`` following redirects by hand, checking every hop with check_url.

    Headers carrying credentials are sent only while the request stays on the
    original host: a redirect to another host drops them (requests does the
    same for Authorization; we do it for every header the caller gave).
    """
    original_host = urlsplit(url).hostname
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        check_url(current, policy)
        same_host = urlsplit(current).hostname == original_host
        try:
            response = session.request(
                method, current, headers=(headers or {}) if same_host else {},
                stream=stream, allow_redirects=False, timeout=policy.timeout_s,
            )
        except requests.Timeout:
            raise DownloadError(
                f"URL {redact(current)!r} did not answer within {policy.timeout_s:g} s.",
                fix="Check that the URL is reachable, or raise CW_URL_TIMEOUT / CW_DOWNLOAD_TIMEOUT.", url=current,
            ) from None
        except requests.RequestException as exc:
            raise DownloadError(
                f"Could not connect to {redact(current)!r}: {type(exc).__name__}.", url=current,
            ) from None
        if response.is_redirect and "location" in response.headers:
            response.close()
            current = urljoin(current, response.headers["location"])
            continue
        return response
    raise DownloadError(f"URL {redact(url)!r} redirected more than {MAX_REDIRECTS} times.", url=url)


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
        # Closing a socket does not wake a read blocked on it in another thread; shutting it down does.
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        response.close()

    def __enter__(self) -> "BodyDeadline":
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        if self.expired:
            raise DownloadError(
                f"URL {redact(self.url)!r} took longer than {self.limit:g} s to download.",
                fix="Host the file somewhere faster, or raise CW_URL_TOTAL_TIMEOUT.", url=redact(self.url),
            ) from None


def fetch_text(url: str, policy: UrlPolicy, *, limit: int = 64 * 1024**2, what: str = "workflow_json") -> str:
    """A small UTF-8 document (a workflow given as a URL), fetched under ``policy``."""
    with requests.Session() as session, open_url(session, url, policy) as response:
        if response.status_code != 200:
            raise DownloadError(f"{what} URL {redact(url)!r} answered HTTP {response.status_code}.", url=url)
        body = bytearray()
        with BodyDeadline(response, url, policy):
            for chunk in response.iter_content(1 << 16):
                body += chunk
                if len(body) > limit:
                    raise DownloadError(f"{what} URL {redact(url)!r} is larger than {limit >> 20} MB.", url=url)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise DownloadError(f"{what} URL {redact(url)!r} did not return UTF-8 text.", url=url) from None
