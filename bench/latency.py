#!/usr/bin/env python3
"""reconciler through a fixed round-trip time: a real scim2-server and the Jira sandbox behind
bench/rttproxy.py on 127.0.0.1, with the baselines measured through the same proxy in the same run.

    python bench/run.py --rtt-ms 100                       # N = 1,000 and 10,000
    python bench/run.py --rtt-ms 100 --sizes 1000,10000,100000
    python bench/latency.py --rtt-ms 100 --mbit 50 --write  # with a bandwidth; record in RESULTS.md

For each N (teams N/10, pages of 100: the provider's ``page_size``, as a SaaS endpoint capped at 100):
apply to an empty provider vs raw httpx making the same writes at the same concurrency (8), both through
the proxy; then the no-op plan vs the sequential paged floor (raw httpx, one page after another)
through the proxy and without it. The limit of a plan is the larger of the floor without delay (the
server's own time) and ceil(pages / concurrency) x RTT. Then a Jira Cloud plan of examples/full's
shape with 10 and 50 integrations: its requests and wall vs the sum of those requests' round trips.
Each measurement is a process of its own (bench/run.py's workers): CPU and peak RSS are reconciler's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import run as base  # bench/run.py: the org, the server, the workers

HERE = Path(__file__).resolve().parent
PAGE = 100
JIRA_INTEGRATIONS = (10, 50)


class Proxy:
    """bench/rttproxy.py in a subprocess, in front of ``upstream`` (host:port)."""

    def __init__(self, upstream: str, rtt_ms: float, mbit: float | None) -> None:
        cmd = [sys.executable, str(HERE / "rttproxy.py"), "--upstream", upstream, "--rtt-ms", str(rtt_ms)]
        self.proc = subprocess.Popen(cmd + (["--mbit", str(mbit)] if mbit else []), stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            raise SystemExit(f"rttproxy did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def scim_config(folder: Path, n: int, url: str) -> str:
    base.write_config(folder, n, url, "auto")
    with (folder / "providers.yaml").open("a") as f:
        f.write(f"    page_size: {PAGE}\n")
    return str(folder)


def bench_scim(n: int, tmp: Path, rtt_ms: float, mbit: float | None, repeat: int) -> dict[str, Any]:
    server = base.Server()
    server.start()
    proxy = Proxy(f"127.0.0.1:{server.port}", rtt_ms, mbit)
    far = f"http://127.0.0.1:{proxy.port}/v2"
    cfg = scim_config(tmp / f"scim-{n}", n, far)
    r: dict[str, Any] = {"n": n, "teams": len(base.teams_of(n))}
    try:
        base.say(f"[{n}] raw httpx writes through the proxy (Bulk + PATCH, {base.CONCURRENCY} at once)")
        r["raw_write"] = base.run("raw-write", base=far, n=n, bulk=True)
        server.restart()
        base.say(f"[{n}] apply to an empty provider through the proxy")
        r["apply"] = base.run("reconciler", config=cfg, apply=True)
        noop, floor, near = [], [], []
        for k in range(repeat):
            base.say(f"[{n}] no-op plan, sequential floor through the proxy, floor without it ({k + 1}/{repeat})")
            noop.append(base.run("reconciler", config=cfg))
            floor.append(base.run("floor-read", base=far, page=PAGE))
            near.append(base.run("floor-read", base=server.base_url, page=PAGE))
        r["noop"] = min(noop, key=lambda x: x["plan"]["wall"])
        r["floor_far"] = min(floor, key=lambda x: x["wall"])
        r["floor_near"] = min(near, key=lambda x: x["wall"])
        r["noop_cpu"] = min(x["plan"]["cpu"] for x in noop)
        r["load_cpu"] = min(x["load"]["cpu"] for x in [*noop, r["apply"]])
        r["peak_rss"] = max(x["rss_mb"] for x in [*noop, r["apply"]])
    finally:
        proxy.stop()
        server.stop()
    return r


def jira_config(folder: Path, k: int, url: str, info: dict[str, str]) -> str:
    """examples/full's Cloud integration, ``k`` times (each its own name and webhook), with its teams."""
    members = [{"email": f"m{i}@acme.io"} for i in range(4)]
    integ = [{"name": f"findings-{j:02d}", "program": f"prog-{j:02d}", "connection": "cloud", "project": "SEC",
              "issue_type": "Bug", "trigger": "submission-accepted", "labels": ["bug-bounty"],
              "priorities": {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low"},
              "statuses": {"accepted": "In Progress", "closed": "Closed"},
              "resolutions": {"resolved": "Fixed", "duplicate": "Duplicate"},
              "comments": ["researcher", "triage"], "team_roles": {"appsec": "Developers"},
              "webhook": {"url": f"https://platform.acme.io/hooks/jira/{j}",
                          "events": ["jira:issue_updated", "comment_created"]}} for j in range(k)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(json.dumps({
        "connections": [{"name": "cloud", "type": "jira-cloud", "site_url": url, "email": info["JIRA_EMAIL"],
                         "api_token": "${env:BENCH_JIRA_TOKEN}"}],
        "members": members, "teams": [{"name": "appsec", "members": [m["email"] for m in members]}],
        "user_maps": [{"member": "m0@acme.io", "identities": {"cloud": "5b10ac8d82e05b22cc7d4e00"}}],
        "integrations": integ}))
    return str(folder)


def bench_jira(tmp: Path, rtt_ms: float, mbit: float | None) -> list[dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.sandbox.jira", "--flavour", "cloud", "--port", "0"],
                            stdout=subprocess.PIPE, text=True, cwd=base.ROOT)
    assert proc.stdout is not None
    info: dict[str, str] = {}
    for line in proc.stdout:
        if "=" in line:
            key, v = line.strip().split("=", 1)
            info[key] = v
        if line.startswith("("):
            break
    port = int(info["JIRA_SITE_URL"].rsplit(":", 1)[1])
    proxy = Proxy(f"127.0.0.1:{port}", rtt_ms, mbit)
    os.environ["BENCH_JIRA_TOKEN"] = info["JIRA_API_TOKEN"]
    out = []
    try:
        for k in JIRA_INTEGRATIONS:
            base.say(f"[jira] plan of {k} integrations, through the proxy and without it")
            far = base.run("reconciler", config=jira_config(tmp / f"jira-{k}", k, f"http://127.0.0.1:{proxy.port}",
                                                           info))
            near = base.run("reconciler", config=jira_config(tmp / f"jira-{k}-near", k, info["JIRA_SITE_URL"], info))
            out.append({"integrations": k, "far": far["plan"], "near": near["plan"], "rss_mb": far["rss_mb"]})
    finally:
        proxy.stop()
        proc.terminate()
        proc.wait(10)
    return out


def report(res: dict[str, Any]) -> str:
    rtt = res["rtt_ms"] / 1000
    lines = [f"RTT {res['rtt_ms']:.0f} ms" + (f", {res['mbit']} Mbit/s" if res.get("mbit") else "")
             + f"; pages of {PAGE}; concurrency {base.CONCURRENCY}", "",
             "| N | measurement | reconciler s | baseline | baseline s | ratio | target | verdict |",
             "|---|---|---:|---|---:|---:|---|---|"]

    def row(n: str, what: str, mine: float, against: str, theirs: float, target: float | None,
            higher_is_better: bool = False) -> None:
        ratio = theirs / mine if higher_is_better else mine / theirs
        verdict = "" if target is None else ("met" if (ratio >= target if higher_is_better else ratio <= target)
                                            else "**missed**")
        tgt = "" if target is None else (">= " if higher_is_better else "<= ") + f"{target}x"
        lines.append(f"| {n} | {what} | {mine:.2f} | {against} | {theirs:.2f} | {ratio:.2f}x | {tgt} | {verdict} |")

    cpu = ["", "| N | no-op plan CPU µs/member | with loading the YAML | peak RSS MB (plan, apply) | "
           "plan requests |", "|---|---:|---:|---:|---|"]
    for r in res["scim"]:
        n, noop = r["n"], r["noop"]["plan"]
        pages = math.ceil(n / PAGE) + math.ceil(r["teams"] / PAGE)
        limit = max(r["floor_near"]["wall"], math.ceil(pages / base.CONCURRENCY) * rtt)
        label = f"{n:,}"
        row(label, "no-op plan", noop["wall"], "limit: max(floor without delay, "
            f"ceil({pages}/{base.CONCURRENCY}) x RTT)", limit, 1.25)
        row(label, "no-op plan", noop["wall"], "sequential floor through the proxy", r["floor_far"]["wall"], 0.55)
        near = r["floor_near"]["wall"]
        row(label, "- floor without delay (the server's own time)", near, "", near, None)
        a, w = r["apply"]["apply"], r["raw_write"]
        row(label, f"apply to empty ({(n + r['teams']) / a['wall']:,.0f} objects/s)", a["wall"],
            "raw httpx, same writes and concurrency (throughput)", w["wall"], 0.8, higher_is_better=True)
        cpu.append(f"| {label} | {r['noop_cpu'] / n * 1e6:.0f} | {(r['noop_cpu'] + r['load_cpu']) / n * 1e6:.0f} | "
                   f"{r['peak_rss']:.0f} | {base.fmt_req(noop['requests'])} |")
    for j in res.get("jira", []):
        reqs = sum(j["far"]["requests"].values())
        row(f"Jira x{j['integrations']}", f"plan ({reqs} requests; {j['near']['wall']:.2f} s without delay)",
            j["far"]["wall"], f"sum of its round trips ({reqs} x RTT)", reqs * rtt,
            0.35 if j["integrations"] == 10 else None)
    return "\n".join(lines + cpu)


def write_results(path: Path, cmd: str, about: str, table: str) -> None:
    text = path.read_text()
    block = f"<!-- latency:start -->\n`{cmd}`\n\n{about}\n\n{table}\n<!-- latency:end -->"
    if "<!-- latency:start -->" in text:
        text = re.sub(r"<!-- latency:start -->.*<!-- latency:end -->", lambda _: block, text, flags=re.S)
    else:
        text += "\n## Through a round-trip time\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rtt-ms", type=float, default=100.0)
    ap.add_argument("--mbit", type=float, help="also a bandwidth, Mbit/s each way per connection")
    ap.add_argument("--sizes", default="1000,10000", help="org sizes, comma-separated (100000 takes minutes)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of the no-op plan and its floors; the best counts")
    ap.add_argument("--no-jira", action="store_true")
    ap.add_argument("--write", action="store_true", help="record the table in bench/RESULTS.md")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--report", type=Path, help="print (and with --write, record) the table of a --json file")
    a = ap.parse_args(argv)
    if a.report:
        res = json.loads(a.report.read_text())
    else:
        import tempfile
        sizes = [int(x) for x in a.sizes.split(",") if x.strip()]
        about = base.machine() + f"; commit {_commit()}"
        base.say(f"latency benchmark: RTT {a.rtt_ms} ms, N = {', '.join(f'{n:,}' for n in sizes)}\n{about}")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="reconciler-latency-") as tmp:
            res = {"about": about, "rtt_ms": a.rtt_ms, "mbit": a.mbit, "sizes": sizes,
                   "scim": [bench_scim(n, Path(tmp), a.rtt_ms, a.mbit, a.repeat) for n in sizes],
                   "jira": [] if a.no_jira else bench_jira(Path(tmp), a.rtt_ms, a.mbit)}
        res["total_s"] = time.perf_counter() - t0
    table = report(res)
    print(f"\n{res['about']}\n\n{table}\n\n(total {res['total_s']:.0f} s)")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    if a.write:
        cmd = (f"python bench/run.py --rtt-ms {res['rtt_ms']:g} --sizes {','.join(map(str, res['sizes']))}"
               + (f" --mbit {res['mbit']:g}" if res.get("mbit") else ""))
        write_results(HERE / "RESULTS.md", cmd, res["about"], table)


def _commit() -> str:
    p = subprocess.run(["git", "-C", str(base.ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return p.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
