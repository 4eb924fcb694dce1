// Type declarations of tether.js, the browser and Node client of tether.
// The protocol is in docs/protocol.md; the client's guarantees in docs/browser.md.

/** A place in a channel's stream: an epoch of its history and an offset in it. */
export interface Position {
  epoch: string;
  offset: number;
}

/** Who published a publication; absent for the server API. */
export interface ClientInfo {
  client?: string;
  user?: string;
  info?: unknown;
}

/** One message in a channel. */
export interface Publication<T = unknown> {
  channel: string;
  epoch: string;
  offset: number;
  data: T;
  from?: ClientInfo;
}

/** Connection states, in the order a client goes through them. */
export type State = "connecting" | "connected" | "disconnected" | "closed";

/** What a "state" listener receives with the state. */
export interface StateInfo {
  /** The client id the server gave the connection (empty before the first). */
  client?: string;
  /** disconnected, closed: the close code (docs/protocol.md, "Close codes"). */
  code?: number;
  reason?: string;
  /** disconnected, closed: whether the client reconnects. */
  reconnect?: boolean;
}

export interface ClientOptions {
  /**
   * Returns the token sent in `connect`, called before every connection
   * (and before the token's expiry, when the server announces one). Return
   * null or undefined to connect without a token.
   */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>;
  /** The WebSocket class: the ws package in Node 20. Defaults to globalThis.WebSocket. */
  WebSocket?: unknown;
  /**
   * Share one server connection among the tabs of this origin that use the
   * same URL: true (a SharedWorker, else a leader tab), "worker" (the same)
   * or "leader" (a leader tab elected with Web Locks, talking over
   * BroadcastChannel). Ignored where neither works (Node): one connection.
   * Defaults to false.
   */
  shared?: boolean | "worker" | "leader";
  /** Reconnect delays: full jitter in [0, min(maxDelay, minDelay·2^attempt)). Defaults 100 and 10000 ms. */
  minDelay?: number;
  maxDelay?: number;
  /** How long an unanswered ping (sent after the server's ping interval of silence) may wait. Defaults to 10000 ms. */
  pingTimeout?: number;
  /** How long one connection attempt (socket and connect reply) may take. Defaults to 10000 ms. */
  connectTimeout?: number;
}

/** An error with a code: the server's (docs/protocol.md) or the client's own. */
export class TetherError extends Error {
  constructor(code: string, message?: string);
  /**
   * The server's error codes, and the client's own: connection_lost (the
   * connection broke before the reply; the command may or may not have run),
   * closed, already_subscribed, unsubscribed, aborted, token_timeout.
   */
  code: string;
}

export interface RecoveredInfo {
  channel: string;
  /** Where the subscription resumed; nothing before it was missed. */
  position: Position;
}

export interface GapInfo {
  channel: string;
  /** The last position delivered before the gap. */
  previous: Position | null;
  /** The position after the gap: publications after it follow. */
  position: Position;
}

/** One connection present in a channel (docs/protocol.md, presence). */
export interface Member {
  client: string;
  /** Absent for an anonymous connection. */
  user?: string;
  /** What its token says about it. */
  info?: unknown;
  /** When it joined its server's presence, in Unix milliseconds. */
  connected_at: number;
}

/** The presence push of a channel's window: who joined and left, and its counts. */
export interface PresencePush {
  op: string;
  channel: string;
  /** Listed up to the server's cap; joined and left count them all. */
  join?: Member[];
  leave?: Member[];
  joined?: number;
  left?: number;
  occupancy?: PresenceStats;
  [field: string]: unknown;
}

/** A channel's counts: its members and their distinct users. */
export interface PresenceStats {
  clients: number;
  users: number;
}

/** The handlers of a subscription; all optional. They run in order, one at a time. */
export interface SubscriptionHandlers<T = unknown> {
  /** Each publication once, in offset order, across reconnects. */
  publication?(p: Publication<T>): void;
  /** Resubscribed after a reconnect with nothing lost. */
  recovered?(info: RecoveredInfo): void;
  /** The server could not fill a hole: reload the state (history can help), then go on. */
  gap?(info: GapInfo): void;
  /** A member joined the channel (namespaces with join_leave): once per member a presence push lists. */
  join?(m: Member & { channel: string }): void;
  /** A member left the channel (namespaces with join_leave). */
  leave?(m: Member & { channel: string }): void;
  /** The channel's counts changed (namespaces with occupancy). */
  occupancy?(s: PresenceStats & { channel: string }): void;
  /** Each presence push as it is, counts of unlisted joins and leaves included. */
  presence?(p: PresencePush): void;
  /** The server refused to resubscribe after a reconnect: the subscription is over. */
  unsubscribed?(info: { channel: string; error: TetherError }): void;
}

export interface SubscribeResult {
  epoch: string;
  offset: number;
  /** Whether the server keeps history for the channel, so that recovery can work. */
  recoverable: boolean;
}

export interface HistoryResult<T = unknown> {
  epoch: string;
  offset: number;
  publications: Publication<T>[];
}

export class Subscription<T = unknown> {
  readonly client: Client;
  readonly channel: string;
  /** False once unsubscribed, closed, or refused. */
  readonly active: boolean;
  /** Resolves when the server has confirmed the subscription; rejects with its refusal. */
  readonly ready: Promise<SubscribeResult>;
  /** The position of the last publication delivered, or of the subscribe reply; null before it. */
  readonly position: Position | null;
  /** Ends the subscription: no handler runs after it. */
  unsubscribe(): Promise<void>;
}

export class Client {
  /** Connects at once, and reconnects until close(). */
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  readonly state: State;
  /** The server's id of the (shared) connection: what the server API disconnects. */
  readonly clientId: string;
  /** How this tab reaches the server: its own connection, or a shared one through a worker or a leader tab. */
  readonly mode: "direct" | "worker" | "leader" | "follower";
  on(type: "state", fn: (state: State, info: StateInfo) => void): () => void;
  /** Errors thrown by handlers; without a listener they go to console.error. */
  on(type: "error", fn: (err: unknown) => void): () => void;
  off(type: "state" | "error", fn: (...args: any[]) => void): void;
  /** Subscribes to channel; throws TetherError already_subscribed for a channel it has. */
  subscribe<T = unknown>(channel: string, handlers?: SubscriptionHandlers<T>): Subscription<T>;
  /** Publishes data (any JSON value), waiting for a connection when there is none. */
  publish(channel: string, data: unknown, options?: { signal?: AbortSignal }): Promise<Position>;
  /** Up to limit publications after since (oldest first; limit 0 or absent: all kept) and the channel's position. */
  history<T = unknown>(
    channel: string,
    options?: { since?: Position | { offset: number; epoch?: string }; limit?: number; signal?: AbortSignal },
  ): Promise<HistoryResult<T>>;
  /** The channel's members, where its namespace keeps presence (else: permission_denied). */
  presence(channel: string, options?: { signal?: AbortSignal }): Promise<{ members: Member[] }>;
  /** The channel's counts of members and distinct users. */
  presenceStats(channel: string, options?: { signal?: AbortSignal }): Promise<PresenceStats>;
  /** Closes the connection (or leaves the shared one) and ends every subscription. */
  close(): void;
}
