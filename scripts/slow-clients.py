#!/usr/bin/env python3
"""Issue 11, finding 2, against a running vpcd: open IDLE idle connections and SLOW connections that
send a partial request header and then nothing, then time one valid request (GET /healthz) and
count how many of the hostile connections the server has closed after HOLD seconds.

Usage: scripts/slow-clients.py HOST:PORT [IDLE=300] [SLOW=60] [HOLD=15]
Start vpcd first, e.g.
  ulimit -n 256; target/release/vpcd serve --data-dir /tmp/sc --http 127.0.0.1:18080 --https 127.0.0.1:0
Exit status 1 when the valid request takes a second or more.
"""
import socket
import sys
import time


def main() -> int:
    host, port = sys.argv[1].rsplit(":", 1)
    idle, slow, hold = (int(a) for a in (sys.argv[2:] + ["300", "60", "15"][len(sys.argv) - 2:])[:3])
    conns = []
    for i in range(idle + slow):
        s = socket.create_connection((host, int(port)))
        if i >= idle:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        conns.append(s)
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = s.recv(4096)
    took = time.monotonic() - start
    status = answer.split(b"\r\n", 1)[0].decode()
    print(f"{idle} idle + {slow} slow open; valid request answered in {took * 1000:.0f} ms: {status}")
    time.sleep(hold)
    closed = 0
    for s in conns:
        s.setblocking(False)
        try:
            s.recv(4096)  # EOF, or a 408 before the close: the server gave up on it
            closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    print(f"after {hold} s: {closed} of {idle + slow} hostile connections closed by the server")
    return 0 if took < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
