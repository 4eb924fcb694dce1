package tether_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/tetherhq/tether"
	tclient "github.com/tetherhq/tether/client"
	"github.com/tetherhq/tether/protocol"
)

// Embedding a node in a Go server (README.md, "Embed it"): a zero Config opens
// no listener; the node's handler is mounted in the server's own mux, and the
// server publishes in-process.
func Example() {
	node, err := tether.New(tether.Config{}) // no listeners, every limit at its default
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil { // clients are told to reconnect
			log.Print(err)
		}
	}()
	mux := http.NewServeMux()
	mux.Handle("/rt/", http.StripPrefix("/rt", node.Handler())) // /rt/ws, /rt/api/publish, ...
	srv := httptest.NewServer(mux)                              // your own server
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tclient.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/rt/ws")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	pubs := make(chan *protocol.Publication, 1)
	if _, err := c.SubscribeChan(ctx, "news", pubs); err != nil {
		log.Fatal(err)
	}
	pos, err := node.Publish(ctx, "news", json.RawMessage(`{"title":"hi"}`))
	if err != nil {
		log.Fatal(err)
	}
	p := <-pubs
	fmt.Println(pos.Offset, p.Offset, string(p.Data))
	// Output: 1 1 {"title":"hi"}
}

// Publish's refusals are typed: errors.Is tells which, errors.As reaches the
// protocol error a client would get.
func ExampleNode_Publish_errors() {
	node, err := tether.New(tether.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := node.Shutdown(context.Background()); err != nil {
			log.Print(err)
		}
	}()

	_, err = node.Publish(context.Background(), "no spaces please", json.RawMessage(`1`))
	var perr *protocol.Error
	if errors.Is(err, tether.ErrInvalidChannel) && errors.As(err, &perr) {
		fmt.Println(perr.Code)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = node.Publish(cancelled, "news", json.RawMessage(`1`))
	fmt.Println(errors.Is(err, context.Canceled))
	// Output:
	// invalid_channel
	// true
}
