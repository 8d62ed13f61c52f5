#!/usr/bin/env python3
"""Overload check of POST /score (bench/http/overload.sh): many connections posting big batches.

Issue #12's reproduction: 2,000 keep-alive connections posting 400-row bodies as fast as they
can for --seconds. Prints one JSON object: the answers by status, the server's peak RSS
(VmHWM, and the highest VmRSS sampled every 50 ms), and how long after the load a fresh client
waits for its first 200 (the permits of abandoned work must come back at once).

Each connection writes its request and reads the answer concurrently: a shed request is
answered 503 before its body is read, and the server then closes the connection (the client
reconnects).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time


def request(host: str, port: int, body: bytes) -> bytes:
    head = (
        f"POST /score HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Status and whether the server closes the connection."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length, close = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    await reader.readexactly(length)
    return status, close


async def client(host, port, payload, until, counts):
    writer = None
    while time.monotonic() < until:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(payload)
            status, close = await read_answer(reader)
            counts[status] += 1
            if close:
                writer.close()
                writer = None
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            counts["connection_error"] += 1
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


def memory(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) // 1024  # MiB
    return out


async def sample_rss(pid: int, until: float, peak: list[int]) -> None:
    while time.monotonic() < until:
        peak[0] = max(peak[0], memory(pid)["VmRSS"])
        await asyncio.sleep(0.05)


async def first_ok(host: str, port: int, payload: bytes, limit_s: float) -> float | None:
    """Seconds until a fresh connection's request is answered 200 (None: not within limit_s)."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(payload)
            status, _ = await read_answer(reader)
            writer.close()
            if status == 200:
                return round(time.monotonic() - start, 3)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.01)
    return None


async def main_async(args) -> dict:
    host, port = args.addr.rsplit(":", 1)
    port = int(port)
    row = json.load(open(args.row))
    body = json.dumps({"model": row["model"], "rows": row["rows"] * args.rows}).encode()
    payload = request(host, port, body)
    small = request(host, port, json.dumps(row).encode())
    counts: collections.Counter = collections.Counter()
    before = memory(args.pid)
    until = time.monotonic() + args.seconds
    peak = [0]
    sampler = asyncio.create_task(sample_rss(args.pid, until + 1.0, peak))
    await asyncio.gather(
        *(client(host, port, payload, until, counts) for _ in range(args.connections))
    )
    recovered = await first_ok(host, port, small, 30.0)
    await sampler
    after = memory(args.pid)
    return {
        "connections": args.connections,
        "rows_per_request": args.rows,
        "body_bytes": len(body),
        "seconds": args.seconds,
        "answers": {str(k): v for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))},
        "rss_before_mib": before["VmRSS"],
        "rss_peak_sampled_mib": peak[0],
        "rss_hwm_mib": after["VmHWM"],
        "rss_after_mib": after["VmRSS"],
        "first_200_after_load_s": recovered,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--addr", required=True, help="host:port of fleetscore serve")
    p.add_argument("--pid", type=int, required=True, help="its process id (for RSS)")
    p.add_argument("--row", required=True, help="JSON {model, rows: [one row]}")
    p.add_argument("--rows", type=int, default=400)
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=15.0)
    args = p.parse_args()
    print(json.dumps(asyncio.run(main_async(args))), flush=True)


if __name__ == "__main__":
    main()
