"""Hostile URLs and what the URL policy must answer, as one table (issue 12, network half).

Each row: (attack, url, expected error class). ``FAKE_DNS`` is what names
resolve to while the table is exercised (patched in-process: no lookup and no
traffic leaves the machine). tests/unit/test_urls.py runs every row through
``urls.check_url`` and a selection through every fetcher.
"""

from __future__ import annotations

from comfyui_wrapper.errors import DownloadError, UnsafeInputError

FAKE_DNS: dict[str, list[str]] = {
    "public.test": ["93.184.216.34"],
    "huggingface.co": ["18.244.202.60"],
    "private.test": ["10.1.2.3"],
    "mixed.test": ["93.184.216.34", "127.0.0.1"],  # one bad answer among good ones
    "v6loop.test": ["::1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "sixtofour.test": ["2002:7f00:1::1"],  # 6to4 of 127.0.0.1
    "sixtofour-private.test": ["2002:c0a8:101::1"],  # 6to4 of 192.168.1.1
    "nat64.test": ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254
    "teredo.test": ["2001:0:4136:e378:8000:63bf:f5ff:fffe"],  # Teredo, client 10.0.0.1
    "sitelocal.test": ["fec0::1"],
    "ula.test": ["fd12:3456::1"],
    "ec2v6.test": ["fd00:ec2::254"],
    "ietf.test": ["192.0.0.192"],
    "zero.test": ["0.1.2.3"],
    "cgnat.test": ["100.64.0.1"],
    "multicast.test": ["224.0.0.1"],
    "reserved.test": ["240.0.0.1"],
    "benchmark.test": ["198.18.0.1"],
    "linklocal.test": ["169.254.169.254"],
}

U, D = UnsafeInputError, DownloadError

HOSTILE_URLS: list[tuple[str, str, type[Exception]]] = [
    # --- parser differentials: refused before any lookup
    ("backslash before @ (urlsplit sees public.test, urllib3 connects to 127.0.0.1)",
     "http://127.0.0.1:8188\\@public.test/../x.png", U),
    ("backslash userinfo to steal HF_TOKEN", "https://attacker\\@huggingface.co/../x.safetensors", U),
    ("userinfo hides the host", "http://public.test@127.0.0.1/x.png", U),
    ("userinfo with password", "https://user:pass@huggingface.co/x.safetensors", U),
    ("duplicate port", "http://127.0.0.1:80:80/", U),
    ("empty port", "http://public.test:/x.png", U),
    ("port zero", "http://public.test:0/x.png", U),
    ("signed port", "http://public.test:+80/x.png", U),
    ("port out of range", "http://public.test:65536/x.png", U),
    ("percent-encoded IPv4 host", "http://%31%32%37.0.0.1/", U),
    ("percent-encoded name", "http://public%2Etest/", U),
    ("IPv6 zone id", "http://[fe80::1%25eth0]/x.png", U),
    ("integer IPv4", "http://2130706433/x.png", U),
    ("hex IPv4", "http://0x7f.0.0.1/x.png", U),
    ("short IPv4", "http://127.1/x.png", U),
    ("octal IPv4", "http://0177.0.0.1/x.png", U),
    ("tab inside the host", "http://public.test\t.evil/x.png", U),
    ("newline (header injection)", "http://public.test/x.png\r\nX-Evil: 1", U),
    ("NUL byte", "http://public.test\x00.evil/x.png", U),
    ("no host", "http:///x.png", U),
    ("file scheme", "file:///etc/passwd", U),
    ("ftp scheme", "ftp://public.test/x.png", U),
    ("gopher scheme", "gopher://127.0.0.1:6379/_INFO", U),
    ("no scheme", "//public.test/x.png", U),
    # --- literal addresses
    ("loopback literal", "http://127.0.0.1:8188/interrupt", U),
    ("IPv6 loopback literal", "http://[::1]:8188/", U),
    ("IPv4-mapped loopback literal", "http://[::ffff:127.0.0.1]/", U),
    ("IPv4-compatible loopback literal", "http://[::127.0.0.1]/", U),
    ("metadata literal", "http://169.254.169.254/latest/meta-data/", U),
    ("EC2 IPv6 metadata literal", "http://[fd00:ec2::254]/latest/meta-data/", U),
    ("unspecified address", "http://0.0.0.0:8188/", U),
    ("metadata name", "http://metadata.google.internal/computeMetadata/v1/", U),
    # --- names resolving to what must not be reached
    ("name resolving to a private address", "http://private.test/x.png", U),
    ("one private answer among public ones", "http://mixed.test/x.png", U),
    ("name resolving to ::1", "http://v6loop.test/x.png", U),
    ("IPv4-mapped loopback answer", "http://mapped.test/x.png", U),
    ("6to4 of loopback", "http://sixtofour.test/x.png", U),
    ("6to4 of a private address", "http://sixtofour-private.test/x.png", U),
    ("NAT64 of the metadata address", "http://nat64.test/x.png", U),
    ("Teredo with a private client", "http://teredo.test/x.png", U),
    ("site-local fec0::/10", "http://sitelocal.test/x.png", U),
    ("unique local fc00::/7", "http://ula.test/x.png", U),
    ("EC2 IPv6 metadata answer", "http://ec2v6.test/x.png", U),
    ("IETF protocol block 192.0.0.192", "http://ietf.test/x.png", U),
    ("0.0.0.0/8", "http://zero.test/x.png", U),
    ("carrier-grade NAT 100.64/10", "http://cgnat.test/x.png", U),
    ("multicast", "http://multicast.test/x.png", U),
    ("reserved 240/4", "http://reserved.test/x.png", U),
    ("benchmark 198.18/15", "http://benchmark.test/x.png", U),
    ("link-local metadata answer", "http://linklocal.test/latest/meta-data/", U),
    ("unresolvable name", "http://nowhere.test/x.png", D),
]

# URLs the same rules must let through (so the table is not passed by refusing everything).
FINE_URLS: list[str] = [
    "http://public.test/x.png",
    "https://huggingface.co/org/repo/resolve/main/x.safetensors?download=true",
    "https://public.test:8443/a%20b/c.png?x=1#frag",
    "http://PUBLIC.TEST./x.png",
    "http://93.184.216.34/x.png",
    "http://[2606:4700:4700::1111]/x.png",
]
