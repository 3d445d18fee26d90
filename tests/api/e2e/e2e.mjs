// End-to-end test of tusk api with masto.js, the reference Mastodon client, unchanged: REST
// client and streaming client against "tusk api" + "tusk fanout" (started by run.sh).
//
//   API_URL=http://127.0.0.1:PORT TOKEN_AUTHOR=... TOKEN_READER=... node e2e.mjs
//
// The reader follows the author and lists them; the author posts; the reader must get the
// update over the streaming API within 1 s, find the status on the home and the list
// timeline, page the home timeline with `next`, and get the delete event when it is removed.
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { createRestAPIClient, createStreamingAPIClient } from "masto";
import WebSocket from "ws";

const url = process.env.API_URL;
const tokenAuthor = process.env.TOKEN_AUTHOR;
const tokenReader = process.env.TOKEN_READER;
assert.ok(url && tokenAuthor && tokenReader, "API_URL, TOKEN_AUTHOR and TOKEN_READER are needed");

const log = (...args) => console.log("e2e:", ...args);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// poll fn until it returns a truthy value (fan-out and feed rebuilds are asynchronous)
async function eventually(what, fn, timeoutMs = 10000) {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const author = createRestAPIClient({ url, accessToken: tokenAuthor, timeout: 10000 });
const reader = createRestAPIClient({ url, accessToken: tokenReader, timeout: 10000 });

const instance = await reader.v2.instance.fetch();
const streamingApiUrl = instance.configuration.urls.streaming;
assert.match(streamingApiUrl, /^wss?:\/\//);
log("instance", instance.domain, instance.version, "streaming at", streamingApiUrl);

const me = await author.v1.accounts.verifyCredentials();
const readerAccount = await reader.v1.accounts.verifyCredentials();
log("author", me.acct, me.id, "reader", readerAccount.acct, readerAccount.id);

// follow and list
const relationship = await reader.v1.accounts.$select(me.id).follow();
assert.equal(relationship.following, true);
const [fetched] = await reader.v1.accounts.relationships.fetch({ id: [me.id] });
assert.equal(fetched.id, me.id);
assert.equal(fetched.following, true);
const list = await reader.v1.lists.create({ title: "e2e", repliesPolicy: "list" });
assert.equal(list.title, "e2e");
assert.equal(list.repliesPolicy, "list");
await reader.v1.lists.$select(list.id).accounts.create({ accountIds: [me.id] });
const members = await reader.v1.lists.$select(list.id).accounts.list();
assert.ok(members.some((a) => a.id === me.id), "the author is a list member");

// read both timelines once so their feeds exist (206 while fanout rebuilds them)
await reader.v1.timelines.home.list({ limit: 5 });
await reader.v1.timelines.list.$select(list.id).list({ limit: 5 });

// streaming: the reader's user stream. masto.js connects after a 1 s back-off and sends
// its subscribe message then; Mastodon's protocol has no acknowledgement, so the socket
// class notes when the message went out.
let subscribeSent = 0;
class TracingWebSocket extends WebSocket {
  send(data, ...rest) {
    if (String(data).includes('"subscribe"')) subscribeSent = performance.now();
    return super.send(data, ...rest);
  }
}
const streaming = createStreamingAPIClient({
  streamingApiUrl,
  accessToken: tokenReader,
  implementation: TracingWebSocket,
  retry: 3,
  log: process.env.E2E_DEBUG ? "debug" : "warn",
});
const events = [];
const subscription = streaming.user.subscribe();
const consumer = (async () => {
  try {
    for await (const event of subscription) events.push({ event, at: performance.now() });
  } catch (error) {
    if (!String(error).includes("closed")) log("stream ended:", String(error));
  }
})();
await eventually("the stream subscription", () => subscribeSent > 0, 5000);
await sleep(200); // the server subscribes to Redis and marks subscribed:timeline:<id>

const t0 = performance.now();
const status = await author.v1.statuses.create({ status: "Hello from masto.js, tusk!", visibility: "public" });
assert.equal(status.account.id, me.id);
assert.equal(status.content, "<p>Hello from masto.js, tusk!</p>");
const update = await eventually(
  "the update event",
  () => events.find((e) => e.event.event === "update" && e.event.payload.id === status.id),
  3000,
);
const latency = update.at - t0;
log(`update received ${latency.toFixed(0)} ms after posting`);
assert.ok(latency < 1000, `update took ${latency} ms`);
assert.equal(update.event.payload.content, status.content);

// the home and the list timeline have it
await eventually("the status on the home timeline", async () => {
  const home = await reader.v1.timelines.home.list({ limit: 5 });
  return home.length > 0 && home[0].id === status.id;
});
await eventually("the status on the list timeline", async () => {
  const items = await reader.v1.timelines.list.$select(list.id).list({ limit: 5 });
  return items.some((s) => s.id === status.id);
});
const shown = await reader.v1.statuses.$select(status.id).fetch();
assert.equal(shown.id, status.id);
log("status found on the home and the list timeline");

// paging with `next` (Link headers)
const more = [];
for (let i = 0; i < 4; i++) more.push(await author.v1.statuses.create({ status: `page filler ${i}` }));
// all four, not only the newest: fan-out workers may deliver them out of order
await eventually("the fillers on the home timeline", async () => {
  const home = await reader.v1.timelines.home.list({ limit: 4 });
  return home.map((s) => s.id).join() === [...more].reverse().map((s) => s.id).join();
});
const pages = [];
for await (const page of reader.v1.timelines.home.list({ limit: 2 })) {
  pages.push(page.map((s) => s.id));
  if (pages.length === 3) break;
}
assert.equal(pages.length, 3, "three pages followed with next");
const seen = pages.flat();
assert.equal(new Set(seen).size, seen.length, "pages do not overlap");
for (let i = 1; i < seen.length; i++) assert.ok(BigInt(seen[i - 1]) > BigInt(seen[i]), "newest first");
assert.deepEqual(pages[0], [more[3].id, more[2].id]);
assert.deepEqual(pages[1], [more[1].id, more[0].id]);
assert.equal(pages[2][0], status.id);
log("paged:", JSON.stringify(pages));

// the author's statuses, through masto's account API
const own = await author.v1.accounts.$select(me.id).statuses.list({ limit: 2 });
assert.deepEqual(own.map((s) => s.id), [more[3].id, more[2].id]);

// delete: the source comes back, the stream says so
const t1 = performance.now();
const removed = await author.v1.statuses.$select(status.id).remove();
assert.equal(removed.id, status.id);
assert.equal(removed.text, "Hello from masto.js, tusk!");
const deleted = await eventually(
  "the delete event",
  () => events.find((e) => e.event.event === "delete" && e.event.payload === status.id),
  3000,
);
log(`delete received ${(deleted.at - t1).toFixed(0)} ms after deleting`);
assert.ok(deleted.at - t1 < 1000);
await eventually("the status gone from the home timeline", async () => {
  const home = await reader.v1.timelines.home.list({ limit: 10 });
  return !home.some((s) => s.id === status.id);
});

for (const s of more) await author.v1.statuses.$select(s.id).remove();
await reader.v1.lists.$select(list.id).remove();
streaming.close();
await Promise.race([consumer, sleep(1000)]);
log("ok");
process.exit(0);
