// Browser test of the web client against a running `timesheets serve --dev`.
//
//   API_URL=http://127.0.0.1:18181 node e2e/e2e.mjs
//
// It serves web/dist itself on another 127.0.0.1 port, so the page's origin
// differs from the API's and every call crosses CORS, then drives Debian's
// Chromium (/usr/bin/chromium) through playwright-core. Every wait is
// bounded; the browser, its profile and the static server are always cleaned
// up; any failure exits non-zero naming the step.
//
// With SAME_ORIGIN=1 it opens the copy the server itself embeds and serves
// at API_URL/ instead (no CORS involved), to check that copy works too.
//
// Env: API_URL (required), SCREENSHOT (default web/e2e/screenshot.png),
// CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (whole run, default
// 120000), HEADED=1 to watch.
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { access, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const API_URL = (process.env.API_URL ?? "").replace(/\/+$/, "");
const SCREENSHOT = resolve(process.env.SCREENSHOT ?? join(web, "e2e", "screenshot.png"));
const SAME_ORIGIN = process.env.SAME_ORIGIN === "1";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** Bound on the whole run, so a wedged browser can never hang CI. */
const RUN_TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS ?? 120_000);
/** Bound on each single wait (a click, a row appearing, a call). */
const STEP_TIMEOUT_MS = 15_000;
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
];

const CONTENT_TYPES = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
};

/** Serves exactly the files in web/dist on 127.0.0.1, on a free port. */
async function startStaticServer() {
  const files = new Map();
  for (const name of Object.keys(CONTENT_TYPES)) {
    try {
      files.set(name, await readFile(join(web, "dist", name)));
    } catch {
      if (name !== "app.css") throw new Error(`web/dist/${name} is missing: run \`npm run build\` in web/ first`);
    }
  }
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const name = path === "/" ? "index.html" : path.slice(1);
    const body = files.get(name);
    if (req.method !== "GET" || !body) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": CONTENT_TYPES[name], "cache-control": "no-store" }).end(body);
  });
  await new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", ok);
  });
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

async function fetchToken(persona, ttl) {
  const url = `${API_URL}/dev/token?persona=${persona}${ttl === undefined ? "" : `&ttl=${ttl}`}`;
  const res = await fetch(url, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}; is the server running with --dev?`);
  const body = await res.json();
  if (typeof body.access_token !== "string") throw new Error(`GET ${url} gave no access_token`);
  return body.access_token;
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** Waits until the banner shows text containing `expected`. */
async function expectBanner(page, expected) {
  const banner = page.getByTestId("error-banner");
  await banner.waitFor({ state: "visible" });
  await page.waitForFunction(
    ([el, text]) => el.textContent.toLowerCase().includes(text.toLowerCase()),
    [await banner.elementHandle(), expected],
  ).catch(async () => {
    throw new Error(`banner says ${JSON.stringify(await banner.textContent())}, expected it to contain ${JSON.stringify(expected)}`);
  });
}

async function signIn(page, persona) {
  await page.getByTestId(`signin-${persona}`).click();
  // Wait for this persona's token, not merely any signed-in state: the
  // previous persona's name stays on screen until the new token arrives.
  await page
    .waitForFunction((p) => {
      const who = document.querySelector('[data-testid="who"]');
      const text = who && !who.hidden ? who.textContent : "";
      return text.includes(p) && text.includes("approve:timesheets") === (p === "manager");
    }, persona)
    .catch(async () => {
      const who = await page.getByTestId("who-text").textContent();
      const banner = await page.getByTestId("error-banner").textContent();
      throw new Error(`signing in as ${persona} failed: header says ${JSON.stringify(who)}, banner ${JSON.stringify(banner)}`);
    });
}

async function createEntry(page, { date, project, hours, notes }) {
  await page.getByTestId("tab-employee").click();
  await page.getByTestId("input-date").fill(date);
  await page.getByTestId("input-project").fill(project);
  await page.getByTestId("input-hours").fill(String(hours));
  await page.getByTestId("input-notes").fill(notes);
  await page.getByTestId("create-submit").click();
}

function isoDay(daysAgo) {
  return new Date(Date.now() - daysAgo * 86_400_000).toISOString().slice(0, 10);
}

async function main() {
  if (!API_URL) throw new Error("set API_URL to a running `timesheets serve --dev`, e.g. API_URL=http://127.0.0.1:18181");
  await access(CHROMIUM).catch(() => {
    throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM)`);
  });

  const run = Date.now().toString(36);
  const projectA = `Apollo ${run}`;
  const projectB = `Borealis ${run}`;
  const diagnostics = [];
  let passed = 0;
  let context;
  let profile;
  let staticServer;

  const step = async (name, body) => {
    const started = Date.now();
    try {
      await body();
    } catch (err) {
      err.step = name;
      throw err;
    }
    passed += 1;
    console.log(`ok ${passed} - ${name} (${Date.now() - started} ms)`);
  };

  try {
    let pageUrl;
    if (SAME_ORIGIN) {
      pageUrl = `${API_URL}/`;
      console.log(`# page ${pageUrl}  (the server's embedded copy, same origin)`);
    } else {
      staticServer = await startStaticServer();
      pageUrl = `${staticServer.url}/?api=${encodeURIComponent(API_URL)}`;
      console.log(`# page ${pageUrl}  (API on another origin: CORS)`);
    }

    profile = await mkdtemp(join(tmpdir(), "timesheets-e2e-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: !process.env.HEADED,
      args: CHROMIUM_ARGS,
      viewport: { width: 1100, height: 900 },
      timeout: STEP_TIMEOUT_MS,
    });
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (m) => m.type() === "error" && diagnostics.push(`console: ${m.text()}`));
    page.on("pageerror", (e) => diagnostics.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => diagnostics.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));

    await step(SAME_ORIGIN ? "the server serves the page at /" : "the page loads from its own origin and names the API it talks to", async () => {
      const res = await page.goto(pageUrl, { waitUntil: "load" });
      assert(res?.ok(), `GET ${pageUrl} answered ${res?.status()}`);
      await page.getByTestId("signin-employee").waitFor({ state: "visible" });
      if (SAME_ORIGIN) {
        assert(await page.getByTestId("api-target").isHidden(), "the same-origin page should not name another API");
      } else {
        const target = await page.getByTestId("api-target").textContent();
        assert(target.includes(API_URL), `api-target shows ${JSON.stringify(target)}`);
      }
    });

    await step("an employee signs in with a dev token and creates two timesheets", async () => {
      await signIn(page, "employee");
      await createEntry(page, { date: isoDay(1), project: projectA, hours: 7.5, notes: "Design review" });
      await page.locator(`[data-testid="timesheet-row"][data-project="${projectA}"]`).waitFor();
      await createEntry(page, { date: isoDay(0), project: projectB, hours: 3, notes: "Standup and fixes" });
      await page.locator(`[data-testid="timesheet-row"][data-project="${projectB}"]`).waitFor();
    });

    await step("the employee sees both timesheets in the list, pending", async () => {
      await page.getByTestId("timesheets-refresh").click();
      for (const project of [projectA, projectB]) {
        const row = page.locator(`[data-testid="timesheet-row"][data-project="${project}"]`);
        await row.getByTestId("status-pending").waitFor();
      }
    });

    await step("the employee opening approvals is told the scope they lack", async () => {
      await page.getByTestId("tab-manager").click();
      await expectBanner(page, "You need the approve:timesheets scope");
    });

    await step("a manager approves one, and it leaves the pending list", async () => {
      await signIn(page, "manager");
      await page.getByTestId("tab-manager").click();
      const rowA = page.locator(`[data-testid="approval-row"][data-project="${projectA}"]`);
      const rowB = page.locator(`[data-testid="approval-row"][data-project="${projectB}"]`);
      await rowA.waitFor();
      await rowB.waitFor();
      await rowA.getByTestId("approve-button").click();
      await rowA.waitFor({ state: "detached" });
      await page.getByTestId("approvals-refresh").click();
      await rowB.waitFor();
      assert((await rowA.count()) === 0, `${projectA} is still pending after a refresh`);
    });

    await step("an expired token shows the sign-in-again message", async () => {
      const expired = await fetchToken("employee", -300);
      await page.getByTestId("token-input").fill(expired);
      await page.getByTestId("token-submit").click();
      await expectBanner(page, "sign in again");
      await page.getByTestId("who").waitFor({ state: "hidden" });
    });

    await step("an invalid entry shows the server's message next to the hours field", async () => {
      await signIn(page, "employee");
      await page.locator(`[data-testid="timesheet-row"][data-project="${projectA}"]`).getByTestId("status-approved").waitFor();
      await createEntry(page, { date: isoDay(0), project: `Invalid ${run}`, hours: 30, notes: "too many hours" });
      const hoursError = page.getByTestId("field-error-hours");
      await page.waitForFunction(() => document.querySelector('[data-testid="field-error-hours"]')?.textContent.trim() !== "");
      const text = await hoursError.textContent();
      assert(/24/.test(text), `hours error says ${JSON.stringify(text)}, expected the 24-hour limit`);
      const invalid = await page.getByTestId("input-hours").getAttribute("aria-invalid");
      assert(invalid === "true", `hours input aria-invalid=${invalid}`);
      assert(await page.getByTestId("error-banner").isHidden(), "a validation error should not raise the banner");
      console.log(`# hours field says: ${text}`);
    });

    await step("a screenshot is saved", async () => {
      await mkdir(dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      console.log(`# screenshot ${SCREENSHOT}`);
    });
  } catch (err) {
    console.error(`\nE2E FAILED${err.step ? ` at "${err.step}"` : ""}: ${err.message}`);
    if (diagnostics.length) console.error(diagnostics.slice(-20).map((d) => `  ${d}`).join("\n"));
    if (context && err.step) {
      const failShot = SCREENSHOT.replace(/(\.png)?$/, "-failure.png");
      await context.pages()[0]?.screenshot({ path: failShot, fullPage: true }).then(
        () => console.error(`  failure screenshot: ${failShot}`),
        () => {},
      );
    }
    console.log(`e2e: ${passed} passed, 1 failed`);
    process.exitCode = 1;
  } finally {
    await context?.close().catch((e) => console.error(`closing the browser: ${e.message}`));
    if (profile) await rm(profile, { recursive: true, force: true });
    if (staticServer) {
      staticServer.server.closeAllConnections();
      await new Promise((ok) => staticServer.server.close(ok));
    }
  }
  if (!process.exitCode) console.log(`e2e: ${passed} passed, 0 failed`);
}

const watchdog = setTimeout(() => {
  console.error(`E2E FAILED: the whole run took over ${RUN_TIMEOUT_MS} ms`);
  process.exit(1);
}, RUN_TIMEOUT_MS);
watchdog.unref();
await main();
clearTimeout(watchdog);
