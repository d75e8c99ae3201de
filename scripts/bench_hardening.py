#!/usr/bin/env python3
"""Peak memory and behaviour of modelwatch under the hostile probe's load:
remote-write overload, the SQL probe queries, a PostgreSQL connection loop.

Runs each binary given (e.g. the build before and after a change) on a fresh
data directory with default settings, one after the other, and prints one
table. Peak RSS per phase comes from VmHWM, reset before each phase through
/proc/PID/clear_refs (Linux ≥ 4.0; needs to own the process).

    scripts/bench_hardening.py BINARY [BINARY ...] [--seconds 30] [--concurrency 32]

The load generator is the first binary's `modelwatch bench remote-write`
(1,000 samples per request, --concurrency requests in flight).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

TOKEN = "mw_bench_hardening_token_0000000000000000000001"


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sql(url, query, **extra):
    body = json.dumps({"sql": query, **extra}).encode()
    req = urllib.request.Request(
        url + "/api/v1/sql",
        data=body,
        headers={"authorization": "Bearer " + TOKEN, "content-type": "application/json"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            payload = r.read()
            code = r.status
    except urllib.error.HTTPError as e:
        payload = e.read()
        code = e.code
    except (urllib.error.URLError, ConnectionError, OSError) as e:
        return f"no answer ({type(e).__name__})", time.monotonic() - started, 0
    return code, time.monotonic() - started, len(payload)


def mib(n):
    return f"{n / 2**20:,.0f} MiB"


class Daemon:
    """`modelwatch serve` on a fresh data directory with default settings."""

    def __init__(self, binary):
        self.work = tempfile.mkdtemp(prefix="mw-bench-hardening-")
        http_port, self.pg_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{http_port}"
        self.log = open(os.path.join(self.work, "daemon.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", os.path.join(self.work, "data"),
             "--listen", f"127.0.0.1:{http_port}", "--pg-listen", f"127.0.0.1:{self.pg_port}",
             "--otlp-grpc-listen", "off", "--otlp-http-listen", "off",
             "--bootstrap-token", TOKEN, "--log", "warn"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        self.pid = self.proc.pid
        for _ in range(300):
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1)
                return
            except Exception:
                time.sleep(0.1)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


def run(binary, generator, seconds, concurrency):
    rows = []
    # Remote-write overload, on its own daemon (its background persist and
    # compaction afterwards would blur the SQL figures).
    d = Daemon(binary)
    try:
        rows.append(("idle RSS at start", mib(status(d.pid, "VmRSS"))))
        reset_peak(d.pid)
        out = subprocess.run(
            [generator, "bench", "remote-write", "--json", "--seconds", str(seconds),
             "--concurrency", str(concurrency), "--url", d.url, "--token", TOKEN],
            capture_output=True, text=True)
        try:
            r = json.loads(out.stdout)
            p = r["phase"]
            rows.append(("remote write: acknowledged samples/s",
                         f"{r['samples_per_second']:,.0f} ({p['errors']:,} requests refused)"))
        except (ValueError, KeyError):
            rows.append(("remote write", "generator failed: " + out.stderr[-200:]))
        rows.append(("remote write: peak RSS (VmHWM)", mib(status(d.pid, "VmHWM"))))
        rows.append(("remote write: RSS right after", mib(status(d.pid, "VmRSS"))))
        time.sleep(20)
        rows.append(("remote write: RSS 20 s later", mib(status(d.pid, "VmRSS"))))
        rows.append(("remote write: peak RSS including the 20 s after (persist, compaction)",
                     mib(status(d.pid, "VmHWM"))))
    finally:
        d.stop()

    # SQL probes and the connection loop on a fresh daemon, each probe from
    # the same starting point.
    d = Daemon(binary)
    try:
        for label, query, extra in [
            ("repeat('x', 500000000)", "SELECT length(repeat('x', 500000000)) AS n", {}),
            ("range(2000000), limit 1,000,000, JSON", "SELECT * FROM range(2000000)",
             {"limit": 1_000_000}),
            ("count(*) over range(1e11), timeout 2 s",
             "SELECT count(*) FROM range(100000000000)", {"timeout_seconds": 2}),
        ]:
            if not d.alive():
                rows.append((f"SQL {label}", "daemon gone"))
                continue
            before = status(d.pid, "VmRSS")
            reset_peak(d.pid)
            cpu0 = cpu_seconds(d.pid)
            code, took, size = sql(d.url, query, **extra)
            busy_during = cpu_seconds(d.pid) - cpu0
            peak = status(d.pid, "VmHWM")
            cpu1 = cpu_seconds(d.pid)
            time.sleep(3)
            busy_after = cpu_seconds(d.pid) - cpu1
            rows.append((f"SQL {label}",
                         f"HTTP {code} in {took:.2f} s ({busy_during:.2f} s CPU), {size:,} bytes; "
                         f"peak RSS +{mib(max(0, peak - before))}; RSS 3 s later "
                         f"{mib(status(d.pid, 'VmRSS'))}; CPU in those 3 s {busy_after:.2f} s"))

        # PostgreSQL connection loop (no bytes sent).
        if d.alive():
            before = status(d.pid, "VmRSS")
            started = time.monotonic()
            for _ in range(200):
                socket.create_connection(("127.0.0.1", d.pg_port)).close()
            time.sleep(2)
            rows.append(("200 PostgreSQL connect/close cycles",
                         f"{time.monotonic() - started:.1f} s, RSS {mib(before)} → "
                         f"{mib(status(d.pid, 'VmRSS'))}"))

        # The deep query last: it used to abort the process.
        if d.alive():
            code, took, _ = sql(d.url, "SELECT " + "+".join(["1"] * 2000))
            time.sleep(1)
            rows.append(("SQL 1+1+…+1 (2,000 terms)",
                         f"HTTP {code} in {took:.2f} s; daemon {'alive' if d.alive() else 'DEAD'}"))
    finally:
        d.stop()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    results = [run(b, args.binaries[0], args.seconds, args.concurrency) for b in args.binaries]
    names = [os.path.basename(os.path.dirname(b)) + "/" + os.path.basename(b) for b in args.binaries]
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    labels = [label for label, _ in max(results, key=len)]
    for label in labels:
        cells = [dict(r).get(label, "—") for r in results]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
