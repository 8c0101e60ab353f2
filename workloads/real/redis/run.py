#!/usr/bin/python3
"""Run step of "redis": a redis-server built from Debian's source package with MALLOC=libc
(cache/real/redis/, by prepare.py) under load from redis-benchmark on 127.0.0.1.

usage: workloads/real/redis/run.py [--scale default|quick|tiny]

- The server inherits this process's environment, so the harness's LD_PRELOAD serves its
  malloc. It listens on a free 127.0.0.1 port only, saves nothing (--save '', no AOF).
- redis-benchmark (Debian's redis-tools) runs with LD_PRELOAD removed: the client is not what
  is measured, and Debian links it to jemalloc anyway. Pipelined (-P 16), 50 connections,
  random keys (-r), a fixed number of requests per test (-n), bounded in time (timeout).
- The server is stopped by its PID (SIGTERM) and must exit 0.
Check: every test reports requests/s; the server says mem_allocator:libc; a value written
before the load reads back intact after it; the key count is non-zero.
Prints TMBENCH with ops = all requests, ops_per_sec = requests / summed test time, and
"check: ok". Exit 1 when a check fails, 2 usage, 3 not prepared.
"""
import argparse
import csv
import glob
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CACHE = os.path.join(ROOT, "cache", "real", "redis")
BENCH = "/usr/bin/redis-benchmark"
TESTS = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset"
SCALES = {  # requests per test, keyspace, value size, timeout of the whole benchmark (s)
    "default": dict(n=250_000, r=200_000, d=64, timeout=240),
    "quick": dict(n=20_000, r=20_000, d=64, timeout=60),
    "tiny": dict(n=4_000, r=2_000, d=32, timeout=30),
}


def die(msg, code=1):
    print(f"redis: {msg}", file=sys.stderr)
    sys.exit(code)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(port, *args, timeout=5.0):
    """Send one RESP command, return the decoded reply (bulk/simple string or integer)."""
    req = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in
                                            (x.encode() if isinstance(x, str) else x for x in args))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        f = s.makefile("rb")
        line = f.readline()
        if not line:
            raise OSError("connection closed")
        t, rest = line[:1], line[1:].rstrip(b"\r\n")
        if t == b"+":
            return rest.decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2].decode(errors="replace")
        if t == b"-":
            raise RuntimeError(rest.decode())
        raise RuntimeError(f"unexpected reply {line!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="default", choices=sorted(SCALES))
    ap.add_argument("scale_pos", nargs="?", choices=sorted(SCALES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    p = SCALES[args.scale_pos or args.scale]
    servers = sorted(glob.glob(os.path.join(CACHE, "redis-*", "src", "redis-server")))
    if not servers or not os.path.exists(os.path.join(CACHE, ".prepared")):
        die("redis-server is not built: run workloads/real/prepare.py redis", 3)
    if not os.access(BENCH, os.X_OK):
        die(f"{BENCH} is missing (Debian package redis-tools): run workloads/real/prepare.py redis", 3)
    os.makedirs(os.path.join(ROOT, "cache", "real", "tmp"), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="redis.", dir=os.path.join(ROOT, "cache", "real", "tmp"))
    port = free_port()
    srv_cmd = [servers[-1], "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
               "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", tmp,
               "--logfile", os.path.join(tmp, "server.log"), "--databases", "1"]
    server = subprocess.Popen(srv_cmd, env=os.environ, stdin=subprocess.DEVNULL)  # keeps LD_PRELOAD
    ok = False
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if command(port, "PING", timeout=1) == "PONG":
                    break
            except (OSError, RuntimeError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                die(f"server did not answer PING (exit {server.poll()}); log: {tmp}/server.log")
            time.sleep(0.05)
        info = command(port, "INFO", "memory")
        if "mem_allocator:libc" not in info:
            die("server does not report mem_allocator:libc: " +
                next((l for l in info.splitlines() if l.startswith("mem_allocator")), "?"))
        sentinel = "tinymalloc-" + "x" * 300
        command(port, "SET", "bench:sentinel", sentinel)

        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "TMBENCH_PROBE_FILE")}
        bcmd = [BENCH, "-h", "127.0.0.1", "-p", str(port), "-P", "16", "-c", "50", "-n", str(p["n"]),
                "-r", str(p["r"]), "-d", str(p["d"]), "-t", TESTS, "--csv"]
        t0 = time.monotonic()
        try:
            b = subprocess.run(bcmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=p["timeout"])
        except subprocess.TimeoutExpired:
            die(f"redis-benchmark did not finish in {p['timeout']} s")
        wall = time.monotonic() - t0
        if b.returncode != 0:
            die(f"redis-benchmark exited {b.returncode}: {b.stderr.strip()[-300:]}")
        rows = list(csv.reader(io.StringIO(b.stdout)))
        rps = {r[0]: float(r[1]) for r in rows[1:] if len(r) >= 2 and r[1].replace(".", "", 1).isdigit()}
        want = len(TESTS.split(","))
        if len(rps) < want or any(v <= 0 for v in rps.values()):
            die(f"expected {want} tests with requests/s, got: {rps} {b.stderr.strip()[-200:]}")
        if command(port, "GET", "bench:sentinel") != sentinel:
            die("the sentinel value did not read back intact after the load")
        keys = command(port, "DBSIZE")
        if not isinstance(keys, int) or keys <= 1:
            die(f"DBSIZE after the load is {keys!r}")
        ok = True
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(server.pid, signal.SIGKILL)
                server.wait()
                if ok:
                    die("server did not stop on SIGTERM within 20 s")
        if ok:
            subprocess.run(["rm", "-rf", tmp])
    if server.returncode != 0:
        die(f"server exited with status {server.returncode} on SIGTERM")
    ops = p["n"] * len(rps)
    secs = sum(p["n"] / v for v in rps.values())
    print("TMBENCH " + json.dumps({"ops": ops, "seconds": round(secs, 6), "ops_per_sec": round(ops / secs, 1),
                                   "wall_seconds": round(wall, 3), "keys": keys,
                                   "rps": {k: v for k, v in rps.items()}}))
    print("check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
