"""100 concurrent 24 MB webhook deliveries with bad signatures, sampling the daemon's RSS.

Usage: webhook-flood.py PORT DAEMON_PID length|chunked (see webhook-flood.sh)."""
import asyncio, os, sys, time

HOST, PORT = "127.0.0.1", int(sys.argv[1])
PID = int(sys.argv[2])
MODE = sys.argv[3]  # "length" or "chunked"
N, SIZE, CHUNK = 100, 24 * 1000 * 1000, 256 * 1024
BAD_SIG = "sha256=" + "0" * 64
peak = {"rss": 0}
statuses = {}

def rss_kb():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

async def sampler(stop):
    while not stop.is_set():
        peak["rss"] = max(peak["rss"], rss_kb())
        await asyncio.sleep(0.02)

async def one(i):
    try:
        r, w = await asyncio.open_connection(HOST, PORT)
    except OSError as e:
        statuses[f"connect-error"] = statuses.get("connect-error", 0) + 1
        return
    head = f"POST /hooks/git HTTP/1.1\r\nhost: {HOST}\r\nx-github-event: push\r\nx-hub-signature-256: {BAD_SIG}\r\ncontent-type: application/json\r\n"
    head += f"content-length: {SIZE}\r\n\r\n" if MODE == "length" else "transfer-encoding: chunked\r\n\r\n"
    chunk = b"x" * CHUNK
    sent = 0
    status = "no-answer"
    reader = asyncio.ensure_future(r.readline())
    try:
        w.write(head.encode())
        while sent < SIZE and not reader.done():
            data = chunk if MODE == "length" else b"%x\r\n" % len(chunk) + chunk + b"\r\n"
            w.write(data)
            await w.drain()
            sent += CHUNK
        if MODE == "chunked" and not reader.done():
            w.write(b"0\r\n\r\n"); await w.drain()
    except ConnectionError:
        pass  # the server answered and closed before the whole body was sent
    try:
        line = await asyncio.wait_for(reader, 60)
        status = line.decode(errors="replace").split(" ")[1] if line else "closed-without-answer"
    except (ConnectionError, asyncio.TimeoutError, IndexError) as e:
        status = type(e).__name__
    statuses[status] = statuses.get(status, 0) + 1
    try:
        w.close()
    except Exception:
        pass

async def main():
    stop = asyncio.Event()
    s = asyncio.ensure_future(sampler(stop))
    before = rss_kb()
    t0 = time.time()
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(N))), 300)
    took = time.time() - t0
    await asyncio.sleep(1.0)
    stop.set(); await s
    after = rss_kb()
    print(f"mode={MODE} before={before/1024:.1f}MB peak={peak['rss']/1024:.1f}MB after={after/1024:.1f}MB took={took:.1f}s statuses={statuses}")

asyncio.run(main())
