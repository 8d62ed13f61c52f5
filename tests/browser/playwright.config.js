// The fleet view in a real browser: Debian's chromium (Playwright cannot download its own
// browsers here; CHROMIUM_PATH overrides the path) against `fleetscore demo` on the embedded
// mock cluster, started by global-setup.js.
const { defineConfig } = require('@playwright/test');

module.exports = defineConfig({
  testDir: '.',
  testMatch: /.*\.spec\.js/,
  globalSetup: require.resolve('./global-setup.js'),
  globalTeardown: require.resolve('./global-teardown.js'),
  reporter: [['list']],
  // One demo for every test: the stream the alert test adds to is shared.
  workers: 1,
  timeout: 60_000,
  expect: { timeout: 15_000 },
  outputDir: 'test-results',
  use: {
    baseURL: process.env.FLEETSCORE_PAGE,
    launchOptions: { executablePath: process.env.CHROMIUM_PATH || '/usr/lib/chromium/chromium' },
    viewport: { width: 1366, height: 768 },
  },
});
