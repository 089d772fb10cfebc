#!/usr/bin/env python3
"""Work that must grow linearly with the input, measured at two sizes ten times apart.

    python bench/linear.py            # 10,000 and 100,000

Measured: CSV import of one member's identities, and validating a config whose `roles:` list has N
wrong items (each one an error to translate to file:line:col; 40,000 took 127 s when it was quadratic).

Prints CPU seconds at each size and the ratio of the cost per item (1.0 is linear; a quadratic
algorithm shows about 10). The baseline in the same run is the cost of reading the same text with
Python's csv module alone, the floor under any CSV import.
"""

from __future__ import annotations

import csv
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.config.loader import load_config  # noqa: E402
from reconciler.errors import ConfigError  # noqa: E402
from reconciler.usermaps.formats import read_csv  # noqa: E402


def cpu(fn: object) -> float:
    t0 = time.process_time()
    fn()  # type: ignore[operator]
    return time.process_time() - t0


def csv_rows(n: int) -> bytes:
    """One member with n identities: the shape that was quadratic (a scan of the member's ids per row)."""
    return ("member,system,identity\n" + "".join(f"a@acme.io,ci,user{i}\n" for i in range(n))).encode()


def main() -> None:
    sizes = (10_000, 100_000)
    print(f"{'work':<34} {'N':>8} {'CPU s':>8} {'us/item':>8} {'floor us/item':>14}")
    per: dict[str, list[float]] = {"csv import": [], "floor": []}
    for n in sizes:
        raw = csv_rows(n)
        t = cpu(lambda: read_csv(raw, "maps.csv"))  # noqa: B023
        f = cpu(lambda: list(csv.reader(io.StringIO(raw.decode()))))  # noqa: B023
        per["csv import"].append(t / n)
        per["floor"].append(f / n)
        print(f"{'usermaps import (CSV, one member)':<34} {n:>8} {t:>8.3f} {t / n * 1e6:>8.1f} {f / n * 1e6:>14.2f}")
    ratio = per["csv import"][1] / per["csv import"][0]
    floor = per["floor"][1] / per["floor"][0]
    print(f"cost per item at {sizes[1]:,} vs {sizes[0]:,}: {ratio:.2f}x (floor {floor:.2f}x); 1.0 is linear")
    roles = []
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            cfg = Path(d) / f"roles{n}.yaml"
            cfg.write_text(wrong_roles(n))
            t = cpu(lambda: _invalid(cfg))  # noqa: B023
            roles.append(t / n)
            print(f"{'validate (roles: N wrong items)':<34} {n:>8} {t:>8.3f} {t / n * 1e6:>8.1f}")
    print(f"cost per item at {sizes[1]:,} vs {sizes[0]:,}: {roles[1] / roles[0]:.2f}x; 1.0 is linear")


def wrong_roles(n: int) -> str:
    """One member whose roles are n numbers, each an error: the shape whose translation was quadratic."""
    return "members:\n  - email: a@acme.io\n    roles: [" + ", ".join(["1"] * n) + "]\n"


def _invalid(f: Path) -> None:
    try:
        load_config(f)
    except ConfigError as exc:
        assert len(exc.diagnostics) >= 1
    else:
        raise AssertionError("the config validated")


if __name__ == "__main__":
    main()
