"""Failures the lifecycle test (test_lifecycle.py) found, each replayed step by step on the real server.

Each test is a shrunk sequence the state machine printed, written as the same ``World`` calls: config
edits, drifts, applies, and the invariants (``world.check()``: a fresh plan has no changes, live users
and groups are the model, nothing else touched). The issue numbers refer to issue 11's list.
"""

from __future__ import annotations

import pytest

from tests.lifecycle.world import World

pytestmark = pytest.mark.integration


def test_a_new_member_under_an_existing_manager(world: World) -> None:
    """Issue 11, case 1: the create of a new hire carries no id for a manager who already exists."""
    world.add_member("alice@acme.io")
    world.apply()
    world.add_member("bob@acme.io", manager="alice@acme.io")
    world.apply()  # fails: manager alice@acme.io has no id on the provider (not created)
    world.check()


def test_two_new_members_who_manage_each_other(world: World) -> None:
    """Issue 11, case 7: refused at load time naming a manager, or applied; never an apply that fails."""
    world.apply()
    world.add_member("alice@acme.io")
    world.add_member("bob@acme.io", manager="alice@acme.io")
    world.set_manager("alice@acme.io", "bob@acme.io")
    if world.manager_cycle_is_accepted():
        world.apply()  # fails: manager bob@acme.io has no id ...; alice skipped: depends on bob
        world.check()


def test_two_applies_at_once_make_one_group(world: World) -> None:
    """Issue 11, case 4: two applies of one config, planned from one live state, both POST the group."""
    world.add_member("alice@acme.io")
    world.apply()
    world.add_team("team-1", [])
    world.apply_concurrently()
    world.check()  # fails: two groups team-1; the next plan deletes one of them


def test_a_saved_plan_applied_after_the_account_was_made_by_hand(world: World) -> None:
    """Issue 11, case 5: the create meets the hand-made Erin@Acme.io (409), finds it, and reports the
    create done without writing the config's attributes or the mark."""
    world.add_member("alice@acme.io")
    world.apply()
    world.add_member("erin@acme.io", external_id="HR-5", given_name="Ben", family_name="Archer")
    world.apply_saved_plan_after_handmade("erin@acme.io", "Erin@Acme.io")
    world.check()  # fails: the next plan updates erin: externalId, name.givenName, name.familyName


def test_a_renamed_member_stays_in_their_team(world: World) -> None:
    """Issue 11, case 2 (shrunk from start(size=3) + rename_email): the group PATCH adds and removes the
    same id, so the renamed member leaves the team; apply reports success, a second apply adds them back."""
    world.add_team("team-1", [])
    world.add_member("alice@acme.io", external_id="HR-1")
    world.add_member("bob@acme.io", external_id="HR-2")
    world.set_team_members("team-1", ["alice@acme.io", "bob@acme.io"])
    world.apply()
    world.rename("alice@acme.io", "alice.2@acme.io")
    world.apply()
    world.check()  # fails: the next plan adds alice.2@acme.io to team-1 again


def test_a_group_holding_a_member_twice_converges(world: World) -> None:
    """Issue 11, case 3: the group is PUT back with alice listed twice; the plan compares lists
    (['alice', 'alice'] -> ['alice']), apply works on set differences and sends nothing."""
    world.add_member("alice@acme.io")
    world.add_team("team-1", ["alice@acme.io"])
    world.apply()
    world.drift_duplicate_member("team-1", "alice@acme.io")
    world.apply()
    world.check()  # fails: the next plan still has team-1 members ['alice', 'alice'] -> ['alice']


def test_two_applies_at_once_where_one_loses_the_managers_update(world: World) -> None:
    """Long run, seed 3544352130: both applies update alice; the second's is refused (the first made it)
    and bob's deactivation was then skipped as 'depends on alice', though alice exists. Concurrency
    decides whether the refusal happens; tests/integration/test_convergence.py plays it deterministically
    (test_a_report_is_not_held_back_by_a_failed_update_of_their_manager)."""
    world.add_team("team-1", [])
    world.add_member("alice@acme.io", given_name="Ann")
    world.set_team_members("team-1", ["alice@acme.io"])
    world.add_member("bob@acme.io")
    world.set_team_members("team-1", ["alice@acme.io", "bob@acme.io"])
    world.set_manager("bob@acme.io", "alice@acme.io")
    world.apply()
    world.set_removal("delete")
    world.set_active("bob@acme.io", False)
    world.remove_team("team-1")
    world.set_external_id("alice@acme.io", "HR-1")
    world.apply_concurrently()
    world.check()
