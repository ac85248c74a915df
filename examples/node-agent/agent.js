#!/usr/bin/env node
// A Honua build agent in Node.js, written only against docs/sql-api.md: it claims builds, heartbeats them,
// appends log lines, records metrics, attaches an artifact and completes them, branching on SQLSTATEs.
//
//   DATABASE_URL=postgres://... WORKER_ID=node-1 CONCURRENCY=4 node agent.js
//
// Environment: DATABASE_URL (required), WORKER_ID (default node-<pid>), CONCURRENCY (slots, default 2),
// POLL_SECONDS (poll when no notification came, default 1), RESCUE_SECONDS (how often to call
// handle_build_timeouts, so builds of crashed agents go back to the queue; default 15, 0: never), EXIT_WHEN_IDLE=1 (stop once nothing is claimable and
// no slot is busy: for tests and batch runs). It prints one JSON line of counts when it stops (SIGTERM/SIGINT too).
//
// This agent does not really build: it walks through the manifest's `simulate` instructions, if any
// ({"simulate": {"seconds": 1.5, "fail": "reason"}} or {"retryable": "reason"}), and reports an image derived from
// the manifest hash.
'use strict';

const crypto = require('node:crypto');
const { Client } = require('pg');

const DATABASE_URL = process.env.DATABASE_URL;
const WORKER_ID = process.env.WORKER_ID || `node-${process.pid}`;
const CONCURRENCY = Number(process.env.CONCURRENCY || 2);
const POLL_MS = 1000 * Number(process.env.POLL_SECONDS || 1);
const EXIT_WHEN_IDLE = process.env.EXIT_WHEN_IDLE === '1';
const RESCUE_MS = 1000 * Number(process.env.RESCUE_SECONDS ?? 15);

// A transient failure ("try again later", complete_build_v2 with 'retryable'): the build goes back to the queue
// with retry_count + 1 after a backoff, and fails for good once its retries are spent. $1 build, $2 worker,
// $3 error; returns whether it was ours.
const RETRYABLE_FAILURE_SQL = process.env.HONUA_RETRYABLE_FAILURE_SQL
  || "SELECT complete_build_v2($1, $2, 'retryable', NULL, NULL, $3) <> 'not_held' AS held";

// SQLSTATEs of docs/sql-api.md ("Error codes") this agent branches on.
const NOT_HELD = 'HN302'; // the build is no longer ours (cancelled, rescued, completed elsewhere)

const counts = { completed: 0, failed: 0, lost: 0 };
let stopping = false;
let busy = 0;
const waiters = [];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const sha256 = (text) => crypto.createHash('sha256').update(text).digest('hex');

function wake() {
  while (waiters.length) waiters.shift()();
}

function waitForWork(ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    waiters.push(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

class Lost extends Error {}

// One slot: its own connection, claiming and running one build at a time.
async function slot(index) {
  const slotId = `${WORKER_ID}/${index}`;
  const db = new Client({ connectionString: DATABASE_URL });
  await db.connect();
  try {
    while (!stopping) {
      // Claim: zero or one build_queue row, already `running` for us.
      const { rows } = await db.query('SELECT * FROM get_next_build_for_worker($1)', [slotId]);
      if (rows.length === 0) {
        if (EXIT_WHEN_IDLE && busy === 0) break;
        await waitForWork(EXIT_WHEN_IDLE ? 50 : POLL_MS);
        continue;
      }
      busy += 1;
      try {
        await runBuild(db, slotId, rows[0]);
      } finally {
        busy -= 1;
      }
    }
  } finally {
    await db.end();
  }
}

async function call(db, sql, params) {
  try {
    return (await db.query(sql, params)).rows[0];
  } catch (error) {
    if (error.code === NOT_HELD) throw new Lost(error.message);
    throw error;
  }
}

async function runBuild(db, slotId, build) {
  const started = Date.now();
  const manifest = build.manifest || {};
  const simulate = manifest.simulate || {};
  const log = (line) => call(db, 'SELECT append_build_log($1, $2, $3) AS id', [build.id, slotId, line + '\n']);
  const progress = async (percent, stage) => {
    // Progress is also the heartbeat; false means stop (cancelled, or the build is no longer ours).
    const row = await call(db, 'SELECT update_build_progress($1, $2, $3, $4) AS held', [build.id, slotId, percent, stage]);
    if (!row.held) throw new Lost('update_build_progress returned false');
  };
  try {
    await progress(10, 'resolve');
    await log(`node agent ${slotId} building ${build.id} (attempt ${build.retry_count + 1})`);
    const seconds = Number(simulate.seconds || 0);
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline) {
      await sleep(Math.min(200, Math.max(0, deadline - Date.now())));
      await progress(50, 'build');
    }
    await call(db, 'SELECT record_build_metric($1, $2, $3, $4, $5) AS id', [
      build.id, slotId, 'run_seconds', (Date.now() - started) / 1000, 's',
    ]);
    if (simulate.retryable && RETRYABLE_FAILURE_SQL) {
      await log(`transient failure: ${simulate.retryable}`);
      const row = await call(db, RETRYABLE_FAILURE_SQL, [build.id, slotId, String(simulate.retryable)]);
      counts[Object.values(row)[0] ? 'failed' : 'lost'] += 1;
      return;
    }
    if (simulate.fail || simulate.retryable) {
      const reason = String(simulate.fail || simulate.retryable);
      await log(`failing: ${reason}`);
      const row = await call(db, 'SELECT complete_build($1, $2, false, NULL, NULL, $3) AS done', [build.id, slotId, reason]);
      counts[row.done ? 'failed' : 'lost'] += 1;
      return;
    }
    const report = JSON.stringify({ build: build.id, manifest_hash: build.manifest_hash, agent: 'node' });
    await call(db, 'SELECT attach_build_artifact($1, $2, $3, $4, $5, $6, $7, $8) AS id', [
      build.id, slotId, 'report', `file:///reports/${build.id}.json`, 'application/json',
      Buffer.byteLength(report), `sha256:${sha256(report)}`, JSON.stringify({ agent: 'node' }),
    ]);
    const image = `registry.example/node-agent/${build.manifest_hash.slice(0, 16)}:latest`;
    const digest = `sha256:${sha256(`${build.manifest_hash}:${build.id}`)}`;
    const row = await call(db, 'SELECT complete_build($1, $2, true, $3, $4) AS done', [build.id, slotId, image, digest]);
    counts[row.done ? 'completed' : 'lost'] += 1;
  } catch (error) {
    if (!(error instanceof Lost)) throw error;
    counts.lost += 1;
  }
}

async function listen() {
  // Wake-ups: enqueue_build notifies on channel build_queue at commit; polling is the safety net.
  const db = new Client({ connectionString: DATABASE_URL });
  await db.connect();
  db.on('notification', wake);
  await db.query('LISTEN build_queue');
  return db;
}

async function main() {
  if (!DATABASE_URL) {
    console.error('node-agent: set DATABASE_URL');
    process.exit(2);
  }
  const stop = () => {
    stopping = true;
    wake();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const listener = await listen();
  // Rescue: requeue (or time out) running builds whose heartbeat is overdue, whoever ran them.
  const rescue = RESCUE_MS > 0
    ? setInterval(() => listener.query('SELECT handle_build_timeouts()').catch((e) => console.error(e.message)), RESCUE_MS)
    : null;
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => slot(i)));
  } finally {
    if (rescue) clearInterval(rescue);
    await listener.end();
  }
  console.log(JSON.stringify({ worker_id: WORKER_ID, ...counts }));
}

main().catch((error) => {
  console.error(`node-agent: ${error.code || ''} ${error.message}`);
  process.exit(1);
});
