// Opens the Airflow UI in Debian's chromium (playwright-core, no downloaded browser) as a signed-in
// user and reports what the Migrations pages show, as JSON on stdout; screenshots go to the folder
// given. Usage: node look.mjs '{"base": "http://127.0.0.1:PORT", "token": "JWT", "out": "/dir",
// "rehearsal": {"dag_id": "...", "run_id": "..."}}'
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const plan = JSON.parse(process.argv[2]);
const profile = mkdtempSync(join(tmpdir(), "backover-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1600, height: 1000 },
});
const seen = {};
try {
  // The UI's own session cookie, as its login page sets it.
  await context.addCookies([{ name: "_token", value: plan.token, url: plan.base }]);
  const page = context.pages()[0] ?? (await context.newPage());

  // 1. The navigation bar has "Migrations"; clicking it shows the list page in the UI's frame.
  await page.goto(`${plan.base}/`, { waitUntil: "domcontentloaded" });
  const nav = page.getByRole("link", { name: "Migrations" }).first();
  await nav.waitFor({ timeout: 60000 });
  await nav.click();
  await page.waitForURL(/\/plugin\/migrations/, { timeout: 30000 });
  const frameElement = await page.waitForSelector("iframe", { timeout: 30000 });
  const frame = await frameElement.contentFrame();
  await frame.waitForSelector("table.migrations", { timeout: 60000 });
  seen.list_url = page.url();
  seen.frame_src = await frameElement.getAttribute("src");
  seen.rows = await frame.$$eval("tr.migration", (rows) =>
    rows.map((row) => ({
      id: row.querySelector("a.migration-id")?.textContent,
      phase: row.querySelector(".phase")?.textContent,
      health: row.querySelector(".phase")?.getAttribute("data-health"),
      verdict: row.querySelector(".verdict")?.textContent,
    })),
  );
  seen.list_charts = await frame.$$eval("div.chart svg.lag-chart", (charts) =>
    charts.map((svg) => ({
      id: svg.closest("div.chart").getAttribute("data-migration-id"),
      capture: Number(svg.getAttribute("data-capture-points")),
      restore: Number(svg.getAttribute("data-restore-points")),
      drawn: svg.querySelectorAll("circle").length,
    })),
  );
  await page.screenshot({ path: join(plan.out, "migrations.png"), fullPage: true });

  // 2. A migration's own page, by clicking its id in the list (inside the frame).
  await frame.click(`a.migration-id >> text=${plan.detail}`);
  await frame.waitForSelector("h1[data-migration-id]", { timeout: 30000 });
  seen.detail = {
    title: await frame.textContent("h1"),
    phase: await frame.textContent(".phase"),
    chart_points: await frame.$$eval("svg.lag-chart circle", (c) => c.length),
    files: await frame.$$eval("ul a", (links) => links.map((a) => a.textContent)),
  };
  await page.screenshot({ path: join(plan.out, "migration.png"), fullPage: true });

  // 3. The rehearsal run's page in the UI has a "Migration" tab: the rehearsal report, in its frame.
  const run = `${plan.base}/dags/${encodeURIComponent(plan.rehearsal.dag_id)}/runs/${encodeURIComponent(plan.rehearsal.run_id)}`;
  await page.goto(run, { waitUntil: "domcontentloaded" });
  const tab = page.getByRole("tab", { name: "Migration" }).or(page.getByRole("link", { name: "Migration", exact: true }));
  await tab.first().waitFor({ timeout: 60000 });
  await tab.first().click();
  const runFrameElement = await page.waitForSelector("iframe", { timeout: 30000 });
  const runFrame = await runFrameElement.contentFrame();
  await runFrame.waitForSelector("h1[data-migration-id]", { timeout: 30000 });
  seen.rehearsal = {
    tab_url: page.url(),
    url: runFrame.url(),
    title: await runFrame.textContent("h1"),
    verdict: await runFrame.textContent("[data-passed]"),
    phases: await runFrame.$$eval("table.phases tr[data-phase]", (rows) => rows.map((r) => r.getAttribute("data-phase"))),
    timings: await runFrame.$$eval("svg.bar-chart", (s) => s.length),
    lag_points: await runFrame.$$eval("svg.lag-chart circle", (c) => c.length),
  };
  await page.screenshot({ path: join(plan.out, "rehearsal.png"), fullPage: true });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(seen));
