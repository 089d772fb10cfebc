#!/usr/bin/env python3
"""Start-up of the command line: `reconciler validate examples/quickstart`, run again and again (as
hyperfine does: warm-up runs, then timed ones; mean, median, min and spread), and what its imports cost
(``python -X importtime``, the modules taking longest with what they import).

    python bench/startup.py                  # 20 runs
    python bench/startup.py --runs 50 --top 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.25


def command(args: list[str]) -> list[str]:
    exe = Path(sys.executable).parent / "reconciler"
    return [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "reconciler"]), *args]


def timed(cmd: list[str], runs: int, warmup: int) -> list[float]:
    out = []
    for k in range(warmup + runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        if k >= warmup:
            out.append(time.perf_counter() - t0)
    return out


def import_costs(args: list[str], top: int) -> tuple[float, list[tuple[int, str]]]:
    """The whole import time in seconds and the ``top`` modules by cumulative microseconds."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "reconciler", *args], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    rows = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cum, name = line[len("import time:"):].split("|")
        rows.append((int(cum), name[1:]))  # top-level imports have no indent
    whole = sum(c for c, n in rows if not n.startswith(" "))
    return whole / 1e6, sorted(rows, reverse=True)[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    args = ["validate", "examples/quickstart"]
    walls = timed(command(args), a.runs, a.warmup)
    bare = timed([sys.executable, "-c", "pass"], a.runs, a.warmup)
    mean, med = statistics.mean(walls), statistics.median(walls)
    print(f"reconciler {' '.join(args)}: {a.runs} runs, mean {mean:.3f} s, median {med:.3f} s, "
          f"min {min(walls):.3f} s, max {max(walls):.3f} s, stdev {statistics.pstdev(walls):.3f} s")
    print(f"python -c pass: median {statistics.median(bare):.3f} s (the interpreter's own start)")
    print(f"target <= {TARGET_S} s wall: {'met' if med <= TARGET_S else 'missed'} (median)")
    whole, rows = import_costs(args, a.top)
    print(f"\nimports: {whole:.3f} s in all; the {a.top} largest (cumulative):")
    for cum, name in rows:
        print(f"  {cum / 1000:8.1f} ms  {name.strip()}")


if __name__ == "__main__":
    main()
