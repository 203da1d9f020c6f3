import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type BrowserContext, chromium, type Page } from "playwright-core";

/** Debian's Chromium (`apt-get install chromium`; .ci/run installs it). */
export const CHROMIUM_PATH = "/usr/bin/chromium";

// No background traffic of the browser's own, so every request seen is the page's.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** A local HTML file opened in a real headless Chromium, with what the page asked for and said. */
export interface OpenedPage {
  page: Page;
  /** Every request the page made, the document's own included. */
  requests: string[];
  /** Requests other than the document itself: answered with an abort. */
  blocked: string[];
  /** Console errors and uncaught exceptions. */
  errors: string[];
  close(): Promise<void>;
}

/** Opens `path` in a fresh Chromium profile; any request but the file itself is recorded and aborted. */
export async function openFileInChromium(path: string): Promise<OpenedPage> {
  const profile = await mkdtemp(join(tmpdir(), "memscore-chromium-"));
  let context: BrowserContext | undefined;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: FLAGS,
      viewport: { width: 1200, height: 900 },
    });
    const url = pathToFileURL(path).href;
    const requests: string[] = [];
    const blocked: string[] = [];
    const errors: string[] = [];
    await context.route("**/*", async (route) => {
      if (route.request().url() === url) return route.continue();
      blocked.push(route.request().url());
      return route.abort();
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("request", (request) => requests.push(request.url()));
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text());
    });
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(url, { waitUntil: "load" });
    const opened = context;
    return {
      page,
      requests,
      blocked,
      errors,
      close: async () => {
        await opened.close();
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await context?.close();
    await rm(profile, { recursive: true, force: true });
    throw error;
  }
}
