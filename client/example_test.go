package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/client"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// startServer starts a tether node on a random loopback port for the examples
// and returns it with its WebSocket URL.
func startServer() (*tether.Node, string) {
	node, err := tethertest.Start(tether.Config{HTTPAddr: tethertest.Loopback})
	if err != nil {
		log.Fatal(err)
	}
	return node, tethertest.WSURL(node, "/ws")
}

// The README's example (README.md, "Go client"): dial, subscribe, publish,
// and print what comes back.
func Example() {
	node, url := startServer()
	defer tethertest.Close(node)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := readme(ctx, url); err != nil {
		log.Fatal(err)
	}
	// Output: 1 {"text":"hi"}
}

// readme is the README's code, word for word but for the URL.
func readme(ctx context.Context, url string) error {
	c, err := client.Dial(ctx, url) // reconnects, resubscribes and recovers by itself
	if err != nil {
		return err
	}
	defer c.Close()
	pubs := make(chan *protocol.Publication, 64)
	if _, err := c.SubscribeChan(ctx, "chat:lobby", pubs); err != nil {
		return err
	}
	if _, err := c.Publish(ctx, "chat:lobby", json.RawMessage(`{"text":"hi"}`)); err != nil {
		return err
	}
	p := <-pubs // each publication once, in order, across reconnects
	fmt.Println(p.Offset, string(p.Data))
	return nil
}

// A handler receives publications on the subscription's own goroutine.
func ExampleClient_Subscribe() {
	node, url := startServer()
	defer tethertest.Close(node)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	_, err = c.Subscribe(ctx, "chat:lobby", func(p *protocol.Publication) {
		fmt.Println(p.Offset, string(p.Data))
		if p.Offset == 2 {
			close(done)
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, text := range []string{`"hi"`, `"bye"`} {
		if _, err := c.Publish(ctx, "chat:lobby", json.RawMessage(text)); err != nil {
			log.Fatal(err)
		}
	}
	<-done
	// Output:
	// 1 "hi"
	// 2 "bye"
}

// Publications can come on a Go channel instead of a handler.
func ExampleClient_SubscribeChan() {
	node, url := startServer()
	defer tethertest.Close(node)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	pubs := make(chan *protocol.Publication, 16)
	if _, err := c.SubscribeChan(ctx, "news", pubs); err != nil {
		log.Fatal(err)
	}
	for i := range 3 {
		if _, err := node.Publish(ctx, "news", json.RawMessage(fmt.Sprint(i))); err != nil {
			log.Fatal(err)
		}
	}
	for range 3 {
		p := <-pubs
		fmt.Println(p.Channel, p.Offset, string(p.Data))
	}
	// Output:
	// news 1 0
	// news 2 1
	// news 3 2
}

// History reads what a channel keeps, here from the start.
func ExampleClient_History() {
	node, url := startServer()
	defer tethertest.Close(node)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for _, text := range []string{`"a"`, `"b"`, `"c"`} {
		if _, err := c.Publish(ctx, "log", json.RawMessage(text)); err != nil {
			log.Fatal(err)
		}
	}
	h, err := c.History(ctx, "log", &protocol.Position{Epoch: "", Offset: 0}, 2)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("current offset", h.Offset)
	for _, p := range h.Publications {
		fmt.Println(p.Offset, string(p.Data))
	}
	// Output:
	// current offset 3
	// 1 "a"
	// 2 "b"
}

// Events say when the connection comes and goes, and whether subscriptions
// recovered what they missed.
func ExampleWithEventHandler() {
	node, url := startServer()
	defer tethertest.Close(node)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	events := make(chan client.EventType, 8)
	c, err := client.Dial(ctx, url, client.WithEventHandler(func(e client.Event) { events <- e.Type }))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-events)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-events)
	// Output:
	// connected
	// disconnected
}

// Backoff gives delays in [0, min(limit, base*2^attempt)).
func ExampleBackoff() {
	delay := client.Backoff(100*time.Millisecond, 2*time.Second)
	for _, attempt := range []int{0, 3, 10} {
		d := delay(attempt)
		fmt.Println(attempt, d >= 0 && d < min(100*time.Millisecond<<attempt, 2*time.Second))
	}
	// Output:
	// 0 true
	// 3 true
	// 10 true
}
