// Helpers of tether.js's tests: the servers the Go test started, a WebSocket
// whose network can be cut, a scripted fake server, and bounded waits.
import { WebSocket, WebSocketServer } from "ws";

export const env = {
  ws: process.env.TETHER_WS,
  http: process.env.TETHER_HTTP,
  shortWS: process.env.TETHER_SHORT_WS,
  shortHTTP: process.env.TETHER_SHORT_HTTP,
  control: process.env.TETHER_CONTROL,
};

/** Set when the Go test (TestJSClient) started servers for these tests. */
export const haveServer = !!(env.ws && env.http && env.shortWS && env.shortHTTP && env.control);

/** Fast reconnects for tests. */
export const fast = { minDelay: 20, maxDelay: 200, connectTimeout: 2000 };

/** post calls the server API (or the control endpoint) and returns the JSON answer. */
export async function post(base, path, body) {
  const r = await fetch(base + path, { method: "POST", body: JSON.stringify(body ?? {}) });
  const text = await r.text();
  if (!r.ok) throw new Error(`POST ${path}: ${r.status} ${text}`);
  return text.startsWith("{") ? JSON.parse(text) : text;
}

export const publish = (base, channel, data) => post(base, "/api/publish", { channel, data });

/** waitFor polls cond until it is true, failing after ms with what() in the message. */
export async function waitFor(cond, ms, what = () => "") {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`waited ${ms}ms in vain: ${what()}`);
    await sleep(10);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * network returns a WebSocket class whose connections can be cut (the socket
 * destroyed on the client's side, as when a network goes away) and whose new
 * connections fail while cut.
 */
export function network() {
  const n = { down: false, opened: 0, sockets: new Set() };
  n.WebSocket = class extends WebSocket {
    constructor(url, ...rest) {
      super(n.down ? url.replace(/\/\/[^/]+/, "//127.0.0.1:1") : url, ...rest); // port 1: refused
      n.opened++;
      n.sockets.add(this);
      this.on("close", () => n.sockets.delete(this));
    }
  };
  n.cut = () => {
    n.down = true;
    for (const s of n.sockets) s.terminate();
  };
  n.restore = () => {
    n.down = false;
  };
  return n;
}

/** record subscribes handlers that keep everything a subscription reports. */
export function record() {
  const r = { pubs: [], events: [], recovered: [], gaps: [], pushes: [] };
  r.handlers = {
    publication: (p) => (r.pubs.push(p), r.events.push("pub " + p.offset)),
    recovered: (i) => (r.recovered.push(i), r.events.push("recovered")),
    gap: (i) => (r.gaps.push(i), r.events.push("gap")),
    join: (m) => r.pushes.push(m),
    leave: (m) => r.pushes.push(m),
  };
  r.offsets = () => r.pubs.map((p) => p.offset);
  return r;
}

export const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * fake starts a scripted tether server on loopback. script(cmd, conn) runs for
 * each command; conn.reply(result) / conn.error(code) answer it, conn.push(m)
 * pushes, conn.close(code) closes. A connect the script does not answer
 * (returns other than true) gets {client: "f<n>"}. Commands are kept in
 * fake.commands, with the number of their connection.
 */
export async function fake(script) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => wss.once("listening", r));
  const f = { commands: [], conns: [], url: `ws://127.0.0.1:${wss.address().port}/ws` };
  wss.on("connection", (ws) => {
    const conn = { n: f.conns.length + 1, ws, push: (m) => ws.send(JSON.stringify(m)), close: (code, reason) => ws.close(code, reason) };
    f.conns.push(conn);
    ws.on("message", (data) => {
      const cmd = JSON.parse(String(data));
      f.commands.push({ conn: conn.n, ...cmd });
      const c = {
        ...conn,
        reply: (result) => conn.push({ id: cmd.id, result }),
        error: (code, message = code) => conn.push({ id: cmd.id, error: { code, message } }),
      };
      if (script(cmd, c) !== true && cmd.op === "connect") c.reply({ client: "f" + conn.n, version: 1 });
    });
  });
  f.ops = (op) => f.commands.filter((c) => c.op === op);
  f.close = () => {
    for (const c of wss.clients) c.terminate();
    return new Promise((r) => wss.close(r));
  };
  return f;
}
