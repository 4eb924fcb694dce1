package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether/internal/bench"
)

// TestBaselineUnderBench runs tiny benchmarks against the baseline, so that the
// comparison script's other half is known to work.
func TestBaselineUnderBench(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := newHub()
	go h.run(ctx)
	srv := httptest.NewServer(routes(h))
	defer srv.Close()
	tg, err := bench.TargetFor("baseline", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func() (bench.Result, error)
		ok   func(bench.Result) bool
	}{
		{"conns", func() (bench.Result, error) {
			return bench.Conns(ctx, tg, bench.ConnsOptions{Conns: 20, Settle: 10 * time.Millisecond})
		}, func(r bench.Result) bool { return r.(*bench.ConnsResult).Open == 20 }},
		{"fanout", func() (bench.Result, error) {
			return bench.Fanout(ctx, tg, bench.FanoutOptions{Subs: 10, Messages: 30, Rate: 0})
		}, func(r bench.Result) bool {
			f := r.(*bench.FanoutResult)
			return f.Delivered == 300 && f.Lost == 0 && f.OutOfOrder == 0 && f.Duplicated == 0
		}},
		{"channels", func() (bench.Result, error) {
			return bench.Channels(ctx, tg, bench.ChannelsOptions{Subs: 10, Messages: 30, Rate: 300})
		}, func(r bench.Result) bool {
			f := r.(*bench.FanoutResult)
			return f.Delivered == 30 && f.Lost == 0 && f.Duplicated == 0
		}},
		{"chat", func() (bench.Result, error) {
			return bench.Chat(ctx, tg, bench.ChatOptions{Clients: 9, Room: 3, Messages: 30, Rate: 300})
		}, func(r bench.Result) bool {
			f := r.(*bench.FanoutResult)
			return f.Delivered == 90 && f.Lost == 0 && f.Duplicated == 0
		}},
		{"echo", func() (bench.Result, error) {
			return bench.Echo(ctx, tg, bench.EchoOptions{Clients: 2, Duration: 100 * time.Millisecond})
		}, func(r bench.Result) bool { return r.(*bench.EchoResult).RoundTrips > 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.run()
			if err != nil {
				t.Fatal(err)
			}
			if r.LimitHit() != "" || !tt.ok(r) {
				t.Fatalf("result %+v", r)
			}
		})
	}
}
