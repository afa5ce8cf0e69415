#!/usr/bin/python3
"""scripts/simulate.py — keep the demo data moving, so long-polls on `make run` have something to wake for.

    scripts/simulate.py ["host=127.0.0.1 port=54329 dbname=pollgate user=postgres"] [--interval 2]
                        [--hold-run 42 --hold-minutes 20]

Without a connection string, libpq's PG* environment variables apply (PGHOST, PGPORT, PGDATABASE, ...).
It plays the application that owns the rows: every step (~2 s) it

  * moves each active run one step: queued -> running (started_at) -> processed += 1..3 of the total in
    summary_counts -> completed with an outcome (mostly succeeded, sometimes partially_succeeded or
    failed) and completed_at; when a run completes a new queued run for tenant 7 takes its place;
  * moves tenant 7's latest review pack: generating -> ready after ~15 s; a ready pack is followed
    after ~30 s by a new one, queued -> generating (~5 s) -> ready (~15 s). updated_at is set on every
    change.

With --hold-run ID, that run is the demo's slow one (`make run` names it in its banner, so a curl pasted
minutes later still finds it moving): at start it is set back to running 0/N, and it advances one item
about every 15 s, by the clock, to complete after --hold-minutes (default 20). The other runs move on
every step as above.

One line per change ("run 42: running 4/10"). Each change is its own committed statement, so the NOTIFY
triggers fire as they would in production. If the database goes away it retries every second.
SIGINT/SIGTERM end it cleanly (exit 0).
"""

import argparse
import json
import random
import signal
import sys
import threading
import time

import psycopg2

TENANT = 7
WORKSPACE = 1
PACK_GENERATE_S = 15.0
PACK_QUEUED_S = 5.0
PACK_NEXT_S = 30.0
RUN_TYPES = ("inventory.sync", "directory.import", "policy.evaluate")

stop = threading.Event()


def say(msg):
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def on_signal(signum, frame):
    stop.set()


def counts(summary):
    s = summary if isinstance(summary, dict) else {}
    total = s.get("total") if isinstance(s.get("total"), int) and s.get("total") > 0 else 10
    processed = s.get("processed") if isinstance(s.get("processed"), int) else 0
    return total, max(0, min(processed, total))


HOLD_ITEM_S = 15.0  # the slow run advances about this often: under the 25 s of a default long-poll


class Hold:
    """The slow run's clock; it outlives a reconnect (a new Simulator), so the run is reset only once."""

    def __init__(self, run_id, minutes):
        self.run_id = run_id
        self.duration = max(1.0, minutes * 60.0)
        self.total = max(1, round(self.duration / HOLD_ITEM_S))
        self.started = None  # monotonic time of the reset, None until done
        self.processed = 0
        self.done = False


class Simulator:
    def __init__(self, conn, rng, hold=None):
        self.conn = conn
        self.rng = rng
        self.hold = hold
        self.pack_seen = {}  # pack id -> (status, monotonic time this simulator first saw it so)

    def q(self, sql, args=()):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None

    # -- runs

    def step_hold(self):
        h = self.hold
        if h is None or h.done:
            return
        if h.started is None:
            rows = self.q("UPDATE operation_runs SET status = 'running', outcome = NULL, failure_summary = NULL, "
                          "started_at = now(), completed_at = NULL, summary_counts = %s::jsonb WHERE id = %s "
                          "RETURNING id", (json.dumps({"total": h.total, "processed": 0}), h.run_id))
            if not rows:
                say(f"run {h.run_id}: not in the database; no slow run")
                h.done = True
                return
            h.started = time.monotonic()
            say(f"run {h.run_id}: running 0/{h.total} (the slow run: one item every ~{h.duration / h.total:.0f} s, "
                f"completes in {h.duration / 60:.0f} min)")
            return
        elapsed = time.monotonic() - h.started
        if elapsed >= h.duration:
            self.q("UPDATE operation_runs SET summary_counts = summary_counts || %s::jsonb WHERE id = %s",
                   (json.dumps({"total": h.total, "processed": h.total}), h.run_id))
            self.complete(h.run_id, h.total)
            h.done = True
            return
        processed = min(h.total - 1, int(elapsed * h.total / h.duration))
        if processed > h.processed:
            h.processed = processed
            self.q("UPDATE operation_runs SET summary_counts = summary_counts || %s::jsonb WHERE id = %s",
                   (json.dumps({"total": h.total, "processed": processed}), h.run_id))
            say(f"run {h.run_id}: running {processed}/{h.total}")

    def step_runs(self):
        hold_id = self.hold.run_id if self.hold is not None else None
        rows = self.q("SELECT id, status, summary_counts FROM operation_runs "
                      "WHERE status IN ('queued', 'running') AND id IS DISTINCT FROM %s ORDER BY id LIMIT 10",
                      (hold_id,))
        for run_id, status, summary in rows:
            total, processed = counts(summary)
            if status == "queued":
                self.q("UPDATE operation_runs SET status = 'running', started_at = now(), "
                       "summary_counts = %s::jsonb WHERE id = %s",
                       (json.dumps({"total": total, "processed": 0}), run_id))
                say(f"run {run_id}: running 0/{total}")
            elif processed < total:
                processed = min(total, processed + self.rng.randint(1, 3))
                new = dict(summary) if isinstance(summary, dict) else {}
                new.update(total=total, processed=processed)
                self.q("UPDATE operation_runs SET summary_counts = %s::jsonb WHERE id = %s",
                       (json.dumps(new), run_id))
                say(f"run {run_id}: running {processed}/{total}")
            else:
                self.complete(run_id, total)

    def complete(self, run_id, total):
        r = self.rng.random()
        outcome = "succeeded" if r < 0.75 else ("partially_succeeded" if r < 0.9 else "failed")
        failure = None
        if outcome == "partially_succeeded":
            failure = [{"code": "item_skipped", "message": "Some items could not be processed."}]
        elif outcome == "failed":
            failure = [{"code": "upstream_error", "message": "The source returned an error."}]
        self.q("UPDATE operation_runs SET status = 'completed', outcome = %s, completed_at = now(), "
               "failure_summary = %s::jsonb WHERE id = %s",
               (outcome, json.dumps(failure) if failure else None, run_id))
        say(f"run {run_id}: completed {outcome}")
        new_total = self.rng.randint(8, 15)
        new_id = self.q("INSERT INTO operation_runs (workspace_id, tenant_id, user_id, type, status, context, "
                        "summary_counts) VALUES (%s, %s, 1, %s, 'queued', %s::jsonb, %s::jsonb) RETURNING id",
                        (WORKSPACE, TENANT, self.rng.choice(RUN_TYPES),
                         json.dumps({"secret": "simulator-context-never-served"}),
                         json.dumps({"total": new_total, "processed": 0})))[0][0]
        say(f"run {new_id}: queued (new, tenant {TENANT}) -> GET /v1/runs/{new_id}")

    # -- review packs

    def step_pack(self):
        rows = self.q("SELECT id, status FROM review_packs WHERE tenant_id = %s "
                      "ORDER BY created_at DESC, id DESC LIMIT 1", (TENANT,))
        now = time.monotonic()
        if not rows:
            self.new_pack()
            return
        pack_id, status = rows[0]
        seen_status, since = self.pack_seen.get(pack_id, (None, now))
        if seen_status != status:
            self.pack_seen = {pack_id: (status, now)}
            since = now
        age = now - since
        if status == "queued" and age >= PACK_QUEUED_S:
            self.set_pack(pack_id, "generating", "")
        elif status == "generating" and age >= PACK_GENERATE_S:
            self.set_pack(pack_id, "ready", ", generated_at = now(), expires_at = now() + interval '30 days', "
                                            "file_size = %d" % self.rng.randint(100_000, 2_000_000))
        elif status not in ("queued", "generating") and age >= PACK_NEXT_S:
            self.new_pack()

    def set_pack(self, pack_id, status, extra):
        self.q(f"UPDATE review_packs SET status = %s, updated_at = now(){extra} WHERE id = %s", (status, pack_id))
        say(f"review pack {pack_id} (tenant {TENANT}): {status}")

    def new_pack(self):
        pack_id = self.q("INSERT INTO review_packs (workspace_id, tenant_id, initiated_by_user_id, status, options, "
                         "summary, file_path, file_disk) VALUES (%s, %s, 1, 'queued', %s::jsonb, %s::jsonb, %s, "
                         "'private-s3') RETURNING id",
                         (WORKSPACE, TENANT, json.dumps({"secret": "simulator-options-never-served"}),
                          json.dumps({"secret": "simulator-summary-never-served"}),
                          f"packs/tenant-{TENANT}/{int(time.time())}.pdf"))[0][0]
        say(f"review pack {pack_id} (tenant {TENANT}): queued (new)")

    def step(self):
        self.step_hold()
        self.step_runs()
        self.step_pack()


def connect(dsn):
    conn = psycopg2.connect(dsn, application_name="pollgate-simulator", connect_timeout=5)
    conn.autocommit = True
    return conn


def main():
    ap = argparse.ArgumentParser(description="Move pollgate's demo runs and review packs through their lifecycle.")
    ap.add_argument("dsn", nargs="?", default="", help="libpq connection string (default: PG* environment)")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between steps (default 2)")
    ap.add_argument("--seed", type=int, default=None, help="random seed")
    ap.add_argument("--hold-run", type=int, default=None, help="a run kept running slowly (see above)")
    ap.add_argument("--hold-minutes", type=float, default=20.0, help="how long the --hold-run run stays running")
    args = ap.parse_args()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    rng = random.Random(args.seed)
    hold = Hold(args.hold_run, args.hold_minutes) if args.hold_run is not None else None
    sim = None
    down_since = None
    say("simulator: started (Ctrl-C to stop)")
    while not stop.is_set():
        try:
            if sim is None:
                sim = Simulator(connect(args.dsn), rng, hold)
                if down_since is not None:
                    say("simulator: database is back")
                    down_since = None
            sim.step()
            stop.wait(args.interval)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
            if down_since is None:
                down_since = time.monotonic()
                say(f"simulator: database unavailable ({str(e).strip().splitlines()[0] if str(e).strip() else e!r}); "
                    "retrying every second")
            if sim is not None:
                try:
                    sim.conn.close()
                except Exception:
                    pass
                sim = None
            stop.wait(1.0)
        except psycopg2.Error as e:  # a bad row, a schema mismatch: report it, keep going
            say(f"simulator: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
            stop.wait(args.interval)
    if sim is not None:
        try:
            sim.conn.close()
        except Exception:
            pass
    say("simulator: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
