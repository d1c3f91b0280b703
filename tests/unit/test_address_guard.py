"""The fetcher's private-address guard (SSRF): which addresses a task input may reach."""

from __future__ import annotations

import ipaddress

import pytest

from dragon.storage.fetch import UnsafeURLError, is_public, resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # loopback, private, cloud metadata
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",  # shared, unspecified, multicast, reserved
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",  # IPv4-mapped
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo whose client is 10.0.0.1
    ],
)
def test_addresses_inside_a_network_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_routable_unicast_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_a_name_that_resolves_to_loopback_is_refused_and_the_refusal_says_what_to_do() -> None:
    with pytest.raises(UnsafeURLError) as caught:
        resolve("localhost", 80, allow_private=False)
    message = str(caught.value)
    assert "non-public address" in message and "dragon upload" in message and "--allow-private-urls" in message


def test_the_setting_for_local_development_lets_loopback_through() -> None:
    assert resolve("localhost", 80, allow_private=True).is_loopback


def test_a_literal_private_address_is_refused_like_a_name() -> None:
    with pytest.raises(UnsafeURLError):
        resolve("169.254.169.254", 80, allow_private=False)


def test_a_name_that_does_not_resolve_is_refused_without_a_connection() -> None:
    with pytest.raises(UnsafeURLError, match="cannot resolve"):
        resolve("no-such-host.invalid", 80, allow_private=False)
