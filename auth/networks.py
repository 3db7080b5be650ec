"""Source networks (Publilink, VERA): pure functions over CIDR lists, checked before any password."""
from __future__ import annotations

import ipaddress
from typing import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str | Iterable[str]) -> tuple[Network, ...]:
    """``"10.1.0.0/16, 192.0.2.7"`` -> networks. Raises ValueError naming the bad entry."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR range") from None
    return tuple(out)


def in_networks(source: str, networks: Iterable[Network]) -> bool:
    try:
        addr = ipaddress.ip_address(source.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


def source_refusal(source: str, account_networks: str, centre_networks: Iterable[str]) -> str | None:
    """Why ``source`` may not act for an account, or None. An account bound to ranges must connect from one of
    them; an account whose centres are bound to ranges must connect from the ranges of at least one of its
    centres. No ranges anywhere: any source. Raises ValueError on a bad stored range list."""
    own = parse_networks(account_networks or "")
    if own and not in_networks(source, own):
        return f"source address {source} is outside the account's networks (its own ranges)"
    # a centre without ranges is open to any source (the same rule that filters a session's centres)
    centres = [parse_networks(n or "") for n in centre_networks]
    if centres and not any(not nets or in_networks(source, nets) for nets in centres):
        return f"source address {source} is outside the account's networks (those of its centres)"
    return None


def client_address(remote_addr: str, forwarded_for: str | None, trusted_proxies: Iterable[str]) -> str:
    """The address a request really comes from: ``X-Forwarded-For`` is believed only from trusted proxies, and
    then only up to the first address that is not itself a trusted proxy (right to left)."""
    proxies = parse_networks(list(trusted_proxies))
    if not forwarded_for or not proxies or not in_networks(remote_addr, proxies):
        return remote_addr
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote_addr  # garbage in the header: trust nothing from it
        if not in_networks(hop, proxies):
            return hop
    return hops[0] if hops else remote_addr
