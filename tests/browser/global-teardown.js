// Stops the demo started by global-setup.js (Ctrl-C, as a user would) and checks it stopped
// cleanly: open pages must not hold up its shutdown.
const fs = require('node:fs');
const path = require('node:path');

const STATE = path.join(__dirname, 'test-results', 'demo.json');

module.exports = async () => {
  const { pid, log } = JSON.parse(fs.readFileSync(STATE, 'utf8'));
  try { process.kill(pid, 'SIGINT'); } catch { return; }
  const deadline = Date.now() + 30_000;
  for (;;) {
    try { process.kill(pid, 0); } catch { break; }
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      throw new Error(`fleetscore demo did not stop within 30 s:\n${fs.readFileSync(log, 'utf8').slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
};
