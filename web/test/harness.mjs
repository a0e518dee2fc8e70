// What the page's browser checks (browser-check.mjs, dashboard-check.mjs) share: the log to
// stderr, the whole run's time limit (GPU_NN_BROWSER_TIMEOUT_S) with a backstop that ends a hung
// run with its JSON line, the step in progress for messages, and the one JSON line on stdout.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

export class CheckError extends Error {}

// `name` prefixes the log; `defaultTimeoutS` is the limit without GPU_NN_BROWSER_TIMEOUT_S;
// `usage(msg)` exits on a bad setting. Set `check.step` as the run goes and `check.browser`
// once Chromium runs.
export function startCheck(name, defaultTimeoutS, usage) {
  const started = Date.now();
  const check = { step: 'starting', browser: null, started };
  check.log = (...a) => console.error(`[${name} ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s]`, ...a);
  check.timeoutS = Number(process.env.GPU_NN_BROWSER_TIMEOUT_S || defaultTimeoutS);
  if (!(check.timeoutS > 0)) usage(`${name}: GPU_NN_BROWSER_TIMEOUT_S must be a positive number of seconds, not ${process.env.GPU_NN_BROWSER_TIMEOUT_S}`);
  check.chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
  const deadline = started + check.timeoutS * 1000;
  check.left = () => Math.max(1000, deadline - Date.now());
  check.fail = (msg) => { throw new CheckError(msg); };
  check.finish = async (code, line) => {
    // The JSON line is the last thing on stdout, whatever happens to the browser afterwards.
    process.stdout.write(`${JSON.stringify(line)}\n`);
    if (check.browser) await Promise.race([check.browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 10_000))]);
    process.exit(code);
  };
  // Starts Chromium with `flags` (into check.browser) and returns its first page, in a context
  // with `contextOptions` and a 1280×900 viewport.
  check.launch = async (flags, contextOptions = {}) => {
    if (!fs.existsSync(check.chromiumPath)) check.fail(`no Chromium at ${check.chromiumPath}: apt-get install -y chromium, or set CHROMIUM to the browser binary`);
    check.step = 'launching Chromium';
    check.log(`launching ${check.chromiumPath} ${flags.join(' ')}`);
    try {
      check.browser = await chromium.launch({ executablePath: check.chromiumPath, headless: true, args: flags, timeout: Math.min(check.left(), 120_000) });
    } catch (e) {
      check.fail(`could not start Chromium at ${check.chromiumPath}: ${String(e.message).split('\n')[0]}`);
    }
    check.log(`Chromium ${check.browser.version()}`);
    const context = await check.browser.newContext({ ...contextOptions, viewport: { width: 1280, height: 900 } });
    return context.newPage();
  };
  // A failed run: one line on stderr, a picture of the page as it failed in `outDir` (it helps
  // more than any message), and the JSON line with the error.
  check.reportFailure = async (e, outDir) => {
    const msg = e instanceof CheckError ? e.message : `${check.step}: ${String((e && e.stack) || e)}`;
    check.log(`FAILED at ${check.step}: ${msg}`);
    try {
      const pages = check.browser ? check.browser.contexts().flatMap((c) => c.pages()) : [];
      if (pages[0]) await pages[0].screenshot({ path: path.join(outDir, 'failure.png'), fullPage: true, timeout: 20_000 });
      if (pages[0]) check.log(`  the page as it failed: ${path.join(outDir, 'failure.png')}`);
    } catch { /* no picture then */ }
    await check.finish(1, { error: `${check.step}: ${msg.split('\n')[0]}` });
  };
  // Backstop: whatever hangs, the run ends at its limit (plus a little for the last wait's own
  // timeout to report first, with a better message).
  setTimeout(() => {
    check.log(`FAILED: the whole run exceeded ${check.timeoutS} s (GPU_NN_BROWSER_TIMEOUT_S) during: ${check.step}`);
    check.finish(1, { error: `timed out after ${check.timeoutS} s during: ${check.step}` });
  }, check.timeoutS * 1000 + 15_000).unref();
  return check;
}
