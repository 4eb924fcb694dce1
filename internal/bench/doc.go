// Package bench is tether's load generator: it opens many WebSocket
// connections to a running server (tether or the baseline hub in
// bench/baseline), drives them, and reports what the server did with them,
// reading the server's own /metrics for its memory and CPU.
//
// Every run is bounded in count and in time, and a run that hits a limit (open
// files, source ports, refused connections, a deadline) says so in its result
// instead of reporting a figure computed from less than was asked. Latencies are
// recorded in HDR histograms and measured from the time a message was scheduled
// to be sent, not from when it was, so that a publisher falling behind shows up
// in the figures (no coordinated omission).
//
// The package must not start servers, and its client is deliberately minimal
// (one goroutine and one small buffer per connection, frames read straight from
// the socket) so that the load generator does not dominate the machine it shares
// with the server. It is not a general WebSocket client.
package bench
