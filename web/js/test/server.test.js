// tether.js against real tether servers, started by the Go test TestJSClient
// (see helpers.js for what it provides). Skipped when run without them.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { Client, TetherError } from "../tether.js";
import { env, fast, haveServer, network, post, publish, range, record, sleep, waitFor } from "./helpers.js";

const T = { timeout: 20000 };

// client returns a connected client that the test closes when it ends.
async function client(t, url = env.ws, options = {}) {
  const states = [];
  const c = new Client(url, { WebSocket, ...fast, ...options });
  c.on("state", (s, info) => states.push({ s, ...info }));
  t.after(() => c.close());
  c.states = states;
  await waitFor(() => c.state === "connected", 5000, () => JSON.stringify(states));
  return c;
}

describe("against a tether server", { concurrency: 1, skip: !haveServer && "no server: run through `go test -run TestJSClient`" }, () => {
  test("subscribes, publishes, receives its own publication, reads history, closes", T, async (t) => {
    const c = await client(t);
    assert.deepEqual(c.states.map((x) => x.s), ["connected"]); // it starts "connecting"
    assert.match(c.clientId, /./);
    const r = record();
    const sub = c.subscribe("js:basic", r.handlers);
    const ready = await sub.ready;
    assert.equal(ready.offset, 0);
    assert.equal(ready.recoverable, true);
    const pos = await c.publish("js:basic", { text: "hi" });
    assert.deepEqual(pos, { epoch: ready.epoch, offset: 1 });
    await waitFor(() => r.pubs.length === 1, 5000);
    assert.deepEqual(r.pubs[0], { channel: "js:basic", epoch: ready.epoch, offset: 1, data: { text: "hi" }, from: { client: c.clientId } });
    const h = await c.history("js:basic", { limit: 10 });
    assert.equal(h.offset, 1);
    assert.deepEqual(h.publications.map((p) => [p.channel, p.offset, p.data.text]), [["js:basic", 1, "hi"]]);
    assert.throws(() => c.subscribe("js:basic"), (e) => e instanceof TetherError && e.code === "already_subscribed");
    c.close();
    assert.equal(c.state, "closed");
    await assert.rejects(c.publish("js:basic", 1), (e) => e.code === "closed");
    assert.deepEqual(c.states.at(-1), { s: "closed", code: 1000, reason: "closed by the client", reconnect: false });
    assert.equal(c.states.filter((x) => x.s === "closed").length, 1);
  });

  test("a refused subscription rejects ready; presence is off on this server", T, async (t) => {
    const c = await client(t);
    const bad = c.subscribe("bad channel");
    await assert.rejects(bad.ready, (e) => e instanceof TetherError && e.code === "invalid_channel");
    assert.equal(bad.active, false);
    await assert.rejects(c.presence("js:presence"), (e) => e.code === "permission_denied");
    const ok = c.subscribe("bad channel"); // the refused one is gone
    await assert.rejects(ok.ready, (e) => e.code === "invalid_channel");
    assert.equal(c.state, "connected"); // an error reply never closes the connection
  });

  test("recovers what it missed while its network was down: once each, in order", T, async (t) => {
    const net = network();
    let tokens = 0;
    const c = await client(t, env.ws, { WebSocket: net.WebSocket, getToken: async () => "token-" + ++tokens });
    const r = record();
    const sub = c.subscribe("js:recover", r.handlers);
    await sub.ready;
    for (const i of range(1, 5)) await publish(env.http, "js:recover", { i });
    await waitFor(() => r.pubs.length === 5, 5000);
    const first = c.clientId;
    net.cut();
    await waitFor(() => c.state !== "connected", 5000);
    for (const i of range(6, 30)) await publish(env.http, "js:recover", { i });
    await sleep(100); // a few failed attempts while the network is down
    net.restore();
    await waitFor(() => r.pubs.length >= 30 && c.state === "connected", 5000, () => r.offsets().join());
    await sleep(50);
    assert.deepEqual(r.offsets(), range(1, 30));
    assert.deepEqual(r.pubs.map((p) => p.data.i), range(1, 30));
    assert.equal(r.gaps.length, 0);
    assert.equal(r.recovered.length, 1);
    assert.equal(r.events.indexOf("recovered"), 5, "recovered comes before the publications it recovered");
    assert.deepEqual(r.recovered[0].position, { epoch: r.pubs[0].epoch, offset: 30 });
    assert.notEqual(c.clientId, first);
    assert.equal(tokens, net.opened, "getToken is called before every connection attempt");
    assert.ok(c.states.some((x) => x.s === "disconnected" && x.reconnect === true));
  });

  test("server-side drops while publications flow lose and repeat nothing", T, async (t) => {
    const total = 300;
    const clients = [];
    for (let i = 0; i < 3; i++) {
      const c = await client(t);
      const r = record();
      await c.subscribe("js:chaos", r.handlers).ready;
      clients.push({ c, r });
    }
    const drops = (async () => {
      // Alternately: the server API's disconnect, and a reset without a close frame.
      for (let k = 0; k < 12; k++) {
        await sleep(40);
        if (k % 2) await post(env.control, "/abort");
        else for (const { c } of clients) if (c.clientId) await post(env.http, "/api/disconnect", { client: c.clientId, reconnect: true }).catch(() => {});
      }
    })();
    for (const i of range(1, total)) {
      await publish(env.http, "js:chaos", { i });
      if (i % 20 === 0) await sleep(15);
    }
    await drops;
    for (const { c, r } of clients) {
      await waitFor(() => r.pubs.length >= total, 10000, () => `${c.clientId}: ${r.pubs.length} of ${total}`);
      assert.deepEqual(r.offsets(), range(1, total));
      assert.equal(r.gaps.length, 0);
      assert.ok(r.recovered.length >= 1, "it reconnected and recovered");
    }
  });

  test("a gap when the server's history cannot cover the time away", T, async (t) => {
    const net = network();
    const c = await client(t, env.shortWS, { WebSocket: net.WebSocket }); // history: 3
    const r = record();
    const ready = await c.subscribe("js:gap", r.handlers).ready;
    for (const i of range(1, 2)) await publish(env.shortHTTP, "js:gap", { i });
    await waitFor(() => r.pubs.length === 2, 5000);
    net.cut();
    await waitFor(() => c.state !== "connected", 5000);
    for (const i of range(3, 12)) await publish(env.shortHTTP, "js:gap", { i });
    net.restore();
    await waitFor(() => r.gaps.length === 1 && c.state === "connected", 5000, () => JSON.stringify(r.events));
    await publish(env.shortHTTP, "js:gap", { i: 13 });
    await waitFor(() => r.pubs.length === 3, 5000);
    assert.deepEqual(r.offsets(), [1, 2, 13]);
    assert.deepEqual(r.gaps[0], { channel: "js:gap", previous: { epoch: ready.epoch, offset: 2 }, position: { epoch: ready.epoch, offset: 12 } });
    assert.deepEqual(r.events, ["pub 1", "pub 2", "gap", "pub 13"]);
    const h = await c.history("js:gap"); // what the application can reload
    assert.deepEqual(h.publications.map((p) => p.offset), [11, 12, 13]);
  });

  test("publish waits for a connection; an aborted one is never sent", T, async (t) => {
    const net = network();
    const c = await client(t, env.ws, { WebSocket: net.WebSocket });
    net.cut();
    await waitFor(() => c.state !== "connected", 5000);
    const aborted = c.publish("js:wait", { n: "aborted" }, { signal: AbortSignal.timeout(50) });
    const waiting = c.publish("js:wait", { n: "sent" });
    await assert.rejects(aborted, (e) => e.name === "TimeoutError");
    net.restore();
    const pos = await waiting;
    const h = await c.history("js:wait");
    assert.deepEqual(h.publications.map((p) => p.data.n), ["sent"]);
    assert.equal(pos.offset, 1);
  });

  test("a disconnect without reconnect closes the client for good", T, async (t) => {
    const c = await client(t);
    const sub = c.subscribe("js:kick");
    await sub.ready;
    await post(env.http, "/api/disconnect", { client: c.clientId, reconnect: false });
    await waitFor(() => c.state === "closed", 5000);
    const { client: _, ...last } = c.states.at(-1);
    assert.deepEqual(last, { s: "closed", code: 4500, reason: "disconnected by server", reconnect: false });
    assert.equal(sub.active, false);
    await assert.rejects(c.publish("js:kick", 1), (e) => e.code === "closed");
  });

  // Last: it restarts the first server.
  test("a gap with the new epoch when the server restarts and its history is gone", T, async (t) => {
    const c = await client(t);
    const r = record();
    const ready = await c.subscribe("js:restart", r.handlers).ready;
    await publish(env.http, "js:restart", { i: 1 });
    await waitFor(() => r.pubs.length === 1, 5000);
    await post(env.control, "/restart");
    await waitFor(() => r.gaps.length === 1 && c.state === "connected", 10000, () => JSON.stringify(c.states));
    const pos = await c.publish("js:restart", { i: 2 });
    await waitFor(() => r.pubs.length === 2, 5000);
    assert.notEqual(pos.epoch, ready.epoch);
    assert.deepEqual(r.gaps[0].previous, { epoch: ready.epoch, offset: 1 });
    assert.equal(r.gaps[0].position.epoch, pos.epoch);
    assert.deepEqual(r.pubs.map((p) => [p.epoch, p.offset]), [[ready.epoch, 1], [pos.epoch, 1]]);
  });
});
