"""Package policy: mode, allow and deny lists, caps; each refusal names its setting."""

from __future__ import annotations

import pytest

from gateway.packages.errors import PackageLimitExceeded, PackageNotAllowed
from gateway.packages.policy import MB, PackagePolicy
from gateway.packages.requirements import parse_requirements
from gateway.packages.settings import PackageSettings


def policy(**settings: object) -> PackagePolicy:
    return PackagePolicy.from_settings(PackageSettings(**settings))


def test_any_allows_any_name_not_denied() -> None:
    policy(packages_deny="left-pad").check_request(parse_requirements(["tabulate", "cffi"]), set())


def test_off_refuses_everything_naming_the_setting() -> None:
    with pytest.raises(PackageNotAllowed, match="JUPYCELL_PACKAGES=off"):
        policy(packages="off").check_request(parse_requirements(["tabulate"]), set())


def test_deny_list_wins_in_every_mode_and_names_match_canonically() -> None:
    with pytest.raises(PackageNotAllowed, match="deny list.*JUPYCELL_PACKAGES_DENY"):
        policy(packages_deny="Py_YAML, other").check_request(parse_requirements(["py-yaml==6"]), set())


def test_allow_list_mode_refuses_names_not_listed() -> None:
    allowed = policy(packages="allow-list", packages_allow="tabulate,cffi")
    allowed.check_request(parse_requirements(["Tabulate"]), set())
    with pytest.raises(PackageNotAllowed, match="not on the allow list.*cffi, tabulate"):
        allowed.check_request(parse_requirements(["requests"]), set())


def test_count_caps_per_request_and_per_kernel() -> None:
    capped = policy(packages_max_per_request=2, packages_max_per_kernel=3)
    with pytest.raises(PackageLimitExceeded, match="JUPYCELL_PACKAGES_MAX_PER_REQUEST"):
        capped.check_request(parse_requirements(["a", "b", "c"]), set())
    capped.check_request(parse_requirements(["a", "b"]), {"a", "z"})  # a again: still 3
    with pytest.raises(PackageLimitExceeded, match="JUPYCELL_PACKAGES_MAX_PER_KERNEL"):
        capped.check_request(parse_requirements(["b", "c"]), {"a", "z"})


def test_byte_budget_is_the_smaller_of_the_two_caps_and_the_error_names_the_one_hit() -> None:
    capped = policy(packages_max_request_mb=10, packages_max_kernel_mb=25)
    assert capped.byte_budget(0) == 10 * MB
    assert capped.byte_budget(20 * MB) == 5 * MB
    assert "JUPYCELL_PACKAGES_MAX_REQUEST_MB" in str(capped.too_large(11 * MB, 0, "big 1.0"))
    message = str(capped.too_large(6 * MB, 20 * MB, "big 1.0"))
    assert "JUPYCELL_PACKAGES_MAX_KERNEL_MB" in message and "Nothing was fetched" in message
