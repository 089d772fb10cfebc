#!/usr/bin/env python3
"""Benchmarks of reconciler against a real scim2-server on 127.0.0.1, with baselines.

    python bench/run.py                    # N = 1,000 and 10,000
    python bench/run.py --n 1000           # one size
    python bench/run.py --big              # adds N = 50,000
    python bench/run.py --write            # also rewrite the table in bench/RESULTS.md
    python bench/run.py --rtt-ms 100       # through a 100 ms round trip instead (bench/latency.py)

For each N it seeds an org of N members and N/10 teams (about 20 members each) and measures
plan of an empty provider, apply to an empty provider, a no-op plan of the converged org, and
1% drift (plan and apply). Each measurement runs in its own process, so its peak RSS is its
own; CPU is that process's CPU time (reconciler and its HTTP client; the server runs
elsewhere). Baselines on the same server in the same run: the floor (raw httpx reading the
same objects with the same page size; raw httpx sending the same writes with the same
concurrency) and the per-object way (one GET per declared object).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOKEN = "bench-scim-token-5d1e"
TOKEN_VAR = "BENCH_SCIM_TOKEN"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
CONCURRENCY = 8  # the provider default; raw baselines use the same
PAGE = 1000  # scim2-server's advertised maxResults, which reconciler uses
HARD_STOP = time.monotonic() + 3600  # the harness never runs longer than an hour

sys.path.insert(0, str(ROOT))


# --- the org ---------------------------------------------------------------------------------

def email(i: int) -> str:
    return f"user{i:06d}@bench.example"


def teams_of(n: int) -> list[list[int]]:
    """N/10 teams, each member in two of them: about 20 members per team."""
    t = max(1, n // 10)
    teams: list[list[int]] = [[] for _ in range(t)]
    for i in range(n):
        a, b = i % t, (i * 7 + 3) % t
        teams[a].append(i)
        if b != a:
            teams[b].append(i)
    return teams


def write_config(folder: Path, n: int, base_url: str, bulk: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "providers.yaml").write_text(
        "providers:\n"
        f"  - name: bench\n    type: scim\n    base_url: {base_url}\n"
        f"    auth: {{type: bearer, token: '${{env:{TOKEN_VAR}}}'}}\n"
        f"    concurrency: {CONCURRENCY}\n    bulk: {bulk}\n    timeout: 120\n")
    lines = ["members:"]
    for i in range(n):
        lines += [f"  - email: {email(i)}", f"    given_name: Given{i}", f"    family_name: Family{i}",
                  f"    department: Dept{i % 50}"]
    (folder / "members.yaml").write_text("\n".join(lines) + "\n")
    lines = ["teams:"]
    for t, ms in enumerate(teams_of(n)):
        lines += [f"  - name: team-{t:05d}", "    members:"] + [f"      - {email(i)}" for i in ms]
    (folder / "teams.yaml").write_text("\n".join(lines) + "\n")
    return folder


# --- the server ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """bench/server.py in a subprocess; ``restart`` empties it (the same port, a fresh process)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v2"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "server.py"), "--port", str(self.port),
                                      "--token", TOKEN], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.base_url + "/ServiceProviderConfig", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise SystemExit(f"bench server did not start: {err[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


# --- measurements (each runs in a worker process) ----------------------------------------------

def kind(method: str, path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == "v2":
        parts = parts[1:]
    name = parts[0] if parts else "/"
    return f"{method} /{name}" + ("/{id}" if len(parts) > 1 else "")


@contextmanager
def measure(out: dict[str, Any]) -> Iterator[None]:
    t0, c0 = time.perf_counter(), time.process_time()
    yield
    out["wall"] = time.perf_counter() - t0
    out["cpu"] = time.process_time() - c0


def raw_client() -> httpx.Client:
    return httpx.Client(headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json",
                                 "Accept": "application/scim+json"}, timeout=120,
                        limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY))


def list_all(c: httpx.Client, base: str, res: str, counter: Counter[str], page: int = PAGE) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    start = 1
    while time.monotonic() < HARD_STOP:
        body = c.get(f"{base}/{res}", params={"startIndex": str(start), "count": str(page)}).json()
        counter[f"GET /{res}"] += 1
        items = body.get("Resources") or []
        out += items
        start += len(items)
        if not items or len(out) >= int(body.get("totalResults", 0)):
            return out
    raise SystemExit("hard stop")


def pooled(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(fn, items))


def w_reconciler(job: dict[str, Any]) -> dict[str, Any]:
    """plan (and apply): reconciler in this process, as the CLI runs it (the plan's text written as it is
    made, redacted a change at a time, here to /dev/null)."""
    from reconciler.apply import apply_plan
    from reconciler.config.loader import load_config
    from reconciler.memory import tune_malloc
    from reconciler.providers._http import CallRecord
    from reconciler.render.text import PlanText
    from reconciler.secrets import redact
    from reconciler.session import Session

    tune_malloc()  # as the CLI does first
    os.environ[TOKEN_VAR] = TOKEN
    out: dict[str, Any] = {}
    load: dict[str, Any] = {}
    with measure(load):
        config = load_config(job["config"])
    out["load"] = load
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def record(r: CallRecord) -> None:
        with lock:
            calls[kind(r.method, r.path)] += 1

    with Session(config, recorder=record) as s:
        plan: dict[str, Any] = {}
        with measure(plan):
            p = s.plan()
            with open(os.devnull, "w") as sink:
                for chunk in PlanText(colour=False).chunks(p):
                    sink.write(redact(chunk))
        plan["requests"] = dict(calls)
        plan["changes"] = len(p.changes)
        out["plan"] = plan
        if job.get("apply"):
            calls.clear()
            ap: dict[str, Any] = {}
            with measure(ap):
                result = apply_plan(s, p)
            ap["requests"] = dict(calls)
            ap["failed"] = len(result.failures)
            ap["writes"] = sum(v for k, v in calls.items() if not k.startswith("GET"))
            out["apply"] = ap
    return out


def w_floor_read(job: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    counter: Counter[str] = Counter()
    with raw_client() as c, measure(out):
        counter["GET /ServiceProviderConfig"] += 1
        c.get(job["base"] + "/ServiceProviderConfig").json()
        users = list_all(c, job["base"], "Users", counter, job.get("page", PAGE))
        groups = list_all(c, job["base"], "Groups", counter, job.get("page", PAGE))
    out["requests"] = dict(counter)
    out["objects"] = len(users) + len(groups)
    return out


def w_per_object(job: dict[str, Any]) -> dict[str, Any]:
    """One GET per declared object, by id (how a Terraform provider refreshes its state)."""
    out: dict[str, Any] = {}
    counter: Counter[str] = Counter()
    with raw_client() as c:
        ids = [("Users", u["id"]) for u in list_all(c, job["base"], "Users", Counter())]
        ids += [("Groups", g["id"]) for g in list_all(c, job["base"], "Groups", Counter())]

        def one(item: tuple[str, str]) -> None:
            c.get(f"{job['base']}/{item[0]}/{item[1]}").json()

        with measure(out):
            pooled(one, ids)
    counter["GET /Users/{id}"] = sum(1 for r, _ in ids if r == "Users")
    counter["GET /Groups/{id}"] = sum(1 for r, _ in ids if r == "Groups")
    out["requests"] = dict(counter)
    return out


def _user_body(i: int) -> dict[str, Any]:
    return {"schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "userName": email(i), "active": True, "externalId": "reconciler:" + email(i),
            "emails": [{"value": email(i), "type": "work", "primary": True}],
            "name": {"givenName": f"Given{i}", "familyName": f"Family{i}"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": f"Dept{i % 50}"}}


def _group_body(t: int) -> dict[str, Any]:
    return {"schemas": [GROUP], "displayName": f"team-{t:05d}", "externalId": f"reconciler:team-{t:05d}",
            "members": []}


def _check(r: httpx.Response) -> httpx.Response:
    if r.status_code >= 400:
        raise SystemExit(f"raw baseline: {r.request.method} {r.request.url} -> {r.status_code}: {r.text[:300]}")
    return r


def w_raw_write(job: dict[str, Any]) -> dict[str, Any]:
    """The writes reconciler makes on an empty provider, sent by raw httpx at the same concurrency:
    teams, members (one POST each, or POST /Bulk in chunks of 1,000), then each team's members."""
    n, bulk, base = job["n"], job["bulk"], job["base"]
    teams = teams_of(n)
    out: dict[str, Any] = {}
    counter: Counter[str] = Counter()
    lock = threading.Lock()

    def count(k: str) -> None:
        with lock:
            counter[k] += 1

    with raw_client() as c, measure(out):
        def post(res: str, body: dict[str, Any]) -> str:
            count(f"POST /{res}")
            return str(_check(c.post(f"{base}/{res}", json=body)).json()["id"])

        def bulk_post(res: str, bodies: list[dict[str, Any]]) -> list[str]:
            ids: list[str] = []
            for k in range(0, len(bodies), 1000):
                ops = [{"method": "POST", "path": f"/{res}", "bulkId": f"b{k + j}", "data": b}
                       for j, b in enumerate(bodies[k:k + 1000])]
                count("POST /Bulk")
                answer = _check(c.post(f"{base}/Bulk", json={"schemas": [BULK], "Operations": ops})).json()
                ids += [o["location"].rsplit("/", 1)[-1] for o in answer["Operations"]]
            return ids

        if bulk:
            gids = bulk_post("Groups", [_group_body(t) for t in range(len(teams))])
            uids = bulk_post("Users", [_user_body(i) for i in range(n)])
        else:
            gids = pooled(lambda t: post("Groups", _group_body(t)), list(range(len(teams))))
            uids = pooled(lambda i: post("Users", _user_body(i)), list(range(n)))

        def members(t: int) -> None:
            ops = [{"op": "add", "path": "members", "value": [{"value": uids[i]} for i in teams[t]]}]
            count("PATCH /Groups/{id}")
            _check(c.patch(f"{base}/Groups/{gids[t]}", json={"schemas": [PATCH_OP], "Operations": ops}))

        pooled(members, list(range(len(teams))))
    out["requests"] = dict(counter)
    out["writes"] = sum(counter.values())
    return out


def w_drift(job: dict[str, Any]) -> dict[str, Any]:
    """Make 1% drift on the server (a member's given name; a member removed from a team); with
    ``restore``, time raw httpx sending the PATCHes that undo it, at the same concurrency."""
    base = job["base"]
    out: dict[str, Any] = {}
    counter: Counter[str] = Counter()
    with raw_client() as c:
        users = list_all(c, base, "Users", Counter())
        groups = list_all(c, base, "Groups", Counter())
        by_name = {u["userName"]: u["id"] for u in users}
        hit_users = [u for k, u in enumerate(sorted(users, key=lambda u: u["userName"])) if k % 100 == 7]
        hit_groups = [g for k, g in enumerate(sorted(groups, key=lambda g: g["displayName"]))
                      if k % 100 == 7 and g.get("members")]
        removed = {g["id"]: g["members"][0]["value"] for g in hit_groups}

        def patch(res: str, rid: str, ops: list[dict[str, Any]]) -> None:
            _check(c.patch(f"{base}/{res}/{rid}", json={"schemas": [PATCH_OP], "Operations": ops}))

        def drift_user(u: dict[str, Any]) -> None:
            patch("Users", u["id"], [{"op": "replace", "path": "name.givenName", "value": "Drifted"}])

        def drift_group(g: dict[str, Any]) -> None:
            patch("Groups", g["id"], [{"op": "remove", "path": f'members[value eq "{removed[g["id"]]}"]'}])

        pooled(drift_user, hit_users)
        pooled(drift_group, hit_groups)
        out["drifted"] = len(hit_users) + len(hit_groups)
        if job.get("restore"):
            given = {u["id"]: "Given" + str(int(u["userName"][4:10])) for u in hit_users}
            assert all(by_name[u["userName"]] == u["id"] for u in hit_users)
            with measure(out):
                pooled(lambda u: patch("Users", u["id"], [{"op": "replace", "path": "name.givenName",
                                                           "value": given[u["id"]]}]), hit_users)
                pooled(lambda g: patch("Groups", g["id"], [{"op": "add", "path": "members",
                                                            "value": [{"value": removed[g["id"]]}]}]),
                       hit_groups)
            counter["PATCH /Users/{id}"] = len(hit_users)
            counter["PATCH /Groups/{id}"] = len(hit_groups)
            out["requests"] = dict(counter)
            out["writes"] = len(hit_users) + len(hit_groups)
    return out


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "reconciler": w_reconciler, "floor-read": w_floor_read, "per-object": w_per_object,
    "raw-write": w_raw_write, "drift": w_drift,
}


def worker_main(spec: str) -> None:
    job = json.loads(spec)
    out = WORKERS[job["worker"]](job)
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def run(worker: str, **job: Any) -> dict[str, Any]:
    if time.monotonic() > HARD_STOP:
        raise SystemExit("hard stop: the benchmark ran for an hour")
    job["worker"] = worker
    p = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True,
                       timeout=1800, env={**os.environ, "PYTHONHASHSEED": "0"})
    if p.returncode != 0:
        raise SystemExit(f"worker {worker} failed:\n{p.stderr[-4000:]}")
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


# --- orchestration ---------------------------------------------------------------------------

def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def bench_size(n: int, tmp: Path, repeat: int, apply_repeat: int) -> dict[str, Any]:
    server = Server()
    server.start()
    cfg = str(write_config(tmp / f"n{n}", n, server.base_url, "auto"))
    cfg_never = str(write_config(tmp / f"n{n}-never", n, server.base_url, "never"))
    r: dict[str, Any] = {"n": n, "teams": len(teams_of(n))}
    try:
        say(f"[{n}] plan of an empty provider")
        r["plan_empty"] = run("reconciler", config=cfg)
        # each apply and its floor alternate, on a fresh server each, and the best of each counts: on a
        # shared machine one sample of a 20 s apply swung by a fifth between runs
        samples: dict[str, list[dict[str, Any]]] = {"raw_post": [], "apply_never": [], "raw_bulk": [], "apply": []}
        for k in range(apply_repeat):
            if k:
                server.restart()
            say(f"[{n}] raw httpx: one POST per object, {CONCURRENCY} at once")
            samples["raw_post"].append(run("raw-write", base=server.base_url, n=n, bulk=False))
            server.restart()
            say(f"[{n}] apply to an empty provider, bulk: never")
            samples["apply_never"].append(run("reconciler", config=cfg_never, apply=True))
            server.restart()
            say(f"[{n}] raw httpx: POST /Bulk")
            samples["raw_bulk"].append(run("raw-write", base=server.base_url, n=n, bulk=True))
            server.restart()
            say(f"[{n}] apply to an empty provider, bulk: auto")  # last: the org the next steps read
            samples["apply"].append(run("reconciler", config=cfg, apply=True))
        for key, got in samples.items():
            r[key] = min(got, key=lambda x: (x["apply"] if "apply" in x else x)["wall"])
        say(f"[{n}] no-op plan and the read floor (x{repeat}, best)")
        noop, floor = [], []
        for _ in range(repeat):
            noop.append(run("reconciler", config=cfg))
            floor.append(run("floor-read", base=server.base_url))
        r["noop"] = min(noop, key=lambda x: x["plan"]["wall"])
        r["floor_read"] = min(floor, key=lambda x: x["wall"])
        say(f"[{n}] per-object reads")
        r["per_object"] = run("per-object", base=server.base_url)
        say(f"[{n}] 1% drift: plan and apply")
        r["drift_made"] = run("drift", base=server.base_url)["drifted"]
        r["drift"] = run("reconciler", config=cfg, apply=True)
        after = run("reconciler", config=cfg)
        r["drift_after"] = after["plan"]["changes"]
        # every reconciler run above loaded the same config: the least CPU of them is the load's cost,
        # as the best of the repeats is the no-op plan's (one sample swung 75-133 µs a member)
        runs = (r["plan_empty"], *samples["apply_never"], *samples["apply"], *noop, r["drift"], after)
        r["peak_rss"] = max(x["rss_mb"] for x in runs)
        r["load"] = min((x["load"] for x in runs),
                        key=lambda m: m["cpu"])
        say(f"[{n}] 1% drift: raw httpx PATCHes")
        r["raw_patch"] = run("drift", base=server.base_url, restore=True)
    finally:
        server.stop()
    return r


# --- report ----------------------------------------------------------------------------------

def fmt_req(req: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(req.items(), key=lambda kv: (-kv[1], kv[0])))


def pages(n: int) -> int:
    return -(-n // PAGE)


def report(results: list[dict[str, Any]]) -> tuple[str, str]:
    rows = ["| N | measurement | wall s | CPU s | CPU µs/member | requests | peak RSS MB | baseline | ratio |",
            "|---|---|---:|---:|---:|---|---:|---|---:|"]
    checks = ["| N | target | measured | verdict |", "|---|---|---|---|"]

    def row(n: int, what: str, m: dict[str, Any], rss: float, base: str = "", ratio: float | None = None) -> None:
        cpu = m.get("cpu")
        rows.append(f"| {n:,} | {what} | {m['wall']:.2f} | {'' if cpu is None else f'{cpu:.2f}'} | "
                    f"{'' if cpu is None else f'{cpu / n * 1e6:.0f}'} | {fmt_req(m.get('requests', {}))} | "
                    f"{rss:.0f} | {base} | {'' if ratio is None else f'{ratio:.2f}x'} |")

    def check(n: int, target: str, measured: str, ok: bool) -> None:
        checks.append(f"| {n:,} | {target} | {measured} | {'met' if ok else '**missed**'} |")

    by_n = {r["n"]: r for r in results}
    for r in results:
        n = r["n"]
        fr, po = r["floor_read"], r["per_object"]
        noop = r["noop"]["plan"]
        row(n, "load config (YAML -> models), best of all runs", r["load"], r["noop"]["rss_mb"])
        row(n, "no-op plan (converged)", noop, r["noop"]["rss_mb"], "floor read", noop["wall"] / fr["wall"])
        row(n, "- floor: raw httpx list, same page size", fr, fr["rss_mb"])
        row(n, "- per-object: one GET per object", po, po["rss_mb"], "no-op plan", po["wall"] / noop["wall"])
        row(n, f"plan of an empty provider ({r['plan_empty']['plan']['changes']:,} changes)",
            r["plan_empty"]["plan"], r["plan_empty"]["rss_mb"])
        a, an = r["apply"]["apply"], r["apply_never"]["apply"]
        rb, rp = r["raw_bulk"], r["raw_post"]
        objs = n + r["teams"]
        row(n, f"apply to empty, bulk: auto ({objs / a['wall']:,.0f} objects/s)", a, r["apply"]["rss_mb"],
            "raw Bulk", rb["wall"] / a["wall"])
        row(n, "- floor: raw httpx, POST /Bulk + PATCH", rb, rb["rss_mb"])
        row(n, f"apply to empty, bulk: never ({objs / an['wall']:,.0f} objects/s)", an, r["apply_never"]["rss_mb"],
            "raw POST", rp["wall"] / an["wall"])
        row(n, "- floor: raw httpx, one POST per object + PATCH", rp, rp["rss_mb"])
        d = r["drift"]
        row(n, f"1% drift: plan ({d['plan']['changes']} changes)", d["plan"], d["rss_mb"])
        row(n, "1% drift: apply", d["apply"], d["rss_mb"], "raw PATCH", r["raw_patch"]["wall"] / d["apply"]["wall"])
        row(n, "- floor: raw httpx PATCH, same concurrency", r["raw_patch"], r["raw_patch"]["rss_mb"])

        allowed = pages(n) + pages(r["teams"]) + 3  # discovery: ServiceProviderConfig, Schemas, ResourceTypes
        made = sum(noop["requests"].values())
        check(n, "no-op plan wall <= 1.3x floor", f"{noop['wall'] / fr['wall']:.2f}x "
              f"({noop['wall']:.2f} s vs {fr['wall']:.2f} s)", noop["wall"] <= 1.3 * fr["wall"])
        check(n, "no-op plan requests <= list pages + discovery", f"{made} (allowed {allowed})", made <= allowed)
        check(n, "no-op plan CPU <= 150 µs/member", f"{noop['cpu'] / n * 1e6:.0f} µs",
              noop["cpu"] / n * 1e6 <= 150)
        whole = noop["cpu"] + r["load"]["cpu"]
        check(n, "the same, with loading the YAML config", f"{whole / n * 1e6:.0f} µs", whole / n * 1e6 <= 150)
        check(n, "apply throughput >= 0.8x raw httpx (Bulk)", f"{rb['wall'] / a['wall']:.2f}x",
              rb["wall"] / a["wall"] >= 0.8)
        check(n, "apply throughput >= 0.8x raw httpx (one POST each)", f"{rp['wall'] / an['wall']:.2f}x",
              rp["wall"] / an["wall"] >= 0.8)
        check(n, "Bulk used, and faster than one POST each", f"{an['wall'] / a['wall']:.2f}x faster; "
              f"{a['requests'].get('POST /Bulk', 0)} Bulk requests", an["wall"] > a["wall"]
              and a["requests"].get("POST /Bulk", 0) > 0)
        check(n, "1% drift apply >= 0.8x raw httpx", f"{r['raw_patch']['wall'] / d['apply']['wall']:.2f}x",
              r["raw_patch"]["wall"] / d["apply"]["wall"] >= 0.8)
        rss = r.get("peak_rss") or max(r[k]["rss_mb"] for k in ("plan_empty", "apply", "apply_never", "noop", "drift"))
        check(n, "peak RSS <= 250 MB", f"{rss:.0f} MB", rss <= 250)
        check(n, "converged: no-op plan / after drift apply", f"{r['noop']['plan']['changes']} / {r['drift_after']} "
              "changes", r["noop"]["plan"]["changes"] == 0 and r["drift_after"] == 0)
        if 1000 in by_n and n > 1000:
            s = by_n[1000]
            for label, key, sub, floor in (("no-op plan", "noop", "plan", "floor_read"),
                                           ("apply", "apply", "apply", "raw_bulk")):
                per_big = r[key][sub]["wall"] / n
                per_small = s[key][sub]["wall"] / 1000
                # the same server's own growth, seen by raw httpx making the same calls: context, not the verdict
                fgrow = (r[floor]["wall"] / n) / (s[floor]["wall"] / 1000)
                check(n, f"{label} wall per member within 1.2x of N=1,000",
                      f"{per_big / per_small:.2f}x ({per_big * 1e6:.0f} vs {per_small * 1e6:.0f} µs; "
                      f"raw httpx floor: {fgrow:.2f}x)", per_big <= 1.2 * per_small)
            for label, key, sub in (("no-op plan", "noop", "plan"), ("apply", "apply", "apply")):
                cb, cs = r[key][sub]["cpu"] / n, s[key][sub]["cpu"] / 1000
                check(n, f"{label} CPU per member within 1.2x of N=1,000",
                      f"{cb / cs:.2f}x ({cb * 1e6:.0f} vs {cs * 1e6:.0f} µs)", cb <= 1.2 * cs)
    return "\n".join(rows), "\n".join(checks)


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version
    vs = ", ".join(f"{p} {version(p)}" for p in ("reconciler", "scim2-server", "scim2-models", "httpx", "pydantic",
                                                 "ruamel.yaml"))
    return (f"{platform.platform()}; {os.cpu_count()} CPUs ({cpu or platform.processor()}); "
            f"Python {platform.python_version()}; {vs}; {date.today().isoformat()}")


def write_results(path: Path, sizes: list[int], table: str, checks: str, about: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmark results\n\n<!-- bench:start -->\n<!-- bench:end -->\n"
    block = (f"<!-- bench:start -->\n`python bench/run.py --n {','.join(map(str, sizes))}`\n\n{about}\n\n"
             f"### Targets\n\n{checks}\n\n### Measurements\n\n{table}\n<!-- bench:end -->")
    text = re.sub(r"<!-- bench:start -->.*<!-- bench:end -->", lambda _: block, text, flags=re.S)
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--n", default="1000,10000", help="org sizes, comma-separated (default 1000,10000)")
    ap.add_argument("--big", action="store_true", help="also N = 50,000")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the no-op plan and its floor; the best counts")
    ap.add_argument("--apply-repeat", type=int, default=2,
                    help="runs of each apply to an empty provider and its floor; the best counts")
    ap.add_argument("--write", action="store_true", help="rewrite the table in bench/RESULTS.md")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--report", type=Path, help="print (and with --write, record) the table of a --json file")
    ap.add_argument("--rtt-ms", type=float, help="the latency benchmark (bench/latency.py) at this round-trip time")
    ap.add_argument("--sizes", help="with --rtt-ms: org sizes, comma-separated (default 1000,10000)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a, rest = ap.parse_known_args()
    if a.rtt_ms is not None:
        import latency
        latency.main(["--rtt-ms", str(a.rtt_ms), *(["--sizes", a.sizes] if a.sizes else []),
                      *(["--write"] if a.write else []), *(["--json", str(a.json)] if a.json else []), *rest])
        return
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    if a.worker:
        worker_main(a.worker)
        return
    if a.report:
        saved = json.loads(a.report.read_text())
        table, checks = report(saved["results"])
        print(f"{saved['machine']}\n\n{checks}\n\n{table}")
        if a.write:
            write_results(HERE / "RESULTS.md", [r["n"] for r in saved["results"]], table, checks, saved["machine"])
        return
    sizes = [int(x) for x in a.n.split(",") if x.strip()] + ([50_000] if a.big else [])
    about = machine()
    say(f"reconciler benchmarks: N = {', '.join(f'{n:,}' for n in sizes)}\n{about}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        results = [bench_size(n, Path(tmp), a.repeat, a.apply_repeat) for n in sizes]
    table, checks = report(results)
    print(f"\n{about}\n\n{checks}\n\n{table}\n\n(total {time.perf_counter() - t0:.0f} s)")
    if a.json:
        a.json.write_text(json.dumps({"machine": about, "results": results}, indent=1))
    if a.write:
        write_results(HERE / "RESULTS.md", sizes, table, checks, about)


if __name__ == "__main__":
    main()
