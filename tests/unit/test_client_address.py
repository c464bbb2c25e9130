"""Which address the auth throttle counts a request against: forwarded headers are believed only
from trusted proxies (the gateway), and only for the hops those proxies appended."""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from starlette.requests import Request

from command_api.settings import AuthThrottleSettings
from command_api.throttle import client_address

LOOPBACK = (ip_network("127.0.0.1/32"), ip_network("::1/128"))
GATEWAY_NET = (ip_network("172.18.0.0/16"),)


def request_from(peer: str, *headers: tuple[str, str]) -> Request:
    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/auth/login",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            "client": (peer, 50000),
        }
    )


def test_without_a_proxy_the_peer_address_counts() -> None:
    assert client_address(request_from("203.0.113.9"), LOOPBACK) == "203.0.113.9"


def test_forwarded_headers_from_an_untrusted_peer_are_ignored() -> None:
    request = request_from(
        "203.0.113.9", ("X-Forwarded-For", "198.51.100.1"), ("X-Real-IP", "198.51.100.2")
    )
    assert client_address(request, LOOPBACK) == "203.0.113.9"


def test_behind_the_gateway_the_address_it_appended_counts_not_what_the_client_sent() -> None:
    # nginx: X-Forwarded-For = <what the client sent>, <the address nginx saw>
    request = request_from("127.0.0.1", ("X-Forwarded-For", "10.9.9.9, 198.51.100.7"))
    assert client_address(request, LOOPBACK) == "198.51.100.7"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    request = request_from(
        "172.18.0.5",
        ("X-Forwarded-For", "1.1.1.1, 198.51.100.7"),
        ("X-Forwarded-For", "172.18.0.9"),
    )
    assert client_address(request, GATEWAY_NET) == "198.51.100.7"


def test_x_real_ip_is_used_from_a_trusted_proxy_without_x_forwarded_for() -> None:
    request = request_from("::1", ("X-Real-IP", "2001:db8::5"))
    assert client_address(request, LOOPBACK) == "2001:db8::5"


@pytest.mark.parametrize(
    "headers", [(("X-Forwarded-For", "not-an-ip"),), (("X-Real-IP", "garbage"),), ()]
)
def test_malformed_or_missing_forwarded_headers_fall_back_to_the_proxy(
    headers: tuple[tuple[str, str], ...],
) -> None:
    assert client_address(request_from("127.0.0.1", *headers), LOOPBACK) == "127.0.0.1"


def test_trusted_proxies_are_read_comma_separated_and_default_to_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert AuthThrottleSettings(ENVIRONMENT="test").TRUSTED_PROXIES == LOOPBACK
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
    settings = AuthThrottleSettings()
    assert (ip_network("10.0.0.0/8"), ip_network("192.0.2.1/32")) == settings.TRUSTED_PROXIES


def test_production_refuses_trusting_every_address_as_a_proxy() -> None:
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        AuthThrottleSettings(ENVIRONMENT="prod", TRUSTED_PROXIES="0.0.0.0/0")
