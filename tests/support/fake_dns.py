"""Name resolution patched in-process, so URL-policy tests never send traffic off loopback.

``fake_dns(monkeypatch, {"public.test": ["127.0.0.1"]}, public={"127.0.0.1"})``
makes ``public.test`` resolve to 127.0.0.1 and makes the policy treat
127.0.0.1 (and only the addresses in ``public``) as a public address; every
other address keeps the real rule. ``answers`` may also map a name to a
callable returning the next answer (to test a DNS answer that changes).
The returned list records each name resolved, in order.
"""

from __future__ import annotations

import socket
from typing import Callable, Iterable

import pytest

from comfyui_wrapper import urls


def fake_dns(
    monkeypatch: pytest.MonkeyPatch,
    answers: dict[str, list[str] | Callable[[], list[str]]],
    public: Iterable[str] = (),
) -> list[str]:
    asked: list[str] = []
    real_resolve, real_private = socket.getaddrinfo, urls.address_is_private
    public = set(public)

    def resolve(host, port, *args, **kwargs):
        asked.append(host)
        if host in answers:
            found = answers[host]
            addresses = found() if callable(found) else found
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (a, port) if ":" not in a else (a, port, 0, 0)) for a in addresses]
        if host in ("localhost",) or host.replace(".", "").isdigit() or ":" in host:
            return real_resolve(host, port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(urls.socket, "getaddrinfo", resolve)
    monkeypatch.setattr(urls, "address_is_private", lambda address: address not in public and real_private(address))
    return asked
