// tether.js against a scripted fake server (helpers.js, fake): what a real
// tether server does not do yet (token expiry and refresh),
// or must never do (duplicates, holes), and timing (backoff, watchdog).
import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { Client } from "../tether.js";
import { fake, fast, range, record, sleep, waitFor } from "./helpers.js";

const T = { timeout: 15000 };

function start(t, url, options = {}) {
  const c = new Client(url, { WebSocket, ...fast, ...options });
  c.states = [];
  c.on("state", (s, info) => c.states.push({ s, ...info }));
  t.after(() => c.close());
  return c;
}

// serve returns a fake whose subscribe answers come from results, one per
// connection (the last one repeats), and that answers publish and ping.
async function serve(t, results, extra = () => {}) {
  const f = await fake((cmd, c) => {
    if (cmd.op === "subscribe") c.reply(results[Math.min(c.n, results.length) - 1]);
    else if (cmd.op === "ping") c.reply({});
    return extra(cmd, c);
  });
  t.after(() => f.close());
  return f;
}

const pub = (offset, epoch = "e1", channel = "ch") => ({ op: "pub", channel, epoch, offset, data: { offset } });

for (const tc of [
  { name: "ttl", expiry: () => ({ ttl: 1 }) },
  { name: "expires", expiry: () => ({ expires: Date.now() / 1000 + 1 }) },
]) {
  test(`refresh before expiry (${tc.name}), with a fresh token each time`, T, async (t) => {
    let n = 0;
    const f = await fake((cmd, c) => {
      if (cmd.op === "connect") return void c.reply({ client: "f1", version: 1, ...tc.expiry() }) || true;
      if (cmd.op === "refresh") c.reply(tc.expiry());
    });
    t.after(() => f.close());
    start(t, f.url, { getToken: async () => "token-" + ++n });
    await waitFor(() => f.ops("refresh").length >= 2, 4000, () => JSON.stringify(f.commands));
    assert.equal(f.ops("connect")[0].token, "token-1");
    assert.deepEqual(f.ops("refresh").slice(0, 2).map((c) => c.token), ["token-2", "token-3"]);
    assert.equal(f.conns.length, 1, "refresh keeps the connection");
  });
}

test("a server without refresh (unknown_op): no more refreshes, the connection stays", T, async (t) => {
  const f = await fake((cmd, c) => {
    if (cmd.op === "connect") return void c.reply({ client: "f1", version: 1, ttl: 0.5 }) || true;
    if (cmd.op === "refresh") c.error("unknown_op");
  });
  t.after(() => f.close());
  const c = start(t, f.url, { getToken: () => "static" });
  await waitFor(() => f.ops("refresh").length === 1, 3000);
  await sleep(800);
  assert.equal(f.ops("refresh").length, 1);
  assert.equal(c.state, "connected");
});

test("the token of getToken goes in every connect; a failing getToken is retried", T, async (t) => {
  const f = await serve(t, [{ epoch: "e1", offset: 0 }]);
  let n = 0;
  const c = start(t, f.url, {
    getToken: async () => {
      if (++n === 2) throw new Error("auth server down");
      return "t" + n;
    },
  });
  await waitFor(() => f.conns.length === 1 && c.state === "connected", 3000);
  f.conns[0].close(4003, "go away"); // 4000-4499: reconnect
  await waitFor(() => f.conns.length === 2 && c.state === "connected", 3000);
  assert.deepEqual(f.ops("connect").map((x) => x.token), ["t1", "t3"]);
  assert.ok(c.states.some((x) => x.s === "disconnected" && /auth server down/.test(x.reason)));
});

test("dedupe: repeats and overlaps are dropped, holes and new epochs are gaps, in order", T, async (t) => {
  const f = await serve(t, [
    { epoch: "e1", offset: 0, recoverable: true },
    { epoch: "e1", offset: 5, recoverable: true, recovered: true, publications: [2, 3, 4, 5].map((o) => ({ offset: o, data: { offset: o } })) },
  ]);
  const c = start(t, f.url);
  const r = record();
  await c.subscribe("ch", r.handlers).ready;
  const [one] = f.conns;
  for (const o of [1, 2, 2, 3, 1]) one.push(pub(o));
  await waitFor(() => r.pubs.length === 3, 3000);
  one.push({ op: "disconnect", code: 1001, reason: "restart", reconnect: true });
  one.close(1001);
  await waitFor(() => f.conns.length === 2 && r.recovered.length === 1, 3000);
  assert.deepEqual(f.ops("subscribe")[1].recover, { epoch: "e1", offset: 3 });
  const two = f.conns[1];
  for (const p of [pub(5), pub(6), pub(8), pub(9), pub(1, "e2"), pub(1, "e2")]) two.push(p);
  await waitFor(() => r.pubs.length === 9, 3000, () => r.events.join());
  await sleep(50);
  assert.deepEqual(r.pubs.map((p) => [p.epoch, p.offset]), [...range(1, 6), 8, 9].map((o) => ["e1", o]).concat([["e2", 1]]));
  assert.deepEqual(r.events, ["pub 1", "pub 2", "pub 3", "recovered", "pub 4", "pub 5", "pub 6", "gap", "pub 8", "pub 9", "gap", "pub 1"]);
  assert.deepEqual(r.gaps, [
    { channel: "ch", previous: { epoch: "e1", offset: 6 }, position: { epoch: "e1", offset: 7 } },
    { channel: "ch", previous: { epoch: "e1", offset: 9 }, position: { epoch: "e2", offset: 0 } },
  ]);
});

test("a presence push reaches its subscription: join and leave per member, occupancy, the push itself", T, async (t) => {
  const f = await serve(t, [{ epoch: "e1", offset: 0 }], (cmd, c) => {
    if (cmd.op === "presence") c.reply({ members: [{ client: "c1", user: "ann", connected_at: 1 }] });
    if (cmd.op === "presence_stats") c.reply({ clients: 1, users: 1 });
  });
  const c = start(t, f.url);
  const r = record();
  const whole = [];
  await c.subscribe("ch", { ...r.handlers, occupancy: (s) => r.pushes.push(s), presence: (p) => whole.push(p) }).ready;
  const bob = { client: "c2", user: "bob", connected_at: 2 };
  const ann = { client: "c1", user: "ann", connected_at: 1 };
  const push = { op: "presence", channel: "ch", join: [bob], leave: [ann], joined: 1, left: 1, occupancy: { clients: 1, users: 1 } };
  f.conns[0].push({ ...push, channel: "other" }); // not subscribed: dropped
  f.conns[0].push(push);
  f.conns[0].push({ op: "presence", channel: "ch", joined: 500 }); // past the cap: counts only
  await waitFor(() => whole.length === 2, 3000);
  assert.deepEqual(r.pushes, [
    { ...bob, channel: "ch" },
    { ...ann, channel: "ch" },
    { clients: 1, users: 1, channel: "ch" },
  ]);
  assert.deepEqual(whole, [push, { op: "presence", channel: "ch", joined: 500 }]);
  assert.deepEqual(await c.presence("ch"), { members: [ann] });
  assert.deepEqual(await c.presenceStats("ch"), { clients: 1, users: 1 });
});

test("backoff: attempts spread with full jitter, never a spin", T, async (t) => {
  // Nothing listens on port 1.
  let attempts = 0;
  const Counting = class extends WebSocket {
    constructor(...a) {
      super(...a);
      attempts++;
    }
  };
  const c = start(t, "ws://127.0.0.1:1/ws", { WebSocket: Counting, minDelay: 50, maxDelay: 200 });
  await sleep(1500);
  // Delays are uniform in [0, 50), [0, 100), [0, 200), [0, 200), ...: about 15 attempts in 1.5 s.
  assert.ok(attempts >= 4 && attempts <= 40, `${attempts} attempts in 1.5 s`);
  assert.equal(c.state === "connecting" || c.state === "disconnected", true);
  assert.ok(c.states.every((x) => x.s !== "disconnected" || x.reconnect === true));
});

test("offline: the connection is dropped, nothing is tried until online, then at once", T, async (t) => {
  // A browser's globals, as far as tether.js uses them.
  const events = new EventTarget();
  globalThis.navigator = { onLine: true };
  globalThis.addEventListener = events.addEventListener.bind(events);
  globalThis.removeEventListener = events.removeEventListener.bind(events);
  t.after(() => {
    delete globalThis.navigator;
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  });
  const f = await serve(t, [{ epoch: "e1", offset: 0 }]);
  const c = start(t, f.url, { maxDelay: 5000 });
  await waitFor(() => c.state === "connected", 3000);
  navigator.onLine = false;
  events.dispatchEvent(new Event("offline"));
  await waitFor(() => c.state === "disconnected", 1000);
  await sleep(700);
  assert.equal(f.conns.length, 1, "no attempt while offline");
  navigator.onLine = true;
  const back = Date.now();
  events.dispatchEvent(new Event("online"));
  await waitFor(() => c.state === "connected", 1000);
  assert.ok(Date.now() - back < 500, "reconnects at once when online");
  assert.equal(f.conns.length, 2);
});

test("a tab that becomes visible reconnects at once, and checks a live connection", T, async (t) => {
  const doc = new EventTarget();
  doc.visibilityState = "hidden";
  globalThis.document = doc;
  t.after(() => delete globalThis.document);
  const f = await serve(t, [{ epoch: "e1", offset: 0 }]);
  const c = start(t, f.url, { minDelay: 5000, maxDelay: 5000 }); // no reconnect for seconds by itself
  await waitFor(() => c.state === "connected", 3000);
  f.conns[0].close(4003);
  await waitFor(() => c.state === "disconnected", 1000);
  await sleep(50);
  const back = Date.now();
  doc.visibilityState = "visible";
  doc.dispatchEvent(new Event("visibilitychange"));
  await waitFor(() => c.state === "connected", 1000);
  assert.ok(Date.now() - back < 500, "reconnects when the tab is visible");
  const pings = f.ops("ping").length;
  doc.dispatchEvent(new Event("visibilitychange"));
  await waitFor(() => f.ops("ping").length === pings + 1, 1000); // connected: a ping checks the connection
  assert.equal(c.state, "connected");
});

test("watchdog: a server silent past its ping interval gets a ping, then is dropped", T, async (t) => {
  const f = await fake((cmd, c) => {
    if (cmd.op === "connect") return void c.reply({ client: "f" + c.n, version: 1, ping: 1 }) || true;
    if (cmd.op === "ping" && c.n > 1) c.reply({}); // the first server never answers
  });
  t.after(() => f.close());
  const c = start(t, f.url, { pingTimeout: 300 });
  await waitFor(() => f.conns.length === 2 && c.state === "connected", 4000, () => JSON.stringify(c.states));
  assert.equal(f.ops("ping").filter((x) => x.conn === 1).length, 1);
  assert.match(c.states.find((x) => x.s === "disconnected").reason, /no answer/);
});

test("connect timeout: a server that never answers connect is left and retried", T, async (t) => {
  const f = await fake((cmd, c) => cmd.op === "connect" && c.n === 1); // the first connect gets no answer
  t.after(() => f.close());
  const c = start(t, f.url, { connectTimeout: 200 });
  await waitFor(() => c.state === "connected", 3000);
  assert.equal(f.conns.length, 2);
  assert.match(c.states.find((x) => x.s === "disconnected").reason, /connect timeout/);
});

test("close codes 4500-4999 without a disconnect push mean: do not reconnect", T, async (t) => {
  const f = await serve(t, [{ epoch: "e1", offset: 0 }]);
  const c = start(t, f.url);
  const sub = c.subscribe("ch");
  await sub.ready;
  f.conns[0].close(4501, "unauthorized");
  await waitFor(() => c.state === "closed", 3000);
  await sleep(300);
  assert.equal(f.conns.length, 1);
  assert.equal(sub.active, false);
  assert.deepEqual(c.states.at(-1), { s: "closed", code: 4501, reason: "unauthorized", reconnect: false, client: "f1" });
});

test("a resubscribe the server refuses ends the subscription with unsubscribed", T, async (t) => {
  const f = await fake((cmd, c) => {
    if (cmd.op === "subscribe") c.n === 1 ? c.reply({ epoch: "e1", offset: 0 }) : c.error("permission_denied", "not any more");
  });
  t.after(() => f.close());
  const c = start(t, f.url);
  let ended = null;
  const sub = c.subscribe("ch", { unsubscribed: (i) => (ended = i) });
  await sub.ready;
  f.conns[0].close(4003);
  await waitFor(() => ended !== null, 3000);
  assert.equal(ended.error.code, "permission_denied");
  assert.equal(sub.active, false);
  c.subscribe("ch"); // the channel is free again
});
