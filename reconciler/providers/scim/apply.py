"""Making one SCIM provider's changes: steps of the apply's graph, bounded concurrency, failures aggregated.

Order (as Entra ID and Invicti advise): new teams first, then members (creates
and updates, managers before their reports), then team memberships and team
attribute updates, then removals last. A failed change does not stop
independent ones; a change that needs a failed one is skipped and named.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.execute import Graph, Ledger, Outcome, Step, run_one, skip_message
from reconciler.plan.model import Action, Change, ScimIds, levels
from reconciler.providers._http import current_address
from reconciler.providers.scim import attributes as scim
from reconciler.providers.scim import bulkwrite
from reconciler.providers.scim.client import GROUP, ScimClient
from reconciler.providers.scim.fit import email_meta, member_refs_required
from reconciler.secrets import redact

Observer = Callable[[Outcome], None]

# Fewer creates than this go one request each: a Bulk request saves nothing there.
BULK_MIN_CREATES = 2


def known_ids(c: Change) -> dict[str, str]:
    """The live ids (member key -> id) the plan knew and this change needs."""
    return c.payload.ids if isinstance(c.payload, ScimIds) else {}


class ScimApplier:
    """Makes one provider's changes, as steps of the apply's graph."""

    def __init__(self, client: ScimClient, report: Observer) -> None:
        self.client = client
        self.report = report
        self.ledger: Ledger | None = None
        self.p = client.provider
        self.ids: dict[str, str] = {}  # member email -> live id, learnt from plan refs and creates
        self.failed: set[str] = set()  # emails / group names whose change failed
        self._lock = threading.Lock()
        self._failed_users: dict[str, Outcome] = {}  # member email -> its failed outcome
        self.left_out: dict[str, list[str]] = {}  # member email -> teams it was not added to (its create failed)
        self.new_groups: list[Change] = []
        self.fresh: set[str] = set()  # new teams with no group of their name at apply time
        self.mine: dict[str, str] = {}  # team name -> id of the group this apply made for it
        self.created: dict[str, str] = {}  # team name -> id of the group made (or found) for it
        self.adopted: set[str] = set()  # teams whose group already existed: members set whole

    def steps(self, graph: Graph, changes: list[Change]) -> None:
        """The provider's changes as steps of ``graph``: new teams' groups first (read the names, create,
        settle twins), members (a report after the create of a new manager: ``depends_on``), then the
        members of new teams and team updates once the members they add exist, removals last (groups
        before users). Where the provider offers Bulk, a phase of creates or writes is one step."""
        self.ledger = graph.ledger
        pool = graph.pool(f"scim.{self.p.name}", self.p.concurrency)
        for c in changes:
            self.ids.update(known_ids(c))
            if c.kind == "user" and c.id:
                self.ids[c.key] = c.id
        groups = [c for c in changes if c.kind == "group"]
        users = [c for c in changes if c.kind == "user"]
        self.new_groups = new_groups = [c for c in groups if c.action is Action.CREATE]
        upd_groups = [c for c in groups if c.action is Action.UPDATE]
        del_groups = [c for c in groups if c.action is Action.DELETE]
        removals = [c for c in users if c.action is Action.DELETE]
        deactivations = [c for c in users if c.action is Action.DEACTIVATE]
        upserts = [c for c in users if c.action in (Action.CREATE, Action.UPDATE)]
        made: list[Step] = []
        settled: Step | None = None
        if new_groups:
            names = graph.add(pool, self._read_group_names)
            if self._use_bulk(new_groups):
                creates = [graph.add(pool, self._create_new_groups, after=[names])]
            else:
                creates = [graph.add(pool, partial(self._create_new_group, c), after=[names])
                           for c in new_groups]
            settled = graph.add(pool, self._settle_twins, after=creates)
            made += [names, *creates, settled]
        # a member whose manager is created in this run waits for the manager to have an id (depends_on)
        makes: dict[str, Step] = {}  # member email -> the step that creates them
        for level in manager_levels(upserts):
            creates_ = [c for c in level if c.action is Action.CREATE]
            if self._use_bulk(creates_):
                s = graph.add(pool, partial(bulkwrite.create, self, creates_, "Users", None), creates_)
                makes.update((c.key, s) for c in creates_)
                made.append(s)
                level = [c for c in level if c.action is not Action.CREATE]
            updates = [c for c in level if c.action is Action.UPDATE]
            if self._use_bulk(updates) and self.client.caps.patch:  # updates through Bulk too
                made.append(graph.add(pool, partial(bulkwrite.run, self, updates,
                                                   bulkwrite.user_patch(self, self._upsert_user)), updates))
                level = [c for c in level if c.action is not Action.UPDATE]
            for s in self._each(graph, pool, level, self._upsert_user):
                made.append(s)
                if s.changes[0].action is Action.CREATE:
                    makes[s.changes[0].key] = s

        def adds(c: Change) -> list[Step | None]:
            """The steps that create the members a team change adds."""
            before = set((c.before or {}).get("members", []))
            return [makes.get(e) for e in (c.after or {}).get("members", []) if e not in before]

        if new_groups:
            if self._use_bulk(new_groups):  # a new team's members created since the group: one operation each
                made.append(graph.add(pool, self._complete_new_groups, new_groups,
                                      [settled, *(s for c in new_groups for s in adds(c))]))
            else:
                made += [graph.add(pool, partial(self._complete_new_group, c), (c,), [settled, *adds(c)])
                         for c in new_groups]
        made += [self._each(graph, pool, [c], self._update_group, adds(c))[0] for c in upd_groups]
        # removals last, groups before users: on a provider that takes a deleted user out of its groups
        # (referential integrity), deleting users first would change the groups this apply then deletes
        last = graph.gate(made)
        gone = self._phase(graph, pool, del_groups, self._delete_group,
                           bulkwrite.delete("Groups", self._delete_group), last)
        then = graph.gate([last, *gone])
        self._phase(graph, pool, deactivations, self._deactivate_user,
                    bulkwrite.user_patch(self, self._deactivate_user), then, bulk_ok=self.client.caps.patch)
        self._phase(graph, pool, removals, self._delete_user, bulkwrite.delete("Users", self._delete_user), then)

    def _phase(self, graph: Graph, pool: str, changes: list[Change], fn: Callable[[Change], Any],
               prepare: Callable[[Change], bulkwrite.Write | None], after: Step, bulk_ok: bool = True) -> list[Step]:
        if self._use_bulk(changes) and bulk_ok:
            return [graph.add(pool, lambda: bulkwrite.run(self, changes, prepare), changes, [after])]
        return self._each(graph, pool, changes, fn, [after])

    def finish(self) -> None:
        self._name_left_out()

    def _left_out_of(self, c: Change, emails: Iterable[str]) -> None:
        with self._lock:
            for e in emails:
                self.left_out.setdefault(e, []).append(c.address)

    def _name_left_out(self) -> None:
        """A member whose create failed was left out of the teams that list them: say so in that member's
        failure, so the summary names everything the next apply still has to do."""
        for email, teams in self.left_out.items():
            o = self._failed_users.get(email)
            if o is not None:
                o.error = f"{o.error}; so not added to {', '.join(sorted(teams))}"

    # --- new teams: read the names, create, settle twins, complete ----------------

    def _read_group_names(self) -> None:
        """Never a second group of one name: servers that do not enforce unique displayNames (scim2-server
        among them) accept two, and two applies at once would each make one. The names are read first
        (a group made since the plan is taken over, not doubled); after the creates they are read again
        (``_settle_twins``)."""
        existing = self.client.group_names()
        for c in self.new_groups:
            there = _oldest(existing.get(c.key, []))
            if there is not None:
                self.created[c.key] = str(there["id"])
                self.adopted.add(c.key)
            else:
                self.fresh.add(c.key)

    def _create_new_groups(self) -> None:
        """The new teams' groups in Bulk requests (fewer than BULK_MIN_CREATES: one request each)."""
        fresh = [c for c in self.new_groups if c.key in self.fresh]
        if self._use_bulk(fresh):
            bulkwrite.create(self, fresh, "Groups", self.mine, self.adopted)
        else:
            for c in fresh:
                self._create_new_group(c)

    def _create_new_group(self, c: Change) -> None:
        """One new team's group (only a failure is reported: the team's completion reports it)."""
        if c.key not in self.fresh:
            return

        def one(c: Change) -> None:
            gid, existed = self._create_group(c)
            with self._lock:
                self.mine[c.key] = gid
                if existed:
                    self.adopted.add(c.key)
        self._record(run_one(c, self._guarded(one), self.ledger), report=False)

    def _settle_twins(self) -> None:
        """Where two groups of one name exist now, every apply keeps the same one, the oldest
        (meta.created, then id), and deletes the one it made itself."""
        with self._lock:
            self.created.update(self.mine)
            made_here = {k: v for k, v in self.mine.items() if k not in self.adopted}
        if not made_here:
            return
        now = self.client.group_names()
        for name, gid in made_here.items():
            keep = _oldest(now.get(name, []))
            if keep is not None and str(keep["id"]) != gid:
                token = current_address.set(scim.address(self.p.name, "group", name))
                try:
                    self.client.delete("Groups", gid)  # ours is the younger twin: the other apply's stays
                finally:
                    current_address.reset(token)
                self.created[name] = str(keep["id"])
                self.adopted.add(name)

    def _complete_new_group(self, c: Change) -> None:
        if c.key in self.created:  # else its create failed, and said so
            self._record(run_one(c, self._guarded(self._complete), self.ledger))

    def _complete_new_groups(self) -> None:
        made = [c for c in self.new_groups if c.key in self.created]
        fresh = [c for c in made if c.key not in self.adopted]
        if self._use_bulk(fresh):
            bulkwrite.run(self, fresh, bulkwrite.new_group_members(self, self.created))
            made = [c for c in made if c.key in self.adopted]
        for c in made:
            self._record(run_one(c, self._guarded(self._complete), self.ledger))

    def _complete(self, c: Change) -> None:
        self._add_new_group_members(c, self.created[c.key], c.key in self.adopted)

    # --- execution -----------------------------------------------------------

    def _guarded(self, fn: Callable[[Change], Any]) -> Callable[[Change], None]:
        def step(c: Change) -> None:
            blocked = self._blocked_by(c)
            if blocked:
                raise ReconcilerError(skip_message(blocked))
            self._check_fresh(c)
            fn(c)
        return step

    def _each(self, graph: Graph, pool: str, changes: list[Change], fn: Callable[[Change], Any],
              after: Iterable[Step | None] = ()) -> list[Step]:
        """A step per change, at most ``concurrency`` of the provider's steps at once."""
        return graph.each(pool, changes, self._guarded(fn), self._record, after)

    def _record(self, o: Outcome, report: bool = True) -> None:
        """With ``report=False`` only a failure is reported (a step that a later one completes)."""
        if not o.ok:
            with self._lock:
                self.failed.add(o.change.key)
        if report or not o.ok:
            self._done(o)

    def _done(self, o: Outcome) -> None:
        if o.change.kind == "user" and not o.ok:
            with self._lock:
                self._failed_users[o.change.key] = o
        self.report(o)

    def _check_fresh(self, c: Change) -> None:
        """Where the provider has no ETags, nothing stops a write over a change made since the plan
        (another apply running at the same time): re-read the object and refuse if it is not what
        the plan saw. With ETags the write itself carries If-Match and the provider refuses."""
        if c.id is None or c.precondition is None or not c.precondition.digest or self.client.caps.etag:
            return
        live = self.client.get("Users" if c.kind == "user" else "Groups", c.id)
        if live is None and c.action is Action.DELETE:
            return
        if live is None or scim.digest(live) != c.precondition.digest:
            raise ReconcilerError(f"{c.address} changed on the provider since the plan was made (another apply "
                                  "running?); nothing was written to it; plan again")

    def _blocked_by(self, c: Change) -> str | None:
        with self._lock:
            if c.kind == "group" and c.key in self.failed:
                return scim.address(self.p.name, "group", c.key)
        # a report whose manager's create failed (depends_on): the ledger knows, for every system
        return self.ledger.blocker(c) if self.ledger is not None else None

    def _id(self, email: str) -> str | None:
        if email.startswith("id:"):
            return email[3:]
        return self.ids.get(email)

    # --- users ---------------------------------------------------------------

    def _meta(self) -> bool:
        """Whether emails carry type and primary on this provider (its /Schemas, read before apply)."""
        return email_meta(self.client.caps.schema)

    def _upsert_user(self, c: Change) -> None:
        assert c.after is not None
        # read in place: a copy per change is quadratic, and other threads add to it meanwhile
        refs = self.ids
        if c.action is Action.CREATE:
            body = scim.user_body(c.after, refs, self._meta())
            user_name = str(c.after["userName"])
            res, existed = self.client.create_or_adopt("Users", body, lambda: self.client.find_user(user_name))
            with self._lock:
                self.ids[c.key] = str(res["id"])
            if existed:
                self._converge_adopted_user(c, res)
            return
        assert c.id is not None
        if self.client.caps.patch:
            self.client.patch("Users", c.id, scim.user_ops(c.diff, refs, self._meta()), _etag(c))
        else:
            live = self.client.get("Users", c.id) or {}
            self.client.put("Users", c.id, scim.apply_user_ops_to(live, c.after, refs, self._meta()), _etag(c))

    def _converge_adopted_user(self, c: Change, res: dict[str, Any]) -> None:
        """A member planned as new whose account exists (made by hand or by another apply since the plan,
        or an earlier attempt whose answer was lost): write the config's attributes and the ownership
        mark onto it, as a create would have, so it is not taken over holding someone else's values."""
        assert c.after is not None
        names = {v: k for k, v in self.ids.items()}
        have = scim.live_user(res, names, c.after)
        diff = [d for d in scim.attribute_diff(c.after, have) if d.path != "userName"]
        if not diff:
            return
        if self.client.caps.patch:
            self.client.patch("Users", str(res["id"]), scim.user_ops(diff, self.ids, self._meta()), None)
        else:
            self.client.put("Users", str(res["id"]), scim.apply_user_ops_to(res, c.after, self.ids, self._meta()), None)

    def _deactivate_user(self, c: Change) -> None:
        assert c.id is not None and c.after is not None
        if self.client.caps.patch:
            ops = scim.user_ops(c.diff, self.ids, self._meta())
            self.client.patch("Users", c.id, ops, _etag(c))
        else:
            live = self.client.get("Users", c.id) or {}
            self.client.put("Users", c.id, {**{k: v for k, v in live.items() if k not in ("meta", "id")},
                                            "active": False}, _etag(c))

    def _delete_user(self, c: Change) -> None:
        assert c.id is not None
        self.client.delete("Users", c.id, _etag(c))

    # --- SCIM Bulk: creates in few requests where the provider offers it ----------

    def _use_bulk(self, creates: list[Change]) -> bool:
        return (self.p.bulk == "auto" and self.client.caps.bulk and len(creates) >= BULK_MIN_CREATES)

    def _fail(self, c: Change, error: str, t0: float) -> None:
        with self._lock:
            self.failed.add(c.key)
        self._done(Outcome(c, False, redact(error), (time.perf_counter() - t0) * 1000))

    # --- groups --------------------------------------------------------------

    def _group_body(self, c: Change) -> dict[str, Any]:
        assert c.after is not None
        # the members that existed at plan time, no more: the ones created since (maybe while this body is
        # made: creates run at once) are added by the group's completion (new_group_adds), which is the
        # complement, so no member is sent twice (Canaille keeps a member added twice, twice)
        known = known_ids(c)
        members = [i for i in (self._id(e) for e in c.after.get("members", []) if e in known) if i]
        body: dict[str, Any] = {"schemas": [GROUP], "displayName": c.after["displayName"],
                                "members": self._member_values(members)}
        if "externalId" in c.after:  # not where the provider holds it read-only (scim/fit.py)
            body["externalId"] = c.after["externalId"]
        ext = scim.group_ext(c.after, self.p)
        if ext and self.p.team_schema is not None:
            body["schemas"].append(self.p.team_schema.urn)
            body[self.p.team_schema.urn] = ext
        return body

    def _member_values(self, ids: list[str]) -> list[dict[str, Any]]:
        """Group members as a POST or PUT body lists them; with ``$ref`` where /Schemas requires it."""
        if not member_refs_required(self.client.caps.schema):
            return [{"value": i} for i in ids]
        base = str(self.client.http.client.base_url).rstrip("/")
        return [{"value": i, "$ref": f"{base}/Users/{i}"} for i in ids]

    def _create_group(self, c: Change) -> tuple[str, bool]:
        body = self._group_body(c)
        res, existed = self.client.create_or_adopt("Groups", body,
                                                   lambda: self.client.find_group(body["displayName"]))
        return str(res["id"]), existed

    def _add_new_group_members(self, c: Change, gid: str, adopted: bool) -> None:
        """Complete a new team's group: add the members created since (those that existed at plan time
        went in with the create). A group that already existed gets its whole member list and the
        ownership mark. A member whose own create failed is left out (that failure is reported under
        the member's address, and the next apply adds them); any other missing id is an error."""
        assert c.after is not None
        wanted = list(c.after.get("members", []))
        if not adopted:
            add = self.new_group_adds(c)
            if add:
                self.client.patch_members(gid, add, [], [])
            return
        self._new_group_check(c, wanted)
        if adopted:
            ops = ([{"op": "replace", "path": "externalId", "value": c.after["externalId"]}]
                   if "externalId" in c.after else [])
            ext = scim.group_ext(c.after, self.p)
            if ext and self.p.team_schema is not None:
                ops += [{"op": "replace", "path": f"{self.p.team_schema.urn}:{k}", "value": v}
                        for k, v in ext.items()]
            members = [i for i in (self._id(e) for e in wanted) if i]
            if self.client.caps.patch:
                self.client.set_members(gid, members, ops)
            else:
                live = self.client.get("Groups", gid) or {}
                body = {k: v for k, v in live.items() if k not in ("meta", "id")}
                body.update({"members": self._member_values(members)})
                if "externalId" in c.after:
                    body["externalId"] = c.after["externalId"]
                self.client.put("Groups", gid, body, None)
            return

    def _new_group_check(self, c: Change, wanted: list[str]) -> None:
        with self._lock:
            failed = set(self.failed)
        missing = [e for e in wanted if self._id(e) is None and e not in failed]
        if missing:
            raise ReconcilerError(f"cannot add {', '.join(missing)}: not created")
        self._left_out_of(c, [e for e in wanted if self._id(e) is None])

    def new_group_adds(self, c: Change) -> list[str]:
        """The ids a new (not adopted) team's group still needs: its members created after it."""
        assert c.after is not None
        wanted = list(c.after.get("members", []))
        self._new_group_check(c, wanted)
        return [i for i in (self._id(e) for e in wanted if e not in known_ids(c)) if i]

    def _update_group(self, c: Change) -> None:
        assert c.id is not None and c.before is not None and c.after is not None
        before = set(c.before.get("members", []))
        after = set(c.after.get("members", []))
        with self._lock:
            failed = set(self.failed)
        # a member whose own create failed is left out (reported under their address; the next apply
        # adds them), and stays out of a whole-list replace below too
        skipped = {e for e in after - before if self._id(e) is None and e in failed}
        self._left_out_of(c, sorted(skipped))
        after -= skipped
        add_emails = sorted(after - before)
        missing = [e for e in add_emails if self._id(e) is None]
        if missing:
            raise ReconcilerError(f"cannot add {', '.join(missing)} to the team: not created")
        add = [self._id(e) or "" for e in add_emails]
        remove = [self._id(e) or "" for e in sorted(before - after) if self._id(e)]
        ops = scim.group_attr_ops(c.diff, self.p)
        twice = len(c.before.get("members", [])) != len(before)
        if self.client.caps.patch and (twice or (remove and len(add) + len(remove) >= len(after))):
            # the change is as large as the result (a team cut in half), or the provider holds a member
            # twice (set differences cannot see that): one replace of the whole list does it
            self.client.set_members(c.id, [self._id(e) or "" for e in sorted(after) if self._id(e)], ops,
                                    _etag(c))
            return
        if not self.client.caps.patch:
            live = self.client.get("Groups", c.id) or {}
            body = {k: v for k, v in live.items() if k not in ("meta", "id")}
            body["displayName"] = c.after["displayName"]
            if "externalId" in c.after:
                body["externalId"] = c.after["externalId"]
            body["members"] = self._member_values([i for i in (self._id(e) for e in sorted(after)) if i])
            self.client.put("Groups", c.id, body, _etag(c))
            return
        self.client.patch_members(c.id, add, remove, ops, _etag(c))

    def _delete_group(self, c: Change) -> None:
        assert c.id is not None
        self.client.delete("Groups", c.id, _etag(c))


def _oldest(groups: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Of several groups of one name, the one every apply keeps: the first created, then the lowest id."""
    if not groups:
        return None
    return min(groups, key=lambda g: (str((g.get("meta") or {}).get("created") or ""), str(g.get("id"))))


def manager_levels(changes: list[Change]) -> list[list[Change]]:
    """Split member writes into waves so that a manager created in this run is written before the
    members who report to them (their ``depends_on``; a chain of managers gives several waves)."""
    return levels(changes)


def _etag(c: Change) -> str | None:
    return c.precondition.etag if c.precondition else None


