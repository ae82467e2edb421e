// Drives Debian's Chromium through the service's staff pages, as a person
// would: signs in through the form (refused first for a submit token and a
// bad one), reads the overview, follows a course and a submission, signs
// out. Prints what each page showed, as JSON, for the Rust test to check.
// Usage: node staff-pages.mjs BASE_URL STAFF_TOKEN SUBMIT_TOKEN
import { createRequire } from 'node:module';
import path from 'node:path';

const [base, staffToken, submitToken] = process.argv.slice(2);
const tools = process.env.AGH_PLAYWRIGHT || '/opt/agh/playwright';
const { chromium } = createRequire(path.join(tools, 'package.json'))('playwright-core');

const browser = await chromium.launch({
  executablePath: process.env.AGH_CHROMIUM || '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const seen = {};
try {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const rows = (selector) =>
    page.$$eval(`${selector} tr`, (trs) => trs.slice(1).map((tr) => [...tr.cells].map((td) => td.textContent.trim())));
  const signIn = async (token) => {
    await page.fill('input[name=token]', token);
    await Promise.all([page.waitForNavigation(), page.click('form[action="/staff/login"] button')]);
  };

  await page.goto(`${base}/staff`);
  seen.unsigned_url = new URL(page.url()).pathname;
  await signIn(submitToken);
  seen.submit_refused = await page.textContent('#refused');
  await signIn('agh_0000');
  seen.unknown_refused = await page.textContent('#refused');
  await signIn(staffToken);
  seen.signed_in_url = new URL(page.url()).pathname;
  const [cookie] = await context.cookies(base + '/staff');
  seen.cookie = cookie && { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite, path: cookie.path };
  seen.courses = await rows('#courses');
  seen.workers = await rows('#workers');
  seen.recent = await rows('#recent');

  await Promise.all([page.waitForNavigation(), page.click('#courses a')]);
  seen.course_url = new URL(page.url()).pathname;
  seen.results = await rows('#results');
  await Promise.all([page.waitForNavigation(), page.click('#results a')]);
  seen.submission = {
    state: await page.textContent('#state'),
    score: await page.textContent('#score'),
    tests: await rows('table.tests'),
  };

  await Promise.all([page.waitForNavigation(), page.click('form[action="/staff/logout"] button')]);
  seen.signed_out_url = new URL(page.url()).pathname;
  await page.goto(`${base}/staff`);
  seen.after_sign_out_url = new URL(page.url()).pathname;
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
