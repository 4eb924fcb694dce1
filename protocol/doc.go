// Package protocol defines tether's wire protocol, version 1: the commands a client
// sends, the replies and pushes the server sends back, their error and close codes,
// and the JSON codec shared by the server and the Go client.
//
// One JSON object travels per WebSocket text frame, per TCP line and per gRPC
// stream message. docs/protocol.md describes every field with examples.
//
// The package holds no state and does no I/O: it must not know about connections,
// channels or sessions. Decoding never panics on any input (see FuzzDecodeCommand).
package protocol
