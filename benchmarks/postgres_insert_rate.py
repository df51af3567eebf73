"""Single-node PostgreSQL insert rate through the project's own results log (``ResultStore``).

    PYTHONPATH=src python benchmarks/postgres_insert_rate.py [--url URL] [--rows 3000]
        [--writers 1 4] [--batch-sizes 100 1000]

``--url`` defaults to ``$DEFECTSCOPE_TEST_POSTGRES_URL`` (``scripts/ci-services.sh`` starts a
server). Rows are realistic results (verdict, score, timings, defect types, image hash and
path), written under a line name of their own and deleted afterwards. Modes:

- one by one: ``ResultStore.add``, one transaction and commit per part (what a line's runtime
  does), with 1 and with each of ``--writers`` concurrent writer processes;
- batched: ``ResultStore.add_many``, one transaction per ``--batch-sizes`` parts (what a
  forwarder shipping a second of a line's results at a time would do).

Printed: rows/s of each, the client's CPU seconds per row (to tell a client-bound run from a
server-bound one), the table's bytes per row (heap + indexes, from pg_total_relation_size) and
the server's durability settings (fsync, synchronous_commit), which decide the cost of a commit.
Single runs on a shared machine: the client and the server share its CPUs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sys
import time
import uuid

WARMUP = 50


def result(line: str, i: int):
    from defectscope.values import PartResult, Verdict

    verdict = (Verdict.OK, Verdict.NG, Verdict.UNSURE)[0 if i % 20 else 1 + (i // 20) % 2]
    return PartResult(
        part_id=f"{line}-{i:09d}", timestamp=1_700_000_000.0 + i / 10, verdict=verdict,
        score=0.01 * (i % 97), threshold=0.5, model_version="a3f9c2e1d4b5", dataset_version="d7",
        line=line, source=f"cam0/{i:09d}.png",
        defect_types=("blowhole",) if verdict is Verdict.NG else (),
        timings={"read": 1.2, "preprocess": 2.1, "model": 14.7, "total": 18.4},
        reason="score near the threshold" if verdict is Verdict.UNSURE else None,
        image_sha256=f"{i:064x}")


def _writer(url: str, line: str, start: int, n: int, ready, go, out) -> None:
    from defectscope.store import ResultStore

    store = ResultStore(url)
    rows = [result(line, start + i) for i in range(n)]
    ready.wait()
    go.wait()
    began, cpu = time.perf_counter(), time.process_time()
    for row in rows:
        store.add(row)
    out.put((time.perf_counter() - began, time.process_time() - cpu))
    store.close()


def concurrent_one_by_one(url: str, line: str, start: int, writers: int, n: int) -> dict:
    """``writers`` processes each adding ``n`` parts one commit at a time, started together."""
    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Barrier(writers + 1), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, line, start + w * n, n, ready, go, out))
             for w in range(writers)]
    for p in procs:
        p.start()
    ready.wait()
    began = time.perf_counter()
    go.set()
    results = [out.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - began
    for p in procs:
        p.join()
    cpu = sum(c for _, c in results)
    return {"mode": f"one by one, {writers} writer(s)", "rows": writers * n,
            "rows_per_s": writers * n / wall, "client_cpu_ms_per_row": 1e3 * cpu / (writers * n)}


def batched(store, line: str, start: int, n: int, batch: int) -> dict:
    rows = [result(line, start + i) for i in range(n)]
    began, cpu = time.perf_counter(), time.process_time()
    for i in range(0, n, batch):
        store.add_many(rows[i:i + batch])
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {"mode": f"batched, {batch} per transaction", "rows": n, "rows_per_s": n / wall,
            "client_cpu_ms_per_row": 1e3 * cpu / n}


def main(argv=None) -> int:
    from sqlalchemy import text

    from defectscope.store import ResultStore

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("DEFECTSCOPE_TEST_POSTGRES_URL"))
    parser.add_argument("--rows", type=int, default=3000, help="rows per writer and per mode")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args(argv)
    if not args.url:
        print("# no --url and no DEFECTSCOPE_TEST_POSTGRES_URL: nothing to measure")
        return 1
    store = ResultStore(args.url)
    line = f"bench-{uuid.uuid4().hex[:10]}"
    print(f"# {' '.join([os.path.basename(sys.argv[0])] + (argv or sys.argv[1:]))}")
    print(f"# machine: {platform.platform()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    with store.engine.connect() as connection:
        settings = {name: connection.execute(text(f"SHOW {name}")).scalar()
                    for name in ("server_version", "fsync", "synchronous_commit",
                                 "wal_sync_method", "shared_buffers")}
    print("# server: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    rows, start = [], 0
    try:
        store.add_many([result(line, i) for i in range(WARMUP)])  # connections, caches
        start = WARMUP
        for writers in args.writers:
            rows.append(concurrent_one_by_one(args.url, line, start, writers, args.rows))
            start += writers * args.rows
            print(f"# {rows[-1]}", flush=True)
        with store.engine.connect() as connection:
            size_before = connection.execute(
                text("SELECT pg_total_relation_size('results')")).scalar()
        batched_rows = 0
        for batch in args.batch_sizes:
            n = max(args.rows, batch) // batch * batch
            rows.append(batched(store, line, start, n, batch))
            start += n
            batched_rows += n
            print(f"# {rows[-1]}", flush=True)
        with store.engine.connect() as connection:
            size_after = connection.execute(
                text("SELECT pg_total_relation_size('results')")).scalar()
    finally:
        with store.engine.begin() as connection:
            deleted = connection.execute(text("DELETE FROM results WHERE line = :line"),
                                         {"line": line}).rowcount
        store.close()
    print("| mode | rows | rows/s | client CPU ms/row |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['rows']} | {row['rows_per_s']:.0f} | "
              f"{row['client_cpu_ms_per_row']:.2f} |")
    print(f"# table growth: {(size_after - size_before) / max(batched_rows, 1):.0f} bytes/row "
          f"(heap + indexes, over the {batched_rows} batched rows); {deleted} benchmark rows "
          "deleted afterwards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
