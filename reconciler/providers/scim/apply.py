"""Applying one SCIM provider's changes: dependency order, bounded concurrency, failures aggregated.

Order (as Entra ID and Invicti advise): new teams first, then members (creates
and updates, managers before their reports), then team memberships and team
attribute updates, then removals last. A failed change does not stop
independent ones; a change that needs a failed one is skipped and named.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from reconciler.errors import ProviderError, ReconcilerError
from reconciler.execute import ApplyResult, Ledger, Outcome, Workers
from reconciler.plan.model import Action, Change, ScimIds, levels
from reconciler.providers._http import current_address
from reconciler.providers.scim import attributes as scim
from reconciler.providers.scim import bulkwrite
from reconciler.providers.scim.bulk import Adopted, BulkResult
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
    """Applies one provider's changes."""

    def __init__(self, client: ScimClient, observer: Observer | None = None, ledger: Ledger | None = None) -> None:
        self.client = client
        self.ledger = ledger
        self.p = client.provider
        self.ids: dict[str, str] = {}  # member email -> live id, learnt from plan refs and creates
        self.failed: set[str] = set()  # emails / group names whose change failed
        self.result = ApplyResult()
        self.observer = observer
        self._lock = threading.Lock()
        self._slots: dict[str, int] = {}  # address -> index in result.outcomes
        self.left_out: dict[str, list[str]] = {}  # member email -> teams it was not added to (its create failed)
        self._workers = Workers(self.p.concurrency, f"apply-{self.p.name}", ledger)

    def run(self, changes: list[Change]) -> ApplyResult:
        with self._workers:
            return self._run(changes)

    def _run(self, changes: list[Change]) -> ApplyResult:
        for c in changes:
            self.ids.update(known_ids(c))
            if c.kind == "user" and c.id:
                self.ids[c.key] = c.id
        groups = [c for c in changes if c.kind == "group"]
        users = [c for c in changes if c.kind == "user"]
        new_groups = [c for c in groups if c.action is Action.CREATE]
        upd_groups = [c for c in groups if c.action is Action.UPDATE]
        del_groups = [c for c in groups if c.action is Action.DELETE]
        removals = [c for c in users if c.action is Action.DELETE]
        deactivations = [c for c in users if c.action is Action.DEACTIVATE]
        upserts = [c for c in users if c.action in (Action.CREATE, Action.UPDATE)]
        created_groups: dict[str, str] = {}  # team name -> id of the group made (or found) for it
        adopted_groups: set[str] = set()  # teams whose group already existed: members set whole

        self._create_groups(new_groups, created_groups, adopted_groups)
        # a member whose manager is created in this run waits for the manager to have an id
        for level in manager_levels(upserts):
            creates = [c for c in level if c.action is Action.CREATE]
            if self._use_bulk(creates):
                self._bulk_create(creates, "Users", None)
                level = [c for c in level if c.action is not Action.CREATE]
            updates = [c for c in level if c.action is Action.UPDATE]
            if self._use_bulk(updates) and self.client.caps.patch:  # updates through Bulk too
                bulkwrite.run(self, updates, bulkwrite.user_patch(self, self._upsert_user))
                level = [c for c in level if c.action is not Action.UPDATE]
            self._parallel(level, self._upsert_user)
        made = [c for c in new_groups if c.key in created_groups]
        fresh = [c for c in made if c.key not in adopted_groups]
        if self._use_bulk(fresh):  # a new team's members created since the group: one operation each
            bulkwrite.run(self, fresh, bulkwrite.new_group_members(self, created_groups))
            made = [c for c in made if c.key in adopted_groups]
        self._parallel(made, lambda c: self._add_new_group_members(c, created_groups[c.key],
                                                                   c.key in adopted_groups))
        self._parallel(upd_groups, self._update_group)
        # removals last, groups before users: on a provider that takes a deleted user out of its groups
        # (referential integrity), deleting users first would change the groups this apply then deletes
        for phase, fn, prepare in (
                (del_groups, self._delete_group, bulkwrite.delete("Groups", self._delete_group)),
                (deactivations, self._deactivate_user, bulkwrite.user_patch(self, self._deactivate_user)),
                (removals, self._delete_user, bulkwrite.delete("Users", self._delete_user))):
            if self._use_bulk(phase) and (self.client.caps.patch or fn != self._deactivate_user):
                bulkwrite.run(self, phase, prepare)
            else:
                self._parallel(phase, fn)
        self._name_left_out()
        return self.result

    def _left_out_of(self, c: Change, emails: Iterable[str]) -> None:
        with self._lock:
            for e in emails:
                self.left_out.setdefault(e, []).append(c.address)

    def _name_left_out(self) -> None:
        """A member whose create failed was left out of the teams that list them: say so in that member's
        failure, so the summary names everything the next apply still has to do."""
        if not self.left_out:
            return
        by_key = {o.change.key: o for o in self.result.outcomes
                  if o.change.kind == "user" and not o.ok}
        for email, teams in self.left_out.items():
            o = by_key.get(email)
            if o is not None:
                o.error = f"{o.error}; so not added to {', '.join(sorted(teams))}"

    def _create_groups(self, new_groups: list[Change], created: dict[str, str], adopted: set[str]) -> None:
        """Create the new teams' groups, never a second group of one name: servers that do not enforce
        unique displayNames (scim2-server among them) accept two, and two applies at once would each
        make one. The names are read first (a group made since the plan is taken over, not doubled);
        after the creates they are read again, and where two groups of one name exist now every apply
        keeps the same one, the oldest (meta.created, then id), and deletes the one it made itself."""
        if not new_groups:
            return
        existing = self.client.group_names()
        fresh: list[Change] = []
        for c in new_groups:
            there = _oldest(existing.get(c.key, []))
            if there is not None:
                created[c.key] = str(there["id"])
                adopted.add(c.key)
            else:
                fresh.append(c)
        mine: dict[str, str] = {}
        if self._use_bulk(fresh):
            self._bulk_create(fresh, "Groups", mine, adopted)
        else:
            def one(c: Change) -> None:
                gid, existed = self._create_group(c)
                mine[c.key] = gid
                if existed:
                    adopted.add(c.key)
            self._parallel(fresh, one, report=False)
        created.update(mine)
        made_here = {k: v for k, v in mine.items() if k not in adopted}
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
                created[name] = str(keep["id"])
                adopted.add(name)

    # --- execution -----------------------------------------------------------

    def _parallel(self, changes: list[Change], fn: Callable[[Change], Any], report: bool = True) -> None:
        """Run ``fn`` on each change, at most ``concurrency`` at once. With ``report=False`` only a
        failure is reported (a step that a later phase completes)."""

        def step(c: Change) -> None:
            blocked = self._blocked_by(c)
            if blocked:
                raise ReconcilerError(f"skipped: depends on {blocked}, which failed")
            self._check_fresh(c)
            fn(c)

        def done(o: Outcome) -> None:
            if not o.ok:
                with self._lock:
                    self.failed.add(o.change.key)
            if report or not o.ok:
                self._done(o)

        self._workers.run(changes, step, done)

    def _done(self, o: Outcome) -> None:
        with self._lock:
            # a group created in phase 1 and completed in phase 3 is reported once, by its last step
            # (found by address in a dict: a scan of the list per outcome is quadratic in the org)
            slot = self._slots.setdefault(o.change.address, len(self.result.outcomes))
            if slot == len(self.result.outcomes):
                self.result.outcomes.append(o)
            else:
                self.result.outcomes[slot] = o
        if self.ledger is not None:
            self.ledger.record(o)
        if self.observer:
            self.observer(o)

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

    def _bulk_create(self, creates: list[Change], resource: str, created: dict[str, str] | None,
                     adopted: set[str] | None = None) -> None:
        """Create users (``created`` None: their ids go to ``self.ids`` and each is reported) or new
        groups (ids into ``created``, names found already there into ``adopted``; only failures are
        reported, as a later phase completes them)."""
        t0 = time.perf_counter()
        items: list[tuple[str, dict[str, Any]]] = []
        by_bid: dict[str, Change] = {}
        refs = self.ids  # no other thread writes to it while the bodies are made
        for i, c in enumerate(creates):
            blocked = self._blocked_by(c)
            try:
                if blocked:
                    raise ReconcilerError(f"skipped: depends on {blocked}, which failed")
                assert c.after is not None
                body = self._group_body(c) if created is not None else scim.user_body(c.after, refs, self._meta())
            except ReconcilerError as exc:
                self._fail(c, str(exc), t0)
                continue
            bid = f"{resource[0].lower()}{i}"
            items.append((bid, body))
            by_bid[bid] = c

        def chunk_done(done: dict[str, BulkResult]) -> None:
            for bid, res in done.items():
                c = by_bid[bid]
                if isinstance(res, ProviderError):
                    self._fail(c, str(res), t0)
                    continue
                rid = res.id if isinstance(res, Adopted) else res
                with self._lock:
                    if created is None:
                        self.ids[c.key] = rid
                    else:
                        created[c.key] = rid
                        if isinstance(res, Adopted) and adopted is not None:
                            adopted.add(c.key)
                if created is None:
                    token = current_address.set(c.address)
                    try:
                        if isinstance(res, Adopted):
                            self._converge_adopted_user(c, res.resource)
                    except ReconcilerError as exc:
                        self._fail(c, str(exc), t0)
                        continue
                    finally:
                        current_address.reset(token)
                    self._done(Outcome(c, True, None, (time.perf_counter() - t0) * 1000))

        token = current_address.set(f"scim.{self.p.name}.bulk")
        try:
            self.client.bulk_create(resource, items, on_chunk=chunk_done,
                                    carries={bid: c.address for bid, c in by_bid.items()})
        finally:
            current_address.reset(token)

    def _fail(self, c: Change, error: str, t0: float) -> None:
        with self._lock:
            self.failed.add(c.key)
        self._done(Outcome(c, False, redact(error), (time.perf_counter() - t0) * 1000))

    # --- groups --------------------------------------------------------------

    def _group_body(self, c: Change) -> dict[str, Any]:
        assert c.after is not None
        members = [i for i in (self._id(e) for e in c.after.get("members", [])) if i]
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


