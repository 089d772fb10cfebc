"""One way to read an offset-paged list from any live system (SCIM startIndex/count, Jira startAt/maxResults,
Redmine offset/limit), bounded whatever the server answers.

The read asks for the page at offset 0, then at the offset after the items it got, and stops on the first
of: the total the server gave is reached; the server says the page is the last; an empty page; a page
with nothing new (servers that answer a start past the end with the first page again). Items are kept
once by their id. However the server answers, it ends: after the pages its first total needs at the size
of its first page, plus one, and never after more than MAX_PAGES, with a one-line error naming the URL.

``read_concurrent`` reads the same list with the pages after the first fetched at once (``workers`` at a
time): the first page's total and size say which offsets exist. The pages are joined in offset order, so
the items come in the order a sequential read gives. A read is consistent when every page gave the first
page's total and the join holds exactly that many distinct items; otherwise objects moved between pages
while they were read (created or deleted: an item seen twice, one missed) and the list is read again, up
to READ_ATTEMPTS times; the last read says ``changed`` when it never held still. A list whose pages stop
bringing anything new before its total ends there (a server that overstates its total, or answers a start
past the end with the first page again); one whose pages come back shorter than its first and then go on
(a page size of its own) is read again sequentially.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from reconciler.errors import ServerError
from reconciler.threads import Pool

# No list reconciler reads needs more pages than this (2,000,000 objects at 100 a page); a server that
# keeps answering past it is answering something else.
MAX_PAGES = 20_000
# Reads of a list that keeps changing under a concurrent read before the plan says so.
READ_ATTEMPTS = 3

T = TypeVar("T")
Key = Callable[[dict[str, Any]], Hashable]


def _by_id(item: dict[str, Any]) -> Hashable:
    return str(item.get("id"))


@dataclass
class Page:
    """One answer: its items, the total the server says the list holds (None: it does not say), and
    whether it says this page is the last (None: it does not say)."""

    items: list[dict[str, Any]]
    total: int | None = None
    last: bool | None = None


@dataclass
class Listing:
    """A whole list: its items once each, the pages read for it (every attempt), the reads made, and
    whether it changed while the last read was under way (then it may miss or hold a moved object)."""

    items: list[dict[str, Any]]
    pages: int
    reads: int = 1
    changed: bool = False


def read_pages(fetch: Callable[[int], Page], *, page_size: int, url: str, key: Key = _by_id,
               first: Page | None = None) -> tuple[list[dict[str, Any]], int]:
    """Every item of the list, once each by ``key``, and the number of pages read (``first``: the page at
    offset 0, already read)."""
    out: list[dict[str, Any]] = []
    seen: set[Hashable] = set()
    offset = 0
    pages = 0
    limit = MAX_PAGES
    while True:
        page = first if first is not None and pages == 0 else fetch(offset)
        pages += 1
        if pages == 1 and page.total is not None:
            # pages as large as the server's first (it may cap below what was asked)
            size = max(1, min(page_size, len(page.items)) if page.items else page_size)
            limit = min(MAX_PAGES, math.ceil(page.total / size) + 1)
        fresh = _fresh(page.items, seen, key)
        out.extend(fresh)
        if not fresh or page.last or (page.total is not None and len(out) >= page.total):
            return out, pages
        if page.last is None and page.total is None and len(page.items) < page_size:
            return out, pages  # a short page with no total and no last flag: the end
        if pages >= limit:
            _never_ends(pages, page, url)
        offset += len(page.items)


def read_concurrent(fetch: Callable[[int], Page], *, page_size: int, url: str, workers: int,
                    key: Key = _by_id) -> Listing:
    """Every item of the list, the pages after the first read ``workers`` at a time (see the module)."""
    pages = 0
    for attempt in range(1, READ_ATTEMPTS + 1):
        got = _one_read(fetch, page_size=page_size, url=url, workers=workers, key=key)
        pages += got.pages
        if not got.changed or attempt == READ_ATTEMPTS:
            return Listing(got.items, pages, attempt, got.changed)
    raise AssertionError("unreachable")  # pragma: no cover


def _one_read(fetch: Callable[[int], Page], *, page_size: int, url: str, workers: int, key: Key) -> Listing:
    first = fetch(0)
    total, size = first.total, len(first.items)
    if total is None or size == 0 or size >= total or workers <= 1 or first.last:
        items, n = read_pages(fetch, page_size=page_size, url=url, key=key, first=first)
        return Listing(items, n)
    needed = math.ceil(total / size)
    if needed + 1 > MAX_PAGES:  # the sequential read stops such a list at its bound, with the error
        items, n = read_pages(fetch, page_size=page_size, url=url, key=key, first=first)
        return Listing(items, n)
    offsets = [k * size for k in range(1, needed)]
    with Pool(max_workers=min(workers, len(offsets)), thread_name_prefix="page") as pool:
        rest = list(pool.map(fetch, offsets))
    seen: set[Hashable] = set()
    out = _fresh(first.items, seen, key)
    ended: int | None = None  # the page after which the server gave nothing new (it overstated its total)
    irregular = False
    for k, p in enumerate(rest):
        fresh = _fresh(p.items, seen, key)
        out.extend(fresh)
        if ended is not None:
            irregular = irregular or bool(fresh)
        elif p.total == total and (len(p.items) < min(size, total - offsets[k]) or not fresh):
            # shorter than the offsets promise, or nothing new, the total unchanged: the list ends here (a
            # start past the end answered with the first page again, or nothing) unless a later page
            # brings something new, and then the server pages its own way (a smaller page size later on)
            ended = k
    if irregular:
        items, n = read_pages(fetch, page_size=page_size, url=url, key=key, first=first)
        return Listing(items, len(rest) + n)
    if ended is not None:
        return Listing(out, 1 + len(rest))
    pages = 1 + len(rest)
    changed = any(p.total != total for p in rest) or len(out) != total
    latest = max([total, *(p.total for p in rest if p.total is not None)])
    offset = needed * size
    limit = min(MAX_PAGES, needed + 1)
    while latest > offset:
        # the list grew while it was read: what moved past the first total's end is read too, within the
        # bound the first total sets (as the sequential read's)
        if pages >= limit:
            _never_ends(pages, rest[-1], url)
        page = fetch(offset)
        pages += 1
        fresh = _fresh(page.items, seen, key)
        out.extend(fresh)
        if not fresh or page.last or len(page.items) < size:
            break
        offset += len(page.items)
        latest = max(latest, page.total or 0)
    return Listing(out, pages, 1, changed)


def _fresh(items: list[dict[str, Any]], seen: set[Hashable], key: Key) -> list[dict[str, Any]]:
    fresh = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            fresh.append(item)
    return fresh


def _never_ends(pages: int, page: Page, url: str) -> None:
    said = f"it said {page.total} in all" if page.total is not None else "it gave no total"
    raise ServerError(f"the list never ends: {pages} pages read and more offered ({said}); stopped", "GET", url)


def in_parallel(jobs: list[Callable[[], T]], name: str) -> list[T]:
    """Each job's result, in the order of ``jobs``, the jobs run at once on threads of their own. When
    several fail, the first failure in that order is raised (the one a sequential run would have met)."""
    if len(jobs) <= 1:
        return [job() for job in jobs]
    with Pool(max_workers=len(jobs), thread_name_prefix=name) as pool:
        futures = [pool.submit(job) for job in jobs]
    return [f.result() for f in futures]
