#!/usr/bin/env python3
"""Run `modelwatch bench sql`'s queries in DuckDB over the same Parquet files.

    modelwatch bench sql --data-dir DIR        # generates DIR once, times modelwatch
    python3 scripts/bench_sql_duckdb.py DIR    # times DuckDB on DIR's Parquet files

Reads DIR/bench-sql-queries.json (written by the generator), runs each query
`--runs` times in a fresh DuckDB connection limited to the same thread count,
and prints median/min/max milliseconds and the result row count, so the two
tables can be compared line by line (BENCHMARKS.md).
"""
import argparse
import json
import os
import statistics
import time

import duckdb


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with open(os.path.join(args.data_dir, "bench-sql-queries.json")) as f:
        spec = json.load(f)
    samples = f"read_parquet('{spec['parquet_glob']}')"
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute("SET TimeZone = 'UTC'")
    results = []
    for q in spec["queries"]:
        sql = q["duckdb"].replace("{samples}", samples)
        times = []
        rows = 0
        for _ in range(args.runs):
            t = time.perf_counter()
            rows = len(con.execute(sql).fetchall())
            times.append((time.perf_counter() - t) * 1e3)
        results.append({
            "name": q["name"], "result_rows": rows, "runs": args.runs,
            "median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
        })
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"DuckDB {duckdb.__version__}, {args.threads} threads, {spec['rows']} samples")
    print(f"{'query':<32} {'rows':>8} {'runs':>6} {'median ms':>11} {'min ms':>9} {'max ms':>9}")
    for r in results:
        print(f"{r['name']:<32} {r['result_rows']:>8} {r['runs']:>6} {r['median_ms']:>11.1f} {r['min_ms']:>9.1f} {r['max_ms']:>9.1f}")


if __name__ == "__main__":
    main()
