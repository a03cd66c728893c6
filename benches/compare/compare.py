#!/usr/bin/env python3
"""TPC-H side by side: stagesql (at its defaults, and in pipelined mode), Apache DataFusion
(its Python bindings) and DuckDB, on the same Parquet files, the same threads, one engine at
a time.

    python3 benches/compare/compare.py --sf 1 --runs 3 --out compare-sf1.md

What it does, in order:
  1. Makes a virtual environment (default ~/.cache/stagesql/compare-venv) with the peers
     from PyPI if they are missing: datafusion==55.*, duckdb, tpchgen-cli.
  2. Generates TPC-H Parquet at the scale factor once with tpchgen-cli, one file per table
     (default ~/.cache/stagesql/compare/sf<SF>/).
  3. Runs the 22 queries (engine/src/tpch/queries, validation parameters) on each engine in
     a process of its own: a warm-up run, then --runs timed runs; the median counts.
     stagesql runs as users run it, the release binary on a script per query (its own
     per-statement time, printed on stderr, is the figure; its process start and the table
     definitions are not timed); the peers run in Python, timed around the query and the
     collection of its result as Arrow.
  4. Checks that every engine returned the same rows as DuckDB (as multisets; numbers to
     two decimals), and writes a markdown table: per query median seconds, ratios against
     DataFusion, geometric means, and each engine's peak RSS (the maximum resident set of
     its process; the peers' include their Python interpreter's, about 30 MB).

The engines all get --threads slots/threads (default 2). stagesql runs with an empty
configuration directory, so only its defaults apply (200 shuffle partitions, adaptive
execution on) plus `--master local[THREADS]`.
"""

import argparse
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "engine" / "src" / "tpch" / "queries"
TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stagesql"
PEERS = ["datafusion==55.*", "duckdb", "tpchgen-cli"]
ENGINES = ["stagesql", "stagesql-pipelined", "datafusion", "duckdb"]


def query_texts():
    """The 22 queries, each as its list of statements (Q15 has three)."""
    out = {}
    for n in range(1, 23):
        text = (QUERIES / f"q{n:02}.sql").read_text()
        text = "\n".join(l for l in text.splitlines() if not l.strip().startswith("--"))
        out[f"Q{n}"] = [s.strip() for s in text.split(";") if s.strip()]
    return out


# ---------------------------------------------------------------------------------------
# Workers: one engine in one process, printing {"queries": {Q: {"times": [...],
# "rows": [...]}}, "peak_rss_mb": N} as JSON on stdout.


def normalize(value):
    """A cell as compared across engines: numbers to two decimals, the rest as text."""
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)) or type(value).__name__ == "Decimal":
        return f"{float(value):.2f}"
    text = str(value).strip()
    if text in ("", "NULL"):
        return text
    try:
        return f"{float(text):.2f}"
    except ValueError:
        return text


def arrow_rows(table):
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return sorted("|".join(normalize(c[r]) for c in columns) for r in range(table.num_rows))


def run_python_engine(engine, data, threads, runs):
    if engine == "datafusion":
        import datafusion

        config = datafusion.SessionConfig().with_target_partitions(threads)
        ctx = datafusion.SessionContext(config)
        for table in TABLES:
            ctx.register_parquet(table, str(data / f"{table}.parquet"))

        def execute(sql):
            return ctx.sql(sql).to_arrow_table()
    else:
        import duckdb

        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        for table in TABLES:
            con.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{data / f'{table}.parquet'}')"
            )

        def execute(sql):
            con.execute(sql)
            return None if con.description is None else con.to_arrow_table()

    results = {}
    for name, statements in query_texts().items():
        times, rows = [], None
        for run in range(runs + 1):
            started = time.perf_counter()
            for sql in statements:
                result = execute(sql)
                if rows is None and sql.lower().startswith("select"):
                    rows = arrow_rows(result)
            elapsed = time.perf_counter() - started
            if run > 0:
                times.append(elapsed)
        results[name] = {"times": times, "rows": rows or []}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"queries": results, "peak_rss_mb": peak}


TIMING = re.compile(r"\(([0-9.]+) s\)$|in ([0-9.]+) s$")


def run_stagesql(binary, data, threads, runs, pipelined):
    """Runs each query in a stagesql process of its own: the table definitions, then the
    query runs + 1 times. The times are stagesql's own per-statement times."""
    import csv
    import io

    setup = "".join(
        f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{data / f'{t}.parquet'}';\n"
        for t in TABLES
    )
    conf = ["--master", f"local[{threads}]"]
    if pipelined:
        conf += ["--conf", "stagesql.execution.mode=pipelined"]
    results, peak = {}, 0.0
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, STAGESQL_CONF_DIR=str(Path(work) / "no-conf"))
        for name, statements in query_texts().items():
            script = Path(work) / f"{name}.sql"
            body = "".join(s + ";\n" for s in statements)
            script.write_text(setup + body * (runs + 1))
            started = time.perf_counter()
            done = subprocess.run(
                [str(binary), *conf, "--format", "csv", "-f", str(script)],
                cwd=work, env=env, capture_output=True, text=True,
            )
            if done.returncode != 0:
                raise SystemExit(f"stagesql failed on {name}:\n{done.stderr[-2000:]}")
            times = [
                float(m.group(1) or m.group(2))
                for line in done.stderr.splitlines()
                if (m := TIMING.search(line.strip()))
            ]
            times = times[len(TABLES):]  # the table definitions
            per_run = len(statements)
            if len(times) != per_run * (runs + 1):
                raise SystemExit(f"stagesql {name}: unexpected timing lines:\n{done.stderr[-2000:]}")
            run_times = [sum(times[i * per_run:(i + 1) * per_run]) for i in range(runs + 1)]
            # The output is the result `runs + 1` times over: the first copy is the first run's.
            lines = done.stdout.splitlines()
            first = lines[: len(lines) // (runs + 1)]
            parsed = list(csv.reader(io.StringIO("\n".join(first))))[1:]
            rows = sorted("|".join(normalize(c) for c in row) for row in parsed)
            results[name] = {"times": run_times[1:], "rows": rows}
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"queries": results, "peak_rss_mb": peak}


def worker(args):
    data = Path(args.data)
    if args.worker in ("stagesql", "stagesql-pipelined"):
        out = run_stagesql(
            Path(args.stagesql), data, args.threads, args.runs, args.worker == "stagesql-pipelined"
        )
    else:
        out = run_python_engine(args.worker, data, args.threads, args.runs)
    json.dump(out, sys.stdout)


# ---------------------------------------------------------------------------------------
# The driver.


def ensure_venv(venv):
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = "import datafusion, duckdb; assert datafusion.__version__.startswith('55.')"
    has_cli = (venv / "bin" / "tpchgen-cli").exists()
    if subprocess.run([str(python), "-c", probe], capture_output=True).returncode != 0 or not has_cli:
        print(f"installing {', '.join(PEERS)} into {venv}", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS], check=True)
    return python


def ensure_data(venv, sf, data):
    if (data / "_SUCCESS").exists():
        return
    print(f"generating TPC-H SF {sf} Parquet into {data}", file=sys.stderr)
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(venv / "bin" / "tpchgen-cli"), "parquet", "-s", str(sf), "--output-dir", str(data)],
        check=True,
    )
    (data / "_SUCCESS").touch()


def ensure_stagesql(binary):
    if binary.exists():
        return
    print("building stagesql (cargo build --release -p stagesql-cli)", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "-p", "stagesql-cli"], cwd=ROOT, check=True)


def version(python, engine, binary):
    if engine.startswith("stagesql"):
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
        return out.stdout.strip()
    module = "datafusion" if engine == "datafusion" else "duckdb"
    out = subprocess.run(
        [str(python), "-c", f"import {module}; print({module}.__version__)"],
        capture_output=True, text=True,
    )
    return f"{module} {out.stdout.strip()}"


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def report(args, results, versions):
    engines = list(results)
    names = list(next(iter(results.values()))["queries"])
    median = {e: {q: statistics.median(results[e]["queries"][q]["times"]) for q in names} for e in engines}
    base = "datafusion" if "datafusion" in engines else engines[0]
    lines = [
        f"TPC-H SF {args.sf}, {args.threads} threads/slots, median of {args.runs} runs after a "
        f"warm-up, seconds; ratios are engine / {base}",
        "",
        "| query | " + " | ".join(engines) + " | " + " | ".join(
            f"{e} / {base}" for e in engines if e != base) + " |",
        "|---|" + "---:|" * (2 * len(engines) - 1),
    ]
    for q in names:
        cells = [f"{median[e][q]:.3f}" for e in engines]
        ratios = [f"{median[e][q] / median[base][q]:.2f}" for e in engines if e != base]
        lines.append(f"| {q} | " + " | ".join(cells + ratios) + " |")
    means = {e: geomean([median[e][q] for q in names]) for e in engines}
    lines.append(
        "| **geometric mean** | " + " | ".join(f"**{means[e]:.3f}**" for e in engines) + " | "
        + " | ".join(f"**{means[e] / means[base]:.2f}**" for e in engines if e != base) + " |"
    )
    lines.append(
        "| peak RSS (MB) | " + " | ".join(f"{results[e]['peak_rss_mb']:.0f}" for e in engines)
        + " |" + " |" * (len(engines) - 1)
    )
    lines += ["", "Versions: " + "; ".join(f"{e}: {versions[e]}" for e in engines)]
    for e in engines:
        if e == base:
            continue
        worst = max(names, key=lambda q: median[e][q] / median[base][q])
        lines.append(
            f"{e}: geometric mean {means[e] / means[base]:.2f}x {base}; largest {worst} at "
            f"{median[e][worst] / median[base][worst]:.2f}x"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sf", default="1", help="TPC-H scale factor (default 1)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per query (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads / slots (default 2)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated: " + ", ".join(ENGINES))
    parser.add_argument("--stagesql", default=None, help="stagesql binary (default: the release build)")
    parser.add_argument("--venv", default=str(CACHE / "compare-venv"), help="the peers' virtual environment")
    parser.add_argument("--data", default=None, help="TPC-H Parquet directory (default: cache)")
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    args.stagesql = args.stagesql or str(target / "release" / "stagesql")
    args.data = args.data or str(CACHE / "compare" / f"sf{args.sf}")
    if args.worker:
        return worker(args)

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for engine in engines:
        if engine not in ENGINES:
            raise SystemExit(f"unknown engine '{engine}'; engines are {', '.join(ENGINES)}")
    venv = Path(args.venv)
    python = ensure_venv(venv)
    ensure_data(venv, args.sf, Path(args.data))
    if any(e.startswith("stagesql") for e in engines):
        ensure_stagesql(Path(args.stagesql))

    results, versions = {}, {}
    for engine in engines:
        print(f"running {engine}", file=sys.stderr)
        command = [
            str(python), __file__, "--worker", engine, "--sf", args.sf, "--runs", str(args.runs),
            "--threads", str(args.threads), "--data", args.data, "--stagesql", args.stagesql,
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{engine} failed:\n{done.stderr[-3000:]}")
        results[engine] = json.loads(done.stdout)
        versions[engine] = version(python, engine, Path(args.stagesql))

    reference = "duckdb" if "duckdb" in results else engines[0]
    mismatches = [
        f"{e} {q}"
        for e in results
        for q, r in results[e]["queries"].items()
        if r["rows"] != results[reference]["queries"][q]["rows"]
    ]
    table = report(args, results, versions)
    if mismatches:
        table += f"\nANSWERS DIFFER from {reference}: {', '.join(mismatches)}\n"
    else:
        table += f"\nAll engines returned the same answers as {reference} on every query.\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
