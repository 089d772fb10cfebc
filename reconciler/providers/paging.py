"""One way to read an offset-paged list from any live system (SCIM startIndex/count, Jira startAt/maxResults,
Redmine offset/limit), bounded whatever the server answers.

The read asks for the page at offset 0, then at the offset after the items it got, and stops on the first
of: the total the server gave is reached; the server says the page is the last; an empty page; a page
with nothing new (servers that answer a start past the end with the first page again). Items are kept
once by their id. However the server answers, it ends: after the pages its first total needs at the size
of its first page, plus one, and never after more than MAX_PAGES, with a one-line error naming the URL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ServerError

# No list reconciler reads needs more pages than this (2,000,000 objects at 100 a page); a server that
# keeps answering past it is answering something else.
MAX_PAGES = 20_000


@dataclass
class Page:
    """One answer: its items, the total the server says the list holds (None: it does not say), and
    whether it says this page is the last (None: it does not say)."""

    items: list[dict[str, Any]]
    total: int | None = None
    last: bool | None = None


def read_pages(fetch: Callable[[int], Page], *, page_size: int, url: str,
               key: Callable[[dict[str, Any]], Hashable] = lambda item: str(item.get("id"))) \
        -> tuple[list[dict[str, Any]], int]:
    """Every item of the list, once each by ``key``, and the number of pages read."""
    out: list[dict[str, Any]] = []
    seen: set[Hashable] = set()
    offset = 0
    pages = 0
    limit = MAX_PAGES
    while True:
        page = fetch(offset)
        pages += 1
        if pages == 1 and page.total is not None:
            # pages as large as the server's first (it may cap below what was asked)
            size = max(1, min(page_size, len(page.items)) if page.items else page_size)
            limit = min(MAX_PAGES, math.ceil(page.total / size) + 1)
        fresh = []
        for item in page.items:
            k = key(item)
            if k not in seen:
                seen.add(k)
                fresh.append(item)
        out.extend(fresh)
        if not fresh or page.last or (page.total is not None and len(out) >= page.total):
            return out, pages
        if page.last is None and page.total is None and len(page.items) < page_size:
            return out, pages  # a short page with no total and no last flag: the end
        if pages >= limit:
            said = f"it said {page.total} in all" if page.total is not None else "it gave no total"
            raise ServerError(f"the list never ends: {pages} pages read and more offered ({said}); stopped",
                              "GET", url)
        offset += len(page.items)
