#!/usr/bin/env python3
"""HTTP Basic clients for the cold-path and footprint benchmarks (stdlib only).

  clients.py burst URL CREDS      every credential of CREDS (lines
                                  "user:password") at once, one thread and
                                  one connection each; a 503/429 is retried
                                  after its Retry-After. Prints one JSON line:
                                  wall time until all succeeded, statuses,
                                  attempts, time to success per credential.
  clients.py each URL CREDS [N]   each credential once (or the first N),
                                  spread over 8 keep-alive connections.
                                  Prints one JSON line: statuses, seconds.
  clients.py idle URL CREDS N S   N keep-alive connections with the first
                                  credential, one request each, then held
                                  open, idle, for S seconds. Prints one
                                  JSON line (connections, statuses,
                                  seconds) once all are open.

Only 127.0.0.1 URLs are accepted; every loop is bounded in time.
"""

import base64
import http.client
import json
import sys
import threading
import time
import urllib.parse

DEADLINE_S = 300


def target(url):
    u = urllib.parse.urlsplit(url)
    if u.hostname != "127.0.0.1":
        sys.exit(f"clients.py: only 127.0.0.1 is allowed, not {u.hostname}")
    return u.hostname, u.port or 80, (u.path or "/")


def auth(cred):
    return "Basic " + base64.b64encode(cred.encode()).decode()


def read_creds(path, limit=None):
    with open(path, encoding="utf-8") as f:
        creds = [line.strip() for line in f if line.strip()]
    return creds[:limit] if limit else creds


def burst(url, creds):
    host, port, path = target(url)
    barrier = threading.Barrier(len(creds))
    statuses, lock = {}, threading.Lock()
    done_at = [None] * len(creds)
    attempts = [0] * len(creds)
    start = [0.0]

    def one(i, cred):
        barrier.wait()
        if i == 0:
            start[0] = time.monotonic()
        t0 = time.monotonic()
        deadline = t0 + DEADLINE_S
        while time.monotonic() < deadline:
            attempts[i] += 1
            retry_after = 1.0
            try:
                conn = http.client.HTTPConnection(host, port, timeout=60)
                conn.request("GET", path, headers={"Authorization": auth(cred)})
                res = conn.getresponse()
                res.read()
                status = res.status
                retry_after = float(res.getheader("Retry-After") or 1)
                conn.close()
            except (OSError, http.client.HTTPException):
                status = 0
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
            if 200 <= status < 300:
                done_at[i] = time.monotonic() - t0
                return
            if status in (0, 429, 503):
                time.sleep(min(retry_after, 5.0))
            else:
                return

    threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(creds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start[0]
    ok = sorted(d for d in done_at if d is not None)
    print(json.dumps({
        "credentials": len(creds),
        "succeeded": len(ok),
        "wall_s": round(wall, 3),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "attempts": sum(attempts),
        "median_time_to_success_s": round(ok[len(ok) // 2], 3) if ok else None,
        "max_time_to_success_s": round(ok[-1], 3) if ok else None,
    }))


def each(url, creds, connections=8):
    host, port, path = target(url)
    statuses, lock = {}, threading.Lock()
    chunks = [creds[i::connections] for i in range(connections)]
    deadline = time.monotonic() + DEADLINE_S

    def worker(chunk):
        conn = http.client.HTTPConnection(host, port, timeout=60)
        for cred in chunk:
            if time.monotonic() > deadline:
                break
            try:
                conn.request("GET", path, headers={"Authorization": auth(cred)})
                res = conn.getresponse()
                res.read()
                status = res.status
                if res.will_close:
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=60)
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({
        "requests": len(creds),
        "seconds": round(time.monotonic() - t0, 3),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }))


def idle(url, cred, n, hold_s):
    import asyncio

    host, port, path = target(url)
    head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth(cred)}\r\n\r\n".encode()
    statuses = {}

    async def one(held):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(head)
        await writer.drain()
        lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        length = next((int(l.split(b":", 1)[1]) for l in lines if l.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        statuses[status] = statuses.get(status, 0) + 1
        held.append(writer)

    async def run():
        held, start = [], time.monotonic()
        # In waves, so the listen backlog never overflows.
        for i in range(0, n, 200):
            wave = [one(held) for _ in range(min(200, n - i))]
            await asyncio.wait_for(asyncio.gather(*wave), DEADLINE_S)
        seconds = round(time.monotonic() - start, 3)
        print(json.dumps({"connections": len(held), "statuses": statuses, "seconds": seconds}), flush=True)
        await asyncio.sleep(hold_s)
        for writer in held:
            writer.close()

    asyncio.run(run())


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("burst", "each", "idle"):
        sys.exit(__doc__)
    mode, url, path = sys.argv[1:4]
    if mode == "idle":
        if len(sys.argv) != 6:
            sys.exit(__doc__)
        idle(url, read_creds(path, 1)[0], int(sys.argv[4]), float(sys.argv[5]))
        return
    limit = int(sys.argv[4]) if len(sys.argv) > 4 else None
    creds = read_creds(path, limit)
    if mode == "burst":
        burst(url, creds)
    else:
        each(url, creds)


if __name__ == "__main__":
    main()
