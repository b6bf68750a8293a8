"""Membership writes of one project run one at a time (the project's row is locked), so two
managers acting on each other at the same moment never leave the project without a manager.

Real races on PostgreSQL: two threads, each with its own connection, released together by a
barrier; several rounds each, since one round may happen to run one after the other."""

from __future__ import annotations

from functools import partial

import pytest
from django.db import connection

from labeling.models import Membership
from labeling.services.projects import LAST_MANAGER, membership_remove, membership_set, project_create
from tests.conftest import make_user
from tests.labeling.concurrency import at_once

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 8


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter (SQLite runs one write at a time anyway)")


def _two_managers(round_: int):
    first, second = make_user(f"alice{round_}"), make_user(f"bob{round_}")
    project = project_create(user=first, name=f"Race {round_}", classes=[{"name": "cat"}])
    membership_set(project=project, user=second, role=Membership.Role.MANAGER)
    return project, first, second


def _refused_as_last_manager(outcome) -> bool:
    return isinstance(outcome, ValueError) and str(outcome) == LAST_MANAGER


def _managers_left(project) -> set[int]:
    return set(project.memberships.filter(role=Membership.Role.MANAGER).values_list("user_id", flat=True))


def test_two_managers_removing_each_other_at_once_leave_one_manager():
    for round_ in range(ROUNDS):
        project, alice, bob = _two_managers(round_)
        alice_membership = project.memberships.get(user=alice).pk
        bob_membership = project.memberships.get(user=bob).pk

        outcomes = at_once(
            partial(membership_remove, project=project, membership_id=bob_membership),  # alice acts
            partial(membership_remove, project=project, membership_id=alice_membership),  # bob acts
            what="a membership write",
        )

        assert sorted(map(str, outcomes)) == sorted(["ok", LAST_MANAGER]), outcomes
        assert sum(map(_refused_as_last_manager, outcomes)) == 1
        assert len(_managers_left(project)) == 1


def test_a_removal_and_a_demotion_at_once_leave_one_manager():
    for round_ in range(ROUNDS):
        project, alice, bob = _two_managers(round_)
        alice_membership = project.memberships.get(user=alice).pk

        outcomes = at_once(
            partial(membership_set, project=project, user=bob, role=Membership.Role.ANNOTATOR),  # alice
            partial(membership_remove, project=project, membership_id=alice_membership),  # bob acts
            what="a membership write",
        )

        assert sum(map(_refused_as_last_manager, outcomes)) == 1, outcomes
        assert outcomes.count("ok") == 1, outcomes
        managers = _managers_left(project)
        assert len(managers) == 1
        # Whichever went first, the one left is a manager still in the project.
        assert project.memberships.filter(user_id__in=managers, role=Membership.Role.MANAGER).count() == 1


def test_removing_a_non_manager_or_an_unknown_member_is_not_refused():
    project, _alice, _bob = _two_managers(0)
    annotator = make_user("carol")
    membership = membership_set(project=project, user=annotator, role=Membership.Role.ANNOTATOR)

    assert membership_remove(project=project, membership_id=membership.pk) is True
    assert membership_remove(project=project, membership_id=membership.pk) is False
    assert membership_remove(project=project, membership_id="x1") is False
    assert len(_managers_left(project)) == 2
