"""Conformance suite: every registered policy (``POLICIES.names()``, no hand-kept list) passes
the public checks of ``augbal.testing.check_policy``."""

from __future__ import annotations

import pytest

from augbal.augment import POLICIES, Policy, build_policy
from augbal.testing import POLICY_CHECKS, check_policy, check_spec_roundtrip

SIZE = 24
NAMES = POLICIES.names()


@pytest.fixture(params=NAMES)
def policy(request: pytest.FixtureRequest) -> Policy:
    return build_policy(request.param, size=SIZE, seed=3)


def test_registry_has_the_promised_policies() -> None:
    promised = {"none", "flip", "light", "medium", "heavy", "randaugment", "trivialaugment", "autoaugment"}
    assert promised <= set(NAMES)


@pytest.mark.parametrize("check", POLICY_CHECKS)
def test_policy_conforms(policy: Policy, check: str) -> None:
    check_policy(policy, checks=[check])


def test_spec_names_the_policy_and_keeps_its_parameters(policy: Policy) -> None:
    data = policy.to_dict()
    assert data["name"] == policy.name and data["size"] == SIZE and data["seed"] == 3
    assert POLICIES.get(policy.name) is type(policy) and POLICIES.name_of(policy) == policy.name
    assert POLICIES.from_spec(data) == build_policy(data) == policy


def test_nested_policies_round_trip_as_their_own_specs() -> None:
    spec = {"name": "class_conditional", "policies": {2: {"name": "heavy", "magnitude": 2.0}}}
    policy = build_policy(spec, size=SIZE)
    data = policy.to_dict()
    assert data["policies"] == {2: {"name": "heavy", "magnitude": 2.0}} and data["default"] == {"name": "none"}
    check_spec_roundtrip(policy)
