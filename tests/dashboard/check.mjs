// node check.mjs REST_URL SCREENSHOT: opens REST_URL/dashboard in headless Chromium, prints READY once the page
// is live on the websocket, then reads one JSON line on stdin ({"tx_hash", "request_id"}), waits until the page
// shows that tx and that inference request proven with its class (without a reload), prints what the page shows
// as one JSON line, and saves a screenshot.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const WAIT_MS = 120_000;
const errors = [];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
  page.on("pageerror", (error) => errors.push(String(error)));
  page.on("console", (message) => message.type() === "error" && errors.push(message.text()));
  await page.goto(`${url}/dashboard`);
  await page.waitForSelector("body[data-connection=live]", { timeout: WAIT_MS });
  await page.evaluate(() => { window.sameDocument = true; });  // gone if the page reloaded
  console.log("READY");
  const lines = createInterface({ input: process.stdin });
  const expected = JSON.parse(await new Promise((resolve) => lines.once("line", resolve)));
  const tx = page.locator(`#tx-rows tr[data-hash="${expected.tx_hash}"]`);
  await tx.waitFor({ timeout: WAIT_MS });
  const request = page.locator(`#request-rows tr[data-request-id="${expected.request_id}"]`);
  await page.waitForFunction((id) => {
    const row = document.querySelector(`#request-rows tr[data-request-id="${id}"]`);
    return row && row.querySelector(".request-status").textContent === "complete"
      && /^\d+$/.test(row.querySelector(".predicted-class").textContent);
  }, expected.request_id, { timeout: WAIT_MS });
  await page.waitForSelector('[data-work="inference/digits"] .clearing-price', { timeout: WAIT_MS });
  const seen = {
    tx: await tx.innerText(),
    request: await request.innerText(),
    predicted_class: await request.locator(".predicted-class").innerText(),
    clearing_price: await page.locator('[data-work="inference/digits"] .clearing-price').innerText(),
    heat_cells: await page.locator("#heatmap .cell").count(),
    blocks: await page.locator("#block-rows tr").count(),
    height: await page.locator("#height").innerText(),
    same_document: await page.evaluate(() => window.sameDocument === true),
    errors,
  };
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(seen));
} catch (error) {
  console.error(`dashboard check failed: ${error.message} (page errors: ${JSON.stringify(errors)})`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
process.exit();
