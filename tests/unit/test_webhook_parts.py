"""Webhooks' pure parts: which addresses are refused, URL rules, the retry schedule, signatures."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from backend.webhooks import WEBHOOK_EVENTS
from backend.webhooks.dispatcher import retry_delay
from backend.webhooks.signing import new_secret, signed_headers
from backend.webhooks.targets import (
    ForbiddenTargetError,
    InvalidTargetError,
    address_problem,
    check_literal_host,
    parse_target,
)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata service"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "cloud metadata service"),
        ("fc00::5", "private"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),  # Python counts 240/4 (reserved) among its private nets
        ("100.64.0.1", "not publicly routable"),
        ("192.0.2.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a00:1", "private"),
        ("2002:7f00:1::", "loopback"),
    ],
)
def test_internal_addresses_are_refused(address: str, problem: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) == problem


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "",
        "hooks.example.com/in",
        "ftp://hooks.example.com/in",
        "https:///no-host",
        "https://user:pw@hooks.example.com/in",
        "https://hooks.example.com/in#frag",
        "https://hooks.example.com:99999/in",
        "https://hooks.example.com/a b",
        "https://hooks.example.com/\n",
        "https://" + "a" * 2050 + ".com",
    ],
)
def test_malformed_urls_are_invalid(url: str) -> None:
    with pytest.raises(InvalidTargetError):
        parse_target(url, allow_private=True)


def test_http_needs_the_development_setting() -> None:
    with pytest.raises(ForbiddenTargetError, match="https"):
        parse_target("http://hooks.example.com/in", allow_private=False)
    assert parse_target("http://hooks.example.com/in", allow_private=True).port == 80
    assert parse_target("https://hooks.example.com/in", allow_private=False).port == 443


def test_ip_literals_are_checked_without_the_resolver() -> None:
    with pytest.raises(ForbiddenTargetError, match=r"10\.0\.0\.7 is not an allowed webhook target \(private\)"):
        check_literal_host(parse_target("https://10.0.0.7/in", False), allow_private=False)
    with pytest.raises(ForbiddenTargetError, match="loopback"):
        check_literal_host(parse_target("https://[::1]:8443/in", False), allow_private=False)
    check_literal_host(parse_target("https://[::1]:8443/in", False), allow_private=True)
    check_literal_host(parse_target("https://hooks.example.com/in", False), allow_private=False)


def test_retry_delay_doubles_up_to_the_cap_with_jitter() -> None:
    lowest = [retry_delay(n, base=10, cap=3600, rand=lambda: 0.0) for n in range(1, 12)]
    highest = [retry_delay(n, base=10, cap=3600, rand=lambda: 1.0) for n in range(1, 12)]
    assert highest[:5] == [10, 20, 40, 80, 160]
    assert lowest[:3] == [5, 10, 20]
    assert highest[-1] == 3600
    assert lowest[-1] == 1800
    assert retry_delay(10_000, base=10, cap=3600) <= 3600


def test_retries_span_a_day_with_the_defaults() -> None:
    elapsed, attempts = 0.0, 1
    while elapsed < 86400:
        elapsed += retry_delay(attempts, base=10, cap=3600, rand=lambda: 0.5)
        attempts += 1
    assert 30 < attempts < 50  # dozens of attempts, spread over the day, not thousands


def test_signature_verifies_with_standardwebhooks() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = json.dumps({"type": "task.completed", "data": {"taskId": "x", "tag": "fa\u00e7ade"}}, ensure_ascii=False)
    headers = signed_headers(secret, "msg-1", body, datetime.now(UTC))
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body.encode("utf-8"), headers)["data"]["tag"] == "fa\u00e7ade"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("x", "y"), headers)


def test_events_are_the_terminal_statuses() -> None:
    assert WEBHOOK_EVENTS == ("task.completed", "task.failed", "task.cancelled")
