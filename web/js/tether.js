// tether.js: the browser (and Node) client of tether's protocol. One ES module,
// no dependencies, no build step. It gives a page what the Go client gives a Go
// program (docs/recovery.md): reconnect with backoff and full jitter, resubscribe
// with recovery, dedupe by offset, each publication once and in order across
// reconnects, a `gap` event when the server cannot fill a hole. With
// `shared: true` every tab of an origin shares one server connection, through a
// SharedWorker (this same file) or a leader tab. See docs/browser.md.
//
// Layers, each knowing only the next: Client and Subscription (the API of one
// tab) talk in plain messages to a Hub, which holds one Connection (the socket)
// for every tab linked to it: in the same tab, in a SharedWorker, or in the
// leader tab. Every layer tracks positions with a Stream, so a tab never sees a
// publication twice or out of order, whatever happens between the layers.

const defaults = { minDelay: 100, maxDelay: 10000, pingTimeout: 10000, connectTimeout: 10000 };

// The version of the messages between tabs and their hub. It names the
// SharedWorker, the BroadcastChannel and the locks, so that tabs of a newer
// tether.js never talk to a worker or a leader of an older one.
const LINK = "tether/1 ";

/** An error with a code: the server's (docs/protocol.md) or the client's own. */
export class TetherError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = "TetherError";
    this.code = code;
  }
}

const plain = (e) => ({ code: (e && e.code) || "internal", message: String((e && e.message) || e) });
const asError = (e) => (e instanceof TetherError ? e : new TetherError(plain(e).code, plain(e).message));
const lost = () => new TetherError("connection_lost", "the connection broke before the reply");
const closedError = () => new TetherError("closed", "the client is closed");
const newId = () => Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
const browserOffline = () => globalThis.navigator?.onLine === false;

// Stream tracks one subscription's position, drops duplicates and reports gaps
// (docs/recovery.md, "What a client must do"). out receives, in order,
// {pub} and {ev: "recovered"|"gap", info}.
class Stream {
  constructor(channel, out) {
    this.channel = channel;
    this.out = out;
    this.pos = null; // {epoch, offset} of the last publication passed on
  }

  // result applies a subscribe result; rec is the position the subscribe
  // asked to recover from (null: none).
  result(res, rec) {
    const cur = { epoch: res.epoch, offset: res.offset };
    if (!rec || !this.pos) {
      this.pos = cur;
    } else if (res.recovered && res.epoch === this.pos.epoch) {
      this.out({ ev: "recovered", info: { channel: this.channel, position: cur } });
      for (const p of res.publications || []) this.accept({ ...p, channel: this.channel, epoch: p.epoch || res.epoch });
      if (res.offset > this.pos.offset) this.pos = cur;
    } else {
      this.gap(cur);
    }
  }

  gap(position) {
    const previous = this.pos;
    this.pos = { ...position };
    this.out({ ev: "gap", info: { channel: this.channel, previous, position: { ...position } } });
  }

  // upGap applies a gap found upstream, unless this stream is past it already.
  upGap(position) {
    if (this.pos && this.pos.epoch === position.epoch && this.pos.offset >= position.offset) return;
    this.gap(position);
  }

  accept(p) {
    const pos = this.pos;
    if (p.epoch !== pos.epoch) this.gap({ epoch: p.epoch, offset: p.offset - 1 });
    else if (p.offset <= pos.offset) return; // a duplicate
    else if (p.offset > pos.offset + 1) this.gap({ epoch: pos.epoch, offset: p.offset - 1 });
    this.pos = { epoch: p.epoch, offset: p.offset };
    this.out({ pub: p });
  }
}

// Connection is one socket to the server at a time: from connect() on, it
// connects, reconnects with backoff, resubscribes with recovery and runs
// commands. It reports to its hub h: state(state, info), ready(channel, pos,
// recoverable), item(channel, item), failed(channel, error).
class Connection {
  constructor(url, o, h) {
    Object.assign(this, { url, o, h, ws: null, dialing: false, closed: false, state: "", client: "" });
    Object.assign(this, { seq: 0, attempt: 0, every: 0, last: 0, pingAt: 0, advice: null });
    this.pending = new Map(); // command id -> {done(frame), fail(error)}
    this.queue = []; // calls waiting for a connection
    this.subs = new Map(); // channel -> {stream, sent, live, closing, recoverable}
    this.timers = {};
  }

  timer(name, ms, f) {
    clearTimeout(this.timers[name]);
    this.timers[name] = ms == null ? undefined : setTimeout(f, ms);
  }

  setState(state, info = {}) {
    if (state === this.state && state !== "disconnected") return;
    this.state = state;
    this.h.state(state, { ...info, client: this.client });
  }

  async connect() {
    if (this.closed || this.ws || this.dialing) return;
    this.timer("retry");
    this.dialing = true;
    this.setState("connecting");
    let token, ws;
    try {
      token = await this.o.getToken();
      if (this.closed) return;
      ws = new this.o.WebSocket(this.url);
    } catch (e) {
      this.dialing = false;
      if (!this.closed) this.retry({ code: 0, reason: "cannot connect: " + plain(e).message, reconnect: true });
      return;
    }
    this.dialing = false;
    this.ws = ws;
    this.timer("connect", this.o.connectTimeout, () => this.drop(ws, "connect timeout"));
    ws.onopen = () => this.send(ws, { op: "connect", token: token || undefined }, (f) => this.connected(ws, f));
    ws.onmessage = (e) => this.frame(ws, e.data);
    ws.onclose = (e) => this.broke(ws, e.code, e.reason);
    ws.onerror = () => {}; // onclose follows
  }

  connected(ws, f) {
    if (ws !== this.ws || f.error) return; // a refused connect ends in the server's close, or the timeout
    this.timer("connect");
    const r = f.result || {};
    Object.assign(this, { client: r.client || "", attempt: 0, every: (r.ping || 0) * 1000 });
    this.touch();
    if (this.every) this.timer("watch", this.every, () => this.tick());
    this.expiry(r);
    this.setState("connected");
    for (const s of this.subs.values()) if (!s.closing) this.subscribeOn(s);
    const q = this.queue.splice(0);
    for (const c of q) this.run(c);
  }

  // retry reports the disconnection and schedules the next attempt: after a
  // random delay in [0, min(maxDelay, minDelay*2^attempt)), or, while the
  // browser says it is offline, after maxDelay (the `online` event calls wake).
  retry(info) {
    this.setState("disconnected", info);
    const cap = Math.min(this.o.maxDelay, this.o.minDelay * 2 ** Math.min(this.attempt, 30));
    const off = browserOffline();
    const delay = off ? this.o.maxDelay : Math.random() * cap;
    if (!off) this.attempt++;
    this.timer("retry", delay, () => this.connect());
  }

  // wake reconnects now when disconnected, and checks a live connection.
  wake() {
    if (this.closed) return;
    if (!this.ws) return void this.connect();
    if (this.state === "connected") this.ping();
  }

  // offline drops the connection when the browser loses the network: the
  // socket is dead or half-open, and browsers do not close it (Chromium keeps
  // it open, or holds its traffic). The `online` event reconnects.
  offline() {
    if (this.ws) this.drop(this.ws, "the browser went offline");
  }

  touch() {
    this.last = Date.now();
    this.pingAt = 0;
  }

  // tick runs the dead-connection watchdog: past `every` (the server's ping
  // interval) without a frame it sends a ping, and pingTimeout after an
  // unanswered ping it drops the connection.
  tick() {
    const ws = this.ws;
    if (!ws || this.state !== "connected") return;
    const now = Date.now();
    if (this.pingAt) {
      const wait = this.pingAt + this.o.pingTimeout - now;
      if (wait <= 0) return this.drop(ws, "no answer from the server");
      return this.timer("watch", wait, () => this.tick());
    }
    if (!this.every) return;
    const idle = now - this.last;
    if (idle >= this.every) return this.ping();
    this.timer("watch", this.every - idle, () => this.tick());
  }

  ping() {
    if (this.pingAt) return;
    this.pingAt = Date.now();
    this.send(this.ws, { op: "ping" }, () => {});
    this.timer("watch", this.o.pingTimeout, () => this.tick());
  }

  // expiry schedules a token refresh from the expiry a connect or refresh
  // result carries: `expires` (Unix seconds) or `ttl` (seconds from now).
  expiry(r) {
    this.timer("refresh");
    const at = r.expires ? r.expires * 1000 : r.ttl ? Date.now() + r.ttl * 1000 : 0;
    if (!at) return;
    const left = at - Date.now();
    const ws = this.ws;
    this.timer("refresh", Math.max(0, left - Math.min(60000, left / 5)), () => this.refresh(ws, at));
  }

  async refresh(ws, at) {
    const again = () => {
      const left = at - Date.now();
      if (ws === this.ws && left > 1000) this.timer("refresh", Math.min(5000, left / 2), () => this.refresh(ws, at));
    };
    let token;
    try {
      token = await this.o.getToken();
    } catch {
      return again();
    }
    if (ws !== this.ws || token == null) return;
    this.send(ws, { op: "refresh", token }, (f) => {
      if (ws !== this.ws) return;
      if (!f.error) return this.expiry(f.result || {});
      if (f.error.code !== "unknown_op") again(); // unknown_op: a server without expiry
    });
  }

  frame(ws, data) {
    if (ws !== this.ws) return;
    this.touch();
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return; // not JSON (or a binary frame): not for this client
    }
    if (f.id) {
      const p = this.pending.get(f.id);
      this.pending.delete(f.id);
      return p && p.done(f);
    }
    const s = f.channel != null ? this.subs.get(f.channel) : undefined;
    if (f.op === "disconnect") this.advice = f;
    else if (f.op === "ping") this.send(ws, { op: "pong" });
    else if (s && s.live === ws && f.op === "pub") s.stream.accept(f);
    else if (s && s.live === ws && f.op) this.h.item(f.channel, { push: f }); // join, leave, ...
  }

  send(ws, cmd, done, fail) {
    if (done) {
      cmd.id = ++this.seq;
      this.pending.set(cmd.id, { done, fail: fail || (() => {}) });
    }
    try {
      ws.send(JSON.stringify(cmd));
    } catch {
      this.drop(ws, "write failed");
    }
  }

  // drop gives up on ws at once, without waiting for a close handshake.
  drop(ws, reason) {
    try {
      ws.close(1000);
    } catch {
      // closing a socket still connecting can throw; it goes all the same
    }
    this.broke(ws, 1006, reason);
  }

  broke(ws, code, reason) {
    if (ws !== this.ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    this.ws = null;
    for (const t of ["watch", "refresh", "connect"]) this.timer(t);
    const advice = this.advice;
    this.advice = null;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const [channel, s] of this.subs) {
      if (s.closing) this.subs.delete(channel);
      s.sent = s.live = null;
    }
    for (const p of pending) p.fail(lost());
    const info = advice
      ? { code: advice.code, reason: advice.reason, reconnect: !!advice.reconnect }
      : { code, reason: reason || "", reconnect: !(code >= 4500 && code <= 4999) };
    if (this.closed) return;
    if (!info.reconnect) return this.close(info);
    this.retry(info);
  }

  subscribeOn(s) {
    const ws = this.ws;
    s.sent = ws;
    const rec = s.stream.pos ? { ...s.stream.pos } : undefined;
    this.send(ws, { op: "subscribe", channel: s.channel, recover: rec }, (f) => {
      if (s.closing || this.subs.get(s.channel) !== s) {
        if (this.subs.get(s.channel) === s) this.subs.delete(s.channel);
        if (!f.error) this.send(ws, { op: "unsubscribe", channel: s.channel });
        return;
      }
      if (f.error) {
        this.subs.delete(s.channel);
        return this.h.failed(s.channel, f.error);
      }
      s.stream.result(f.result, rec);
      s.live = ws;
      this.h.ready(s.channel, s.stream.pos, !!f.result.recoverable);
    });
  }

  // open makes sure the server subscription to channel exists.
  open(channel) {
    const s = this.subs.get(channel);
    if (s) {
      s.closing = false; // its subscribe reply is still to come
      return;
    }
    const n = { channel, sent: null, live: null, closing: false };
    n.stream = new Stream(channel, (it) => this.h.item(channel, it));
    this.subs.set(channel, n);
    if (this.state === "connected") this.subscribeOn(n);
  }

  // shut ends the server subscription to channel.
  shut(channel) {
    const s = this.subs.get(channel);
    if (!s) return;
    if (s.sent && !s.live) return void (s.closing = true); // the reply undoes it
    this.subs.delete(channel);
    if (s.live && s.live === this.ws) this.send(this.ws, { op: "unsubscribe", channel }, () => {});
  }

  // call runs cmd once connected and resolves with its result.
  call(cmd, signal) {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(closedError());
      const c = { cmd, resolve, reject, signal };
      if (signal) {
        if (signal.aborted) return reject(signal.reason);
        signal.addEventListener("abort", () => {
          this.queue = this.queue.filter((x) => x !== c);
          reject(signal.reason);
        });
      }
      if (this.state === "connected") this.run(c);
      else this.queue.push(c);
    });
  }

  run(c) {
    if (c.signal && c.signal.aborted) return;
    const done = (f) => (f.error ? c.reject(asError(f.error)) : c.resolve(f.result === undefined ? {} : f.result));
    this.send(this.ws, { ...c.cmd }, done, c.reject);
  }

  close(info = { code: 1000, reason: "closed by the client", reconnect: false }) {
    if (this.closed) return;
    this.closed = true;
    for (const t of Object.keys(this.timers)) this.timer(t);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(1000);
      } catch {
        // still connecting
      }
    }
    const err = closedError();
    for (const p of this.pending.values()) p.fail(err);
    for (const c of this.queue) c.reject(err);
    this.pending.clear();
    this.queue = [];
    this.subs.clear();
    this.setState("closed", info);
  }
}

// Hub serves the tabs linked to it (one in direct mode) over one Connection.
// A tab's subscription is a member of the hub's channel; the server sees one
// subscription per channel, whatever the number of tabs. A member that comes
// with a position (a tab that moved to a new leader) catches up through
// history. Tabs are told, in order: state, result, item, fail, reply, token?.
class Hub {
  constructor(url, o, onEmpty) {
    this.tabs = new Map(); // tab id -> {send, token}
    this.chans = new Map(); // channel -> {live, pos, recoverable, members: Map<tab, member>}
    this.waits = new Map(); // token request id -> {resolve, reject}
    this.calls = new Map(); // tab + call id -> AbortController
    this.seq = 0;
    this.onEmpty = onEmpty;
    this.stateMsg = { t: "state", state: "connecting", client: "" };
    this.conn = new Connection(url, { ...o, getToken: () => this.token() }, this);
  }

  attach(tab, send, token) {
    this.tabs.set(tab, { send, token });
    send(this.stateMsg);
    this.conn.connect(); // once a tab can give the token; later: nothing
  }

  detach(tab) {
    if (!this.tabs.delete(tab)) return;
    for (const channel of [...this.chans.keys()]) this.leave(channel, tab);
    if (this.tabs.size === 0) {
      this.conn.close();
      if (this.onEmpty) this.onEmpty();
    }
  }

  to(tab, m) {
    const t = this.tabs.get(tab);
    if (t) t.send(m);
  }

  handle(tab, m) {
    if (!this.tabs.has(tab)) return;
    const key = tab + " " + m.id;
    switch (m.t) {
      case "sub":
        return this.join(m.channel, tab, m.pos);
      case "unsub":
        return this.leave(m.channel, tab);
      case "call": {
        const ac = new AbortController();
        this.calls.set(key, ac);
        const end = (x) => {
          this.calls.delete(key);
          this.to(tab, { t: "reply", id: m.id, ...x });
        };
        return this.conn.call(m.cmd, ac.signal).then((result) => end({ result }), (e) => end({ error: plain(e) }));
      }
      case "abort":
        return this.calls.get(key)?.abort(new TetherError("aborted", "the call was aborted"));
      case "token": {
        const w = this.waits.get(m.id);
        this.waits.delete(m.id);
        if (w) m.error ? w.reject(asError(m.error)) : w.resolve(m.token);
        return;
      }
      case "wake":
        return this.conn.wake();
      case "offline":
        return this.conn.offline();
      case "bye":
        return this.detach(tab);
    }
  }

  // token asks the newest tab with a getToken for a token.
  token() {
    const t = [...this.tabs.values()].reverse().find((x) => x.token);
    if (!t) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const id = ++this.seq;
      const timer = setTimeout(() => {
        this.waits.delete(id);
        reject(new TetherError("token_timeout", "getToken did not answer in 10s"));
      }, 10000);
      const end = (f) => (x) => (clearTimeout(timer), f(x));
      this.waits.set(id, { resolve: end(resolve), reject: end(reject) });
      t.send({ t: "token?", id });
    });
  }

  join(channel, tab, pos) {
    let ch = this.chans.get(channel);
    if (!ch) {
      ch = { live: false, pos: null, recoverable: false, members: new Map() };
      this.chans.set(channel, ch);
      this.conn.open(channel);
    }
    const m = { tab, pos, state: "wait", buf: null };
    const old = ch.members.get(tab);
    if (old) old.state = "gone";
    ch.members.set(tab, m);
    if (ch.live) this.resume(channel, ch, m);
  }

  leave(channel, tab) {
    const ch = this.chans.get(channel);
    const m = ch && ch.members.get(tab);
    if (!m) return;
    m.state = "gone";
    ch.members.delete(tab);
    if (ch.members.size === 0) {
      this.chans.delete(channel);
      this.conn.shut(channel);
    }
  }

  // resume starts member m on live channel ch: at the channel's position, or,
  // when m has a position of its own, with what it missed since (history).
  resume(channel, ch, m) {
    const cur = { ...ch.pos };
    const result = (res) => this.to(m.tab, { t: "result", channel, res: { recoverable: ch.recoverable, ...res } });
    const p = m.pos;
    if (!p || (p.epoch === cur.epoch && p.offset === cur.offset)) {
      m.state = "live";
      return result(p ? { ...cur, recovered: true, publications: [] } : cur);
    }
    m.state = "catch";
    m.buf = [];
    const flush = (res) => {
      if (m.state !== "catch") return;
      result(res);
      for (const item of m.buf) this.to(m.tab, { t: "item", channel, item });
      m.buf = null;
      m.state = "live";
    };
    const fetch = () =>
      this.conn.call({ op: "history", channel, since: p }).then(
        (h) => {
          const pubs = (h.publications || []).map((x) => ({ ...x, channel, epoch: x.epoch || h.epoch }));
          const ok = h.epoch === p.epoch && (pubs.length ? pubs[0].offset === p.offset + 1 : h.offset === p.offset);
          flush({ epoch: h.epoch, offset: h.offset, recovered: ok, publications: ok ? pubs : undefined });
        },
        (e) => {
          if (m.state !== "catch") return;
          if (e.code === "connection_lost") return fetch();
          flush({ ...cur, recovered: false }); // history refused: a gap, then what came live
        },
      );
    fetch();
  }

  // The Connection's reports.
  state(state, info) {
    this.stateMsg = { t: "state", state, ...info };
    if (state !== "connected") for (const ch of this.chans.values()) ch.live = false;
    for (const t of this.tabs.values()) t.send(this.stateMsg);
  }

  ready(channel, pos, recoverable) {
    const ch = this.chans.get(channel);
    if (!ch) return;
    Object.assign(ch, { live: true, pos: { ...pos }, recoverable });
    for (const m of ch.members.values()) if (m.state === "wait") this.resume(channel, ch, m);
  }

  item(channel, item) {
    const ch = this.chans.get(channel);
    if (!ch) return;
    if (item.pub) ch.pos = { epoch: item.pub.epoch, offset: item.pub.offset };
    else if (item.ev === "gap") ch.pos = { ...item.info.position };
    for (const m of ch.members.values()) {
      if (m.state === "live") this.to(m.tab, { t: "item", channel, item });
      else if (m.state === "catch") m.buf.push(item);
    }
  }

  failed(channel, error) {
    const ch = this.chans.get(channel);
    if (!ch) return;
    this.chans.delete(channel);
    for (const m of ch.members.values()) this.to(m.tab, { t: "fail", channel, error: plain(error) });
  }
}

/**
 * Client is a tab's (or a Node program's) connection to a tether server. It
 * connects at once and stays connected until close(); see docs/browser.md.
 */
export class Client {
  constructor(url, options = {}) {
    const o = { ...defaults, ...options };
    for (const k of Object.keys(defaults)) {
      if (!(o[k] > 0)) throw new TypeError(`tether: option ${k} must be a positive number of milliseconds`);
    }
    if (o.getToken != null && typeof o.getToken !== "function") throw new TypeError("tether: getToken must be a function");
    this.url = toWebSocketURL(url);
    this.state = "connecting";
    this.clientId = "";
    this.mode = "direct";
    this._o = o;
    this._tab = newId();
    this._subs = new Map();
    this._calls = new Map();
    this._seq = 0;
    this._on = new Map();
    this._up = false;
    this._closed = false;
    this._hubOpts = { minDelay: o.minDelay, maxDelay: o.maxDelay, pingTimeout: o.pingTimeout, connectTimeout: o.connectTimeout };
    const shared = o.shared && typeof navigator !== "undefined" && navigator.locks;
    if (shared && o.shared !== "leader" && typeof SharedWorker === "function") this._link = workerLink(this);
    if (shared && !this._link && typeof BroadcastChannel === "function") this._link = leaderLink(this);
    if (!this._link) this._link = directLink(this);
    this._wake = () => document.visibilityState === "visible" && this._send({ t: "wake" });
    this._online = () => this._send({ t: "wake" });
    this._offline = () => this._send({ t: "offline" });
    this._listen("addEventListener");
  }

  _listen(how) {
    if (typeof document !== "undefined") document[how]("visibilitychange", this._wake);
    if (typeof globalThis[how] !== "function") return;
    globalThis[how]("online", this._online);
    globalThis[how]("offline", this._offline);
  }

  /** on adds a listener for "state" or "error"; it returns a function that removes it. */
  on(type, fn) {
    if (!this._on.has(type)) this._on.set(type, new Set());
    this._on.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    this._on.get(type)?.delete(fn);
  }

  _emit(type, ...args) {
    for (const fn of [...(this._on.get(type) || [])]) {
      try {
        fn(...args);
      } catch (e) {
        this._report(e);
      }
    }
  }

  _report(e) {
    if (this._on.get("error")?.size) this._emit("error", e);
    else console.error("tether: a handler threw:", e);
  }

  /** subscribe subscribes to channel; handlers receive its publications and events. */
  subscribe(channel, handlers = {}) {
    if (this._closed) throw closedError();
    if (typeof channel !== "string" || channel === "") throw new TypeError("tether: channel must be a non-empty string");
    if (this._subs.has(channel)) throw new TetherError("already_subscribed", `already subscribed to ${channel}`);
    const s = new Subscription(this, channel, handlers);
    this._subs.set(channel, s);
    if (this._up) this._send({ t: "sub", channel, pos: null });
    return s;
  }

  /** publish publishes data (any JSON value) and resolves with its position. */
  publish(channel, data, { signal } = {}) {
    if (data === undefined) return Promise.reject(new TypeError("tether: publish needs data"));
    return this._call({ op: "publish", channel, data }, signal);
  }

  /** history resolves with up to limit publications after since (oldest first) and the channel's position. */
  history(channel, { since, limit, signal } = {}) {
    return this._call({ op: "history", channel, since, limit }, signal).then((h) => ({
      ...h,
      publications: (h.publications || []).map((p) => ({ ...p, channel, epoch: p.epoch || h.epoch })),
    }));
  }

  /** presence resolves with {members}: the channel's members, where its namespace keeps presence. */
  presence(channel, { signal } = {}) {
    return this._call({ op: "presence", channel }, signal);
  }

  /** presenceStats resolves with the channel's counts: {clients, users}. */
  presenceStats(channel, { signal } = {}) {
    return this._call({ op: "presence_stats", channel }, signal);
  }

  /** close closes the connection (or leaves the shared one) and ends every subscription. */
  close() {
    if (this._closed) return;
    this._end({ code: 1000, reason: "closed by the client", reconnect: false });
    this._link.close();
  }

  _end(info) {
    this._closed = true;
    this._listen("removeEventListener");
    const calls = [...this._calls.values()];
    this._calls.clear();
    for (const c of calls) c.reject(closedError());
    const subs = [...this._subs.values()];
    this._subs.clear();
    for (const s of subs) s._end(closedError());
    this.state = "closed";
    this._emit("state", "closed", info);
  }

  _call(cmd, signal) {
    return new Promise((resolve, reject) => {
      if (this._closed) return reject(closedError());
      if (signal && signal.aborted) return reject(signal.reason);
      const id = ++this._seq;
      const c = { cmd, resolve, reject, sent: false };
      this._calls.set(id, c);
      if (signal) {
        signal.addEventListener("abort", () => {
          if (!this._calls.delete(id)) return;
          if (c.sent) this._send({ t: "abort", id });
          reject(signal.reason);
        });
      }
      if (this._up) {
        c.sent = true;
        this._send({ t: "call", id, cmd });
      }
    });
  }

  _send(m) {
    if (!this._closed) this._link.send(m);
  }

  // _relink (re)registers this tab with a hub: at start, and when a new
  // leader tab takes over. Calls the old hub was running are lost.
  _relink(mode) {
    if (this._closed) return;
    this.mode = mode;
    this._up = true;
    this._send({ t: "hello", tab: this._tab, url: this.url, opts: this._hubOpts, token: !!this._o.getToken });
    for (const s of this._subs.values()) {
      s._rec = s._stream.pos ? { ...s._stream.pos } : null;
      this._send({ t: "sub", channel: s.channel, pos: s._rec });
    }
    for (const [id, c] of this._calls) {
      if (c.sent) {
        this._calls.delete(id);
        c.reject(lost());
      } else {
        c.sent = true;
        this._send({ t: "call", id, cmd: c.cmd });
      }
    }
  }

  // _recv takes a message from the hub.
  _recv(m) {
    if (this._closed) return;
    const s = m.channel != null ? this._subs.get(m.channel) : undefined;
    switch (m.t) {
      case "state": {
        this.clientId = m.client || "";
        const { t, state, ...info } = m;
        if (state === "closed") {
          this._end(info); // the server said not to reconnect
          this._link.close();
          return;
        }
        if (state === this.state && state !== "disconnected") return; // each disconnection is news
        this.state = state;
        return this._emit("state", state, info);
      }
      case "result":
        return s && s._result(m.res);
      case "item":
        return s && s._item(m.item);
      case "fail":
        if (!s) return;
        this._subs.delete(m.channel);
        return s._end(asError(m.error));
      case "reply": {
        const c = this._calls.get(m.id);
        if (!c) return;
        this._calls.delete(m.id);
        return m.error ? c.reject(asError(m.error)) : c.resolve(m.result);
      }
      case "token?":
        return Promise.resolve()
          .then(() => this._o.getToken())
          .then(
            (token) => this._send({ t: "token", id: m.id, token }),
            (e) => this._send({ t: "token", id: m.id, error: plain(e) }),
          );
    }
  }
}

/** Subscription is a tab's subscription to one channel; it lasts across reconnects until unsubscribe(). */
export class Subscription {
  constructor(client, channel, handlers) {
    this.client = client;
    this.channel = channel;
    this.active = true;
    this._h = handlers;
    this._rec = null;
    this._stream = new Stream(channel, (it) => this._out(it));
    this.ready = new Promise((resolve, reject) => {
      this._ready = resolve;
      this._notReady = reject;
    });
    this.ready.catch(() => {}); // an unawaited ready that fails is no unhandled rejection
  }

  /** position is {epoch, offset} of the last publication delivered (or of the subscribe reply). */
  get position() {
    return this._stream.pos ? { ...this._stream.pos } : null;
  }

  /** unsubscribe ends the subscription: no handler runs after it. */
  unsubscribe() {
    if (this.active) {
      this._end(null);
      if (this.client._subs.get(this.channel) === this) {
        this.client._subs.delete(this.channel);
        this.client._send({ t: "unsub", channel: this.channel });
      }
    }
    return Promise.resolve();
  }

  _result(res) {
    const first = !this._stream.pos;
    this._stream.result(res, this._rec);
    this._rec = null;
    if (first) this._ready({ epoch: res.epoch, offset: res.offset, recoverable: !!res.recoverable });
  }

  _item(it) {
    if (!this._stream.pos) return;
    if (it.pub) this._stream.accept({ ...it.pub, channel: this.channel });
    else if (it.ev === "gap") this._stream.upGap(it.info.position);
    else if (it.ev === "recovered") this._out(it);
    else if (it.push) this._push(it.push);
  }

  // _push hands a push to the handlers: a presence push as one join or leave
  // call per member it lists, an occupancy call with the counts, and the whole
  // push to presence; any other push to the handler of its op.
  _push(p) {
    if (p.op !== "presence") return this._fire(p.op, p);
    for (const m of p.join || []) this._fire("join", { ...m, channel: this.channel });
    for (const m of p.leave || []) this._fire("leave", { ...m, channel: this.channel });
    if (p.occupancy) this._fire("occupancy", { ...p.occupancy, channel: this.channel });
    this._fire("presence", p);
  }

  _out(it) {
    if (it.pub) {
      const { op, ...p } = it.pub;
      this._fire("publication", p);
    } else {
      this._fire(it.ev, { ...it.info, channel: this.channel });
    }
  }

  _fire(name, arg) {
    const f = this.active && this._h[name];
    if (typeof f !== "function") return;
    try {
      f.call(this._h, arg);
    } catch (e) {
      this.client._report(e);
    }
  }

  _end(err) {
    if (!this.active) return;
    const first = !this._stream.pos;
    if (err && !first && err.code !== "closed") this._fire("unsubscribed", { channel: this.channel, error: err });
    this.active = false;
    if (first) this._notReady(err || new TetherError("unsubscribed", "unsubscribed before the server answered"));
  }
}

function toWebSocketURL(url) {
  if (typeof location === "undefined") return String(url);
  const u = new URL(url, location.href);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  return u.href;
}

// holdLock takes the Web Lock name for as long as the page lives, or until
// the function it resolves with is called.
function holdLock(name) {
  return new Promise((held) => {
    navigator.locks.request(name, () => new Promise((release) => held(release)));
  });
}

// watchTab calls gone when the tab holding the lock of tab id is gone.
function watchTab(tab, gone) {
  navigator.locks.request(LINK + "tab " + tab, () => gone());
}

// Links carry messages between a tab's Client and its hub: send(m) to the hub,
// close() to leave it. A link calls client._relink when it reaches a hub, and
// client._recv with the hub's messages.

function directLink(c) {
  const WS = c._o.WebSocket || globalThis.WebSocket;
  if (typeof WS !== "function") throw new TypeError("tether: no WebSocket here: pass options.WebSocket (in Node: the ws package)");
  const hub = new Hub(c.url, { ...c._hubOpts, WebSocket: WS });
  const tab = c._tab;
  const link = {
    send: (m) => queueMicrotask(() => (m.t === "hello" ? hub.attach(tab, (x) => queueMicrotask(() => c._recv(x)), m.token) : hub.handle(tab, m))),
    close: () => hub.detach(tab),
  };
  queueMicrotask(() => c._relink("direct"));
  return link;
}

function workerLink(c) {
  let w;
  try {
    w = new SharedWorker(import.meta.url, { type: "module", name: LINK + c.url });
  } catch {
    return null; // tether.js from another origin, say: a leader tab does it
  }
  const port = w.port;
  let release = null;
  let failed = false;
  port.onmessage = (e) => c._recv(e.data);
  w.onerror = () => {
    // The worker could not start: fall back to a leader tab.
    if (failed || c._closed) return;
    failed = true;
    if (release) release();
    c._link = leaderLink(c);
  };
  holdLock(LINK + "tab " + c._tab).then((r) => {
    release = r;
    if (!failed && !c._closed) c._relink("worker");
  });
  return {
    send: (m) => port.postMessage(m),
    close: () => {
      port.postMessage({ t: "bye" });
      port.close();
      if (release) release();
    },
  };
}

function leaderLink(c) {
  const tab = c._tab;
  const bc = new BroadcastChannel(LINK + c.url);
  let leader = "";
  let hub = null;
  let resign = null;
  let release = null;
  const local = (m) => queueMicrotask(() => c._recv(m));
  const deliver = (from, m) => {
    if (m.t !== "hello") return hub.handle(from, m);
    hub.attach(from, from === tab ? local : (x) => bc.postMessage({ ...x, to: from }), m.token);
    if (from !== tab) watchTab(from, () => hub && hub.detach(from));
  };
  const receive = ({ data: m }) => {
    if (m.to === "hub") return void (hub && m.leader === tab && deliver(m.from, m));
    if (m.t === "who") return void (hub && bc.postMessage({ t: "leader", from: tab }));
    if (m.t === "leader") {
      if (!hub && m.from !== leader) {
        leader = m.from;
        c._relink("follower");
      }
      return;
    }
    if (m.to === tab) c._recv(m);
  };
  holdLock(LINK + "tab " + tab).then((r) => {
    release = r;
    if (c._closed) return release();
    bc.onmessage = receive; // only now: the leader's watchTab must find the lock held
    navigator.locks.request(LINK + "leader " + c.url, () => {
      if (c._closed) return;
      hub = new Hub(c.url, { ...c._hubOpts, WebSocket: globalThis.WebSocket });
      leader = tab;
      bc.postMessage({ t: "leader", from: tab });
      c._relink("leader");
      return new Promise((r2) => (resign = r2));
    });
    bc.postMessage({ t: "who" });
  });
  return {
    send: (m) => {
      if (hub) queueMicrotask(() => hub && deliver(tab, m));
      else if (leader) bc.postMessage({ ...m, to: "hub", from: tab, leader });
    },
    close: () => {
      if (hub) {
        const h = hub;
        hub = null;
        for (const [t, x] of h.tabs) if (t !== tab) x.send({ t: "state", state: "connecting", client: "" });
        for (const t of [...h.tabs.keys()]) h.detach(t);
        h.conn.close();
      } else if (leader) {
        bc.postMessage({ t: "bye", to: "hub", from: tab, leader });
      }
      bc.close();
      if (resign) resign();
      if (release) release();
    },
  };
}

// In a SharedWorker started by workerLink, this module is the hub of every tab
// of the origin that connects to the same URL.
if (typeof SharedWorkerGlobalScope === "function" && globalThis instanceof SharedWorkerGlobalScope) {
  let hub = null;
  globalThis.onconnect = (e) => {
    const port = e.ports[0];
    let tab = "";
    port.onmessage = ({ data: m }) => {
      if (m.t !== "hello") return void (hub && tab && hub.handle(tab, m));
      tab = m.tab;
      if (!hub) {
        const h = new Hub(m.url, { ...m.opts, WebSocket: globalThis.WebSocket }, () => hub === h && (hub = null));
        hub = h;
      }
      const h = hub;
      h.attach(tab, (x) => port.postMessage(x), m.token);
      watchTab(tab, () => h.detach(tab));
    };
  };
}
