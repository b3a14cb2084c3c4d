// Drives `demotape review serve` in Debian's chromium (playwright-core, no bundled
// browser): open the queue, open an episode, play it, drag a boundary, set the outcome,
// accept and go to the next episode, undo nothing. Prints one JSON object with what it saw
// and the timings. Usage: node review_ui.mjs URL [SCREENSHOT_DIR]
import { chromium } from "playwright-core";

const [url, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
const out = {};
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("dialog", (d) => d.accept("ana")); // the reviewer's name, if the page asks
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  await page.goto(url);
  await page.waitForSelector("#queue tbody tr");
  out.queue_rows = await page.locator("#queue tbody tr").count();
  if (shots) await page.screenshot({ path: `${shots}/review-queue.png` });

  // open the first episode from the keyboard; time until its first frame is on screen
  let t0 = Date.now();
  await page.keyboard.press("Enter");
  await page.waitForSelector("#episode-view:not([hidden])");
  await page.waitForFunction(() => document.getElementById("frame").dataset.shown !== undefined);
  out.open_ms = Date.now() - t0;
  out.episode_1 = await page.textContent("#ep-name");
  out.cameras = await page.locator("#camera option").count();

  // play for about a second
  await page.keyboard.press(" ");
  await page.waitForTimeout(1200);
  await page.keyboard.press(" ");
  out.clock_after_play = parseFloat(await page.textContent("#clock"));
  out.frame_after_play = Number(await page.getAttribute("#frame", "data-shown"));

  // scrubbing: step frame by frame, time until each new frame is shown
  const steps = [];
  for (let k = 0; k < 15; k++) {
    const before = Number(await page.getAttribute("#frame", "data-shown"));
    t0 = Date.now();
    await page.keyboard.press("ArrowRight");
    await page.waitForFunction((b) => Number(document.getElementById("frame").dataset.shown) !== b, before);
    steps.push(Date.now() - t0);
  }
  steps.sort((a, b) => a - b);
  out.scrub_ms_median = steps[steps.length >> 1];
  out.scrub_ms_max = steps[steps.length - 1];

  // drag the second boundary 30 px to the right
  const h = page.locator(".handle").nth(1);
  out.moved = await h.getAttribute("data-key");
  const box = await h.boundingBox();
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + box.width / 2, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 30, y, { steps: 6 });
  await page.mouse.up();
  await page.waitForFunction(() => document.getElementById("revision").textContent.startsWith("1 "));

  // outcome: slip (key 2), or drop (key 3) where it already is slip
  const was = await page.textContent("#outcome");
  out.set_outcome = was === "slip" ? "drop" : "slip";
  await page.keyboard.press(was === "slip" ? "3" : "2");
  await page.waitForFunction(() => document.getElementById("revision").textContent.startsWith("2 "));
  out.outcome = await page.textContent("#outcome");
  out.source = await page.textContent("#source");
  if (shots) await page.screenshot({ path: `${shots}/review-episode.png` });

  // accept, which opens the next episode (or the queue after the last one)
  const first = out.episode_1;
  await page.keyboard.press("a");
  await page.waitForFunction((n) => document.getElementById("ep-name").textContent !== n ||
    !document.getElementById("queue-view").hidden, first);
  out.episode_2 = (await page.isVisible("#episode-view")) ? await page.textContent("#ep-name") : null;

  // on the next episode: set an outcome, then undo it (a new correction restoring it)
  if (out.episode_2) {
    const before = await page.textContent("#outcome");
    await page.keyboard.press(before === "miss" ? "1" : "4"); // success, else miss
    await page.waitForFunction(() => document.getElementById("revision").textContent.startsWith("1 "));
    out.changed_2 = await page.textContent("#outcome");
    await page.keyboard.press("u");
    await page.waitForFunction(() => document.getElementById("revision").textContent.startsWith("2 "));
    out.outcome_2_before = before;
    out.outcome_2_after_undo = await page.textContent("#outcome");
  }

  // back to the queue: the first episode now counts its three corrections
  if (out.episode_2) await page.keyboard.press("Escape");
  await page.waitForSelector("#queue-view:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#queue tbody tr td:nth-child(5)").textContent === "3");
  out.reviewed_first = Number(await page.textContent("#queue tbody tr td:nth-child(5)"));

  // a request outside the directory is refused
  out.escape_status = await page.evaluate(async () =>
    (await fetch("/api/frame?id=" + encodeURIComponent("../../../etc/passwd") + "&topic=x&i=0")).status);
  out.page_errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
