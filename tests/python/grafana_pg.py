"""Replays the SQL Grafana's PostgreSQL data source sends, over modelwatch's
PostgreSQL listener, with psycopg 3, and checks the answers and the type
OIDs on the wire.

Usage: grafana_pg.py HOST PORT TOKEN SSLMODE FROM TO

FROM and TO are the dashboard's time range as Grafana writes it into
`$__timeFilter` (RFC 3339, UTC). The data was sent by the Rust end-to-end
test `pgwire::grafana_sql_replayed_with_psycopg…`: gauge `cpu` for model
fraud version 2 (values 1, 2, 3, one per minute inside the range), one
histogram, one span, a registered model `fraud` with versions 1 and 2.

The SQL strings below are copied from Grafana (pkg/tsdb/grafana-postgresql-
datasource and public/app/plugins/datasource/grafana-postgresql-datasource,
Grafana 11/12), with the macros expanded the way Grafana's backend expands
them (macros.go). Exits non-zero with a message on the first mismatch.
"""

import json
import sys

import psycopg

# PostgreSQL type OIDs (pg_type.oid).
BOOL, INT8, TEXT, FLOAT8, TIMESTAMPTZ = 16, 20, 25, 701, 1184

host, port, token, sslmode, time_from, time_to = sys.argv[1:7]

# postgresMetaQuery.ts buildSchemaConstraint(): "is the table's schema on the
# search_path", spliced into showTables() and getSchema() like Grafana does.
SCHEMA_CONSTRAINT = """
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )"""


def types(cur):
    return [d.type_code for d in cur.description]


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


conn = psycopg.connect(
    host=host,
    port=int(port),
    user="grafana",
    password=token,
    dbname="modelwatch",
    sslmode=sslmode,
    autocommit=True,
)
if sslmode == "require":
    check("TLS in use", conn.pgconn.ssl_in_use, True)
cur = conn.cursor()

# Health check ("Save & test"): pgx's Ping sends this comment as a simple query.
cur.execute("-- ping")
check("ping has no result", cur.description, None)

# Config page, useAutoDetectFeatures → postgresMetaQuery.getVersion().
cur.execute("SELECT current_setting('server_version_num')::int/100 as version")
check("version", cur.fetchall(), [(1600,)])
check("version type", types(cur), [INT8])

# Config page → getTimescaleDBVersion(): no TimescaleDB here.
cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
check("timescaledb", cur.fetchall(), [])

# Query editor, table dropdown → showTables() without a schema.
cur.execute(
    f"""SELECT
    CASE WHEN {SCHEMA_CONSTRAINT}
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN {SCHEMA_CONSTRAINT} THEN 0 ELSE 1 END, 1"""
)
listed = [row[0] for row in cur.fetchall()]
check("table type", types(cur), [TEXT])
tables = {name.split(".")[-1] for name in listed}
for table in [
    "samples", "histograms", "inferences", "logs", "spans", "drift_results",
    "models", "versions", "aliases", "recommendations", "audit_log",
]:
    if table not in tables:
        sys.exit(f"showTables() lacks {table}: {sorted(tables)}")

# Query editor, column dropdown → getSchema(table) with the name as the
# table dropdown listed it (`public.samples`: the search_path lookup above is
# answered with no schema, so Grafana shows schema-qualified names).
samples = next(name for name in listed if name.split(".")[-1] == "samples")
check("listed name", samples, "public.samples")
table_part = "'" + samples.replace("'", "''") + "'"
cur.execute(
    f"""SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident({table_part}),1) = 2
        THEN quote_ident(table_schema) = (parse_ident({table_part}))[1]
          AND quote_ident(table_name) = (parse_ident({table_part}))[2]
        ELSE quote_ident(table_name) = {table_part}
          AND {SCHEMA_CONSTRAINT}
      END"""
)
columns = {row[0] for row in cur.fetchall()}
check("column list types", types(cur), [TEXT, TEXT])
for column in ["ts", "metric", "value", "labels", "model", "version"]:
    if column not in columns:
        sys.exit(f"getSchema('samples') lacks {column}: {sorted(columns)}")

# Time series panel (code mode):
#   SELECT $__timeGroupAlias(ts, 1m), avg(value) AS "cpu" FROM samples
#   WHERE $__timeFilter(ts) AND metric = 'cpu' GROUP BY 1 ORDER BY 1
# expanded by macros.go (__timeGroupAlias → __timeGroup + AS "time").
cur.execute(
    f"""SELECT floor(extract(epoch from ts)/60)*60 AS "time", avg(value) AS "cpu" FROM samples
WHERE ts BETWEEN '{time_from}' AND '{time_to}' AND metric = 'cpu' GROUP BY 1 ORDER BY 1"""
)
rows = cur.fetchall()
check("timeGroup types", types(cur), [FLOAT8, FLOAT8])
check("timeGroup values", [v for _, v in rows], [1.0, 2.0, 3.0])
if any(t % 60 != 0 for t, _ in rows):
    sys.exit(f"timeGroup buckets are not whole minutes: {rows}")

# Time series panel, raw points with $__time(ts) and $__timeFilter(ts), one
# series per version (Grafana's "metric" column).
cur.execute(
    f"""SELECT ts AS "time", version AS metric, value FROM samples
WHERE ts BETWEEN '{time_from}' AND '{time_to}' AND metric = 'cpu' ORDER BY 1"""
)
rows = cur.fetchall()
check("$__time types", types(cur), [TIMESTAMPTZ, TEXT, FLOAT8])
check("$__time values", [(m, v) for _, m, v in rows], [("2", 1.0), ("2", 2.0), ("2", 3.0)])
if rows[0][0].utcoffset().total_seconds() != 0:
    sys.exit(f"timestamps are not UTC: {rows[0][0]!r}")

# Table panel: counts per model and version, the stale flag (bool).
cur.execute(
    f"""SELECT model, version, count(*) AS n, bool_or(stale) AS any_stale
FROM samples WHERE ts BETWEEN '{time_from}' AND '{time_to}' GROUP BY model, version"""
)
check("table values", cur.fetchall(), [("fraud", "2", 3, False)])
check("table types", types(cur), [TEXT, TEXT, INT8, BOOL])

# Map columns arrive as JSON text.
cur.execute("SELECT labels FROM samples WHERE metric = 'cpu' LIMIT 1")
check("labels type", types(cur), [TEXT])
check("labels", json.loads(cur.fetchone()[0]), {"host": "a"})

# Registry views: version numbers are integers there.
cur.execute("SELECT model, version, status FROM versions ORDER BY version")
check("versions types", types(cur), [TEXT, INT8, TEXT])
check("versions", [r[:2] for r in cur.fetchall()], [("fraud", 1), ("fraud", 2)])

# Template variable query (Dashboard settings → Variables).
cur.execute("SELECT DISTINCT model FROM samples ORDER BY 1")
check("variable", cur.fetchall(), [("fraud",)])

# The extended protocol (pgx's default for every query; psycopg with
# parameters): a parameter, then the same statement prepared server-side.
for prepare in (False, True):
    cur.execute(
        "SELECT count(*) AS n FROM samples WHERE metric = %s AND model = %s",
        ("cpu", "fraud"),
        prepare=prepare,
    )
    check(f"extended (prepare={prepare})", cur.fetchall(), [(3,)])
    check("extended types", types(cur), [INT8])

# Binary results (pgx asks for them for known types).
bcur = conn.cursor(binary=True)
bcur.execute(
    f"SELECT ts, value, stale, version FROM samples WHERE ts BETWEEN '{time_from}' AND '{time_to}' ORDER BY ts LIMIT 1"
)
row = bcur.fetchone()
check("binary types", types(bcur), [TIMESTAMPTZ, FLOAT8, BOOL, TEXT])
check("binary values", row[1:], (1.0, False, "2"))

# Read-only, with PostgreSQL's SQLSTATE.
try:
    cur.execute("DROP TABLE samples")
    sys.exit("DROP TABLE was accepted")
except psycopg.Error as e:
    check("DROP refused", e.sqlstate, "25006")

# A bad query is an error; the connection keeps working afterwards.
try:
    cur.execute("SELECT no_such_column FROM samples")
    sys.exit("a bad column was accepted")
except psycopg.Error as e:
    check("undefined column", e.sqlstate, "42703")
cur.execute("SELECT 1 AS one")
check("after an error", cur.fetchall(), [(1,)])

conn.close()
print("grafana sql ok")
