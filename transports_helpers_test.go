package tether_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tetherhq/tether"
	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// wire is one transport's way to move protocol messages: JSON objects.
type wire interface {
	write(b []byte) error
	// readMsg returns the next message, or an error after d.
	readMsg(d time.Duration) ([]byte, error)
	close()
}

// pconn is a protocol client over any transport.
type pconn struct {
	t    testing.TB
	name string
	w    wire
	next uint64
	// pings makes read return the server's pings. Without it they are
	// skipped: a connection's ping point falls anywhere in the ping
	// interval, so any test may see one.
	pings bool
}

func (c *pconn) send(cmd protocol.Command) uint64 {
	c.t.Helper()
	c.next++
	cmd.ID = c.next
	b, _ := json.Marshal(cmd)
	if err := c.w.write(b); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
	return cmd.ID
}

func (c *pconn) read() message {
	c.t.Helper()
	m, err := c.tryRead(5 * time.Second)
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.name, err)
	}
	return m
}

func (c *pconn) tryRead(d time.Duration) (message, error) {
	deadline := time.Now().Add(d)
	for {
		b, err := c.w.readMsg(time.Until(deadline))
		if err != nil {
			return message{}, err
		}
		var m message
		if err := json.Unmarshal(b, &m); err != nil {
			return m, errors.Join(errors.New(string(b)), err)
		}
		if !c.pings && isPing(m) {
			continue
		}
		return m, nil
	}
}

// isPing reports whether m is the server's heartbeat ping.
func isPing(m message) bool { return m.ID == 0 && m.Op == protocol.PushPing }

// call sends cmd and returns its reply; pushes that come first are skipped.
func (c *pconn) call(cmd protocol.Command) message {
	c.t.Helper()
	id := c.send(cmd)
	for {
		m := c.read()
		if m.ID == id {
			return m
		}
		if m.Op == "" || m.Op == protocol.PushDisconnect {
			c.t.Fatalf("%s: got %+v, want the reply to %d", c.name, m, id)
		}
	}
}

// callFor sends cmd and returns its result as a T, failing the test on an
// error reply or a result that is not a T.
func callFor[T any](c *pconn, cmd protocol.Command) T {
	c.t.Helper()
	m := c.call(cmd)
	var res T
	if m.Error != nil {
		c.t.Fatalf("%s: %s %s: %v", c.name, cmd.Op, cmd.Channel, m.Error)
	}
	if err := json.Unmarshal(m.Result, &res); err != nil {
		c.t.Fatalf("%s: %s %s: result %s: %v", c.name, cmd.Op, cmd.Channel, m.Result, err)
	}
	return res
}

func (c *pconn) subscribe(channel string, recover *protocol.Position) protocol.SubscribeResult {
	c.t.Helper()
	return callFor[protocol.SubscribeResult](c, protocol.Command{Op: protocol.OpSubscribe, Channel: channel, Recover: recover})
}

// clientID runs connect and returns the client id.
func (c *pconn) clientID() string {
	c.t.Helper()
	res := callFor[protocol.ConnectResult](c, protocol.Command{Op: protocol.OpConnect})
	if res.Client == "" {
		c.t.Fatalf("%s: connect reply %+v has no client id", c.name, res)
	}
	return res.Client
}

// untilPub reads until a pub push arrives, skipping replies and pings.
func (c *pconn) untilPub() message {
	c.t.Helper()
	for {
		m := c.read()
		if m.Op == protocol.PushPub {
			return m
		}
		if m.Op == protocol.PushDisconnect || (m.ID == 0 && m.Op == "") {
			c.t.Fatalf("%s: got %+v while waiting for a publication", c.name, m)
		}
	}
}

// --- WebSocket

type wsWire struct{ c *websocket.Conn }

func (w wsWire) write(b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.c.Write(ctx, websocket.MessageText, b)
}

func (w wsWire) readMsg(d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := w.c.Read(ctx)
	return b, err
}

func (w wsWire) close() { w.c.CloseNow() }

// --- TCP

type tcpWire struct {
	c net.Conn
	r *bufio.Reader
}

func (w *tcpWire) write(b []byte) error {
	_ = w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := w.c.Write(append(b, '\n'))
	return err
}

func (w *tcpWire) readMsg(d time.Duration) ([]byte, error) {
	_ = w.c.SetReadDeadline(time.Now().Add(d))
	line, err := w.r.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	return line[:len(line)-1], nil
}

func (w *tcpWire) close() { _ = w.c.Close() }

// --- gRPC stream

type grpcWire struct {
	stream grpc.BidiStreamingClient[tetherv1.ClientMessage, tetherv1.ServerMessage]
	cancel context.CancelFunc
	msgs   chan []byte
	err    chan error // the error that ended the stream, once msgs is drained
}

func newGRPCWire(t testing.TB, cc *grpc.ClientConn) *grpcWire {
	t.Helper()
	return newGRPCWireContext(t, cc, context.Background())
}

// newGRPCWireContext is newGRPCWire with the stream's context made from
// parent (outgoing metadata, say).
func newGRPCWireContext(t testing.TB, cc *grpc.ClientConn, parent context.Context) *grpcWire {
	t.Helper()
	ctx, cancel := context.WithCancel(parent)
	stream, err := tetherv1.NewTetherClient(cc).Connect(ctx)
	if err != nil {
		cancel()
		t.Fatalf("grpc connect: %v", err)
	}
	w := &grpcWire{stream: stream, cancel: cancel, msgs: make(chan []byte, 1024), err: make(chan error, 1)}
	go func() { // no t.Fatal here: errors go to the channel
		for {
			m, err := stream.Recv()
			if err != nil {
				close(w.msgs)
				w.err <- err
				return
			}
			w.msgs <- m.GetJson()
		}
	}()
	t.Cleanup(w.close)
	return w
}

func (w *grpcWire) write(b []byte) error {
	return w.stream.Send(&tetherv1.ClientMessage{Json: b})
}

func (w *grpcWire) readMsg(d time.Duration) ([]byte, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case b, ok := <-w.msgs:
		if !ok {
			err := <-w.err
			w.err <- err
			return nil, err
		}
		return b, nil
	case <-t.C:
		return nil, errors.New("timeout")
	}
}

func (w *grpcWire) close() { w.cancel() }

// --- dialers

// env is what the tests need to reach a node: its addresses and, with TLS,
// the certificate to trust.
type env struct {
	t    testing.TB
	n    *tether.Node
	pool *x509.CertPool // nil: plaintext
}

func (e *env) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: e.pool, ServerName: "127.0.0.1"}
}

func (e *env) httpClient() *http.Client {
	if e.pool == nil {
		return http.DefaultClient
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: e.tlsConfig()}}
}

func (e *env) httpURL(path string) string {
	if e.pool == nil {
		return "http://" + e.n.Addr().String() + path
	}
	return "https://" + e.n.Addr().String() + path
}

func (e *env) dialWS() *pconn {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := "ws://" + e.n.Addr().String() + "/ws"
	if e.pool != nil {
		url = "wss://" + e.n.Addr().String() + "/ws"
	}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: e.httpClient()})
	if err != nil {
		e.t.Fatalf("dial ws: %v", err)
	}
	c.SetReadLimit(1 << 22)
	w := wsWire{c}
	e.t.Cleanup(w.close)
	return &pconn{t: e.t, name: "ws", w: w}
}

func (e *env) dialTCPRaw() net.Conn {
	e.t.Helper()
	addr := e.n.TCPAddr().String()
	var c net.Conn
	var err error
	if e.pool != nil {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, e.tlsConfig())
	} else {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		e.t.Fatalf("dial tcp: %v", err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

func (e *env) dialTCP() *pconn {
	e.t.Helper()
	c := e.dialTCPRaw()
	return &pconn{t: e.t, name: "tcp", w: &tcpWire{c: c, r: bufio.NewReaderSize(c, 1<<16)}}
}

func (e *env) grpcConn() *grpc.ClientConn {
	e.t.Helper()
	creds := insecure.NewCredentials()
	if e.pool != nil {
		creds = credentials.NewTLS(e.tlsConfig())
	}
	cc, err := grpc.NewClient(e.n.GRPCAddr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		e.t.Fatalf("grpc client: %v", err)
	}
	e.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func (e *env) dialGRPC() *pconn {
	e.t.Helper()
	return &pconn{t: e.t, name: "grpc", w: newGRPCWire(e.t, e.grpcConn())}
}

// dialAll returns one client per streaming transport.
func (e *env) dialAll() []*pconn {
	return []*pconn{e.dialWS(), e.dialTCP(), e.dialGRPC()}
}

// startEnv starts a node with cfg, with TLS when secure.
func startEnv(t testing.TB, cfg tether.Config, secure bool) *env {
	t.Helper()
	e := &env{t: t}
	if secure {
		cfg.TLSCertFile, cfg.TLSKeyFile, e.pool = selfSignedCert(t)
	}
	e.n = tethertest.NewNode(t, cfg)
	return e
}

// selfSignedCert writes a fresh certificate for 127.0.0.1 and its key to a
// temporary directory.
func selfSignedCert(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tether test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// postAPI posts body to an API path and returns the status and body.
func (e *env) postAPI(path, key, body string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.httpURL(path), bytesReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := e.httpClient().Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// waitFor polls cond until it holds, failing the test after 10s. For state
// with no event to wait on (a count of connections dropping).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func bytesReader(s string) io.Reader { return strings.NewReader(s) }

// statusCode returns the gRPC status code of err as text.
func statusCode(err error) string { return status.Code(err).String() }

// dialWSWith dials /ws with a query string and upgrade request headers.
func (e *env) dialWSWith(query string, h http.Header) *pconn {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+e.n.Addr().String()+"/ws"+query, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		e.t.Fatalf("dial ws: %v", err)
	}
	w := wsWire{c}
	e.t.Cleanup(w.close)
	return &pconn{t: e.t, name: "ws", w: w}
}
