#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that adds a fixed round-trip time (and optionally a bandwidth) in front of
a server, so that a benchmark on one machine sees a server far away.

    python bench/rttproxy.py --upstream 127.0.0.1:18452 --rtt-ms 100 [--mbit 50] [--port 0]

It prints ``ready PORT`` once it listens. Every byte is delivered rtt/2 after it arrived, in each
direction, in order, so one request and its answer take one RTT more than without the proxy; with
``--mbit``, each direction of each connection also carries at most that many megabits a second. The
TCP handshake is not delayed (a SaaS client keeps its connections open; bench/server.py closes each
after its answer, which would otherwise cost every request a second RTT). HTTP or not, the proxy does
not look at what it carries: SCIM, Jira and raw httpx go through the same delays.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from contextlib import suppress


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float,
                bytes_per_s: float | None) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while True:
            try:
                data = await reader.read(65536)
            except (ConnectionError, OSError):
                data = b""
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                return

    async def write() -> None:
        free = 0.0  # when the link is next free (bandwidth)
        while True:
            at, data = await queue.get()
            if bytes_per_s:
                at = max(at, free) + len(data) / bytes_per_s
                free = at
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                return

    await asyncio.gather(read(), write())


async def _serve(upstream: tuple[str, int], rtt: float, bytes_per_s: float | None, port: int) -> None:
    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            u_reader, u_writer = await asyncio.open_connection(*upstream)
        except OSError:
            c_writer.close()
            return
        try:
            await asyncio.gather(_pipe(c_reader, u_writer, rtt / 2, bytes_per_s),
                                 _pipe(u_reader, c_writer, rtt / 2, bytes_per_s))
        finally:
            for w in (u_writer, c_writer):
                with suppress(Exception):
                    w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--upstream", required=True, help="host:port of the server")
    ap.add_argument("--rtt-ms", type=float, required=True)
    ap.add_argument("--mbit", type=float, help="bandwidth of each direction of each connection, Mbit/s")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    host, _, port = a.upstream.rpartition(":")
    bps = a.mbit * 1e6 / 8 if a.mbit else None
    asyncio.run(_serve((host, int(port)), a.rtt_ms / 1000, bps, a.port))


if __name__ == "__main__":
    main()
