// Command baseline is the reference server tether's benchmarks are measured
// against: the classic hub of gorilla/websocket's chat example (a clients map,
// a broadcast channel, one goroutine running the hub, a read pump and a write
// pump goroutine per client), with rooms: a client joins the room its URL's
// room parameter names (/ws?room=lobby) and what it sends is broadcast to its
// room, as the example broadcasts what a client sends. POST /publish broadcasts
// the request body to every client, or with ?room= to that room's. It has an
// echo endpoint and the same /metrics process figures as tether (Prometheus
// process and Go collectors on a registry of its own).
//
// It is a benchmark fixture, not a product: no auth, no limits beyond the
// example's, loopback only.
//
//	go run ./bench/baseline -addr 127.0.0.1:8090
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The example's settings.
const (
	writeWait      = 10 * time.Second
	pongWait       = 60 * time.Second
	pingPeriod     = (pongWait * 9) / 10
	maxMessageSize = 64 << 10
	sendBuffer     = 256
)

// client is a middleman between the websocket connection and the hub.
type client struct {
	hub  *hub
	conn *websocket.Conn
	room string
	send chan []byte
}

// message is a broadcast: to every client of room, or to every client when
// all is set.
type message struct {
	room string
	all  bool
	data []byte
}

// hub maintains the set of active clients, by room, and broadcasts messages
// to them.
type hub struct {
	clients    map[*client]bool
	rooms      map[string]map[*client]bool
	broadcast  chan message
	register   chan *client
	unregister chan *client
}

func newHub() *hub {
	return &hub{
		broadcast:  make(chan message),
		register:   make(chan *client),
		unregister: make(chan *client),
		clients:    make(map[*client]bool),
		rooms:      make(map[string]map[*client]bool),
	}
}

// remove drops c from the hub and closes its send channel.
func (h *hub) remove(c *client) {
	delete(h.clients, c)
	if room := h.rooms[c.room]; room != nil {
		delete(room, c)
		if len(room) == 0 {
			delete(h.rooms, c.room)
		}
	}
	close(c.send)
}

func (h *hub) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-h.register:
			h.clients[c] = true
			room := h.rooms[c.room]
			if room == nil {
				room = make(map[*client]bool)
				h.rooms[c.room] = room
			}
			room[c] = true
		case c := <-h.unregister:
			if _, ok := h.clients[c]; ok {
				h.remove(c)
			}
		case m := <-h.broadcast:
			to := h.clients
			if !m.all {
				to = h.rooms[m.room]
			}
			for c := range to {
				select {
				case c.send <- m.data:
				default:
					h.remove(c)
				}
			}
		}
	}
}

// readPump pumps messages from the connection to the hub, which broadcasts
// each to the client's room, and notices when the connection closes.
func (c *client) readPump() {
	defer func() {
		c.hub.unregister <- c
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessageSize)
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
		c.hub.broadcast <- message{room: c.room, data: bytes.TrimSpace(msg)}
	}
}

// writePump pumps messages from the hub to the connection, adding the queued
// ones to the current message separated by newlines, as the example does.
func (c *client) writePump() {
	ticker := time.NewTicker(pingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case message, ok := <-c.send:
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if !ok {
				_ = c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			w, err := c.conn.NextWriter(websocket.TextMessage)
			if err != nil {
				return
			}
			_, _ = w.Write(message)
			n := len(c.send)
			for range n {
				_, _ = w.Write([]byte{'\n'})
				_, _ = w.Write(<-c.send)
			}
			if err := w.Close(); err != nil {
				return
			}
		case <-ticker.C:
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// newUpgrader returns the example's upgrader.
func newUpgrader() *websocket.Upgrader {
	return &websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
}

func serveWS(h *hub, up *websocket.Upgrader, w http.ResponseWriter, r *http.Request) {
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &client{hub: h, conn: conn, room: r.URL.Query().Get("room"), send: make(chan []byte, sendBuffer)}
	h.register <- c
	go c.writePump()
	go c.readPump()
}

// serveEcho echoes every message back with its type.
func serveEcho(up *websocket.Upgrader, w http.ResponseWriter, r *http.Request) {
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetReadLimit(maxMessageSize)
	for {
		mt, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if err := conn.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

func servePublish(h *hub, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMessageSize))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	h.broadcast <- message{room: q.Get("room"), all: !q.Has("room"), data: bytes.TrimSpace(body)}
	_, _ = w.Write([]byte("{}\n"))
}

// routes returns the baseline's endpoints, with metrics on a registry of their own.
func routes(h *hub) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	up := newUpgrader()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) { serveWS(h, up, w, r) })
	mux.HandleFunc("GET /ws/echo", func(w http.ResponseWriter, r *http.Request) { serveEcho(up, w, r) })
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) { servePublish(h, w, r) })
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return mux
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on (loopback only)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if host, _, err := net.SplitHostPort(*addr); err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(os.Stderr, "baseline: -addr %q must be a loopback host:port\n", *addr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	h := newHub()
	go h.run(ctx)
	srv := &http.Server{Addr: *addr, Handler: routes(h), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("baseline hub listening", "addr", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
}
