package namespaces

import (
	"context"
	"errors"
	"testing"

	"github.com/tetherhq/tether/auth"
)

func TestNewChecks(t *testing.T) {
	for _, ns := range [][]Namespace{
		{{Name: "a", Subscribe: "everyone"}},
		{{Name: "a:b"}},
		{{Name: "a"}, {Name: "a"}},
		{{Name: "a", JoinLeave: "tabs"}},
	} {
		if _, err := New(Secure, ns); err == nil {
			t.Errorf("New(%+v) succeeded", ns)
		}
	}
}

// TestPresenceAndDefaults: presence follows its own rule; rules a namespace
// leaves empty come from the default; a "" namespace replaces the default.
func TestPresenceAndDefaults(t *testing.T) {
	a, err := New(Secure, []Namespace{{Name: "room", Publish: Users}, {Name: "", Presence: All}})
	if err != nil {
		t.Fatal(err)
	}
	ann := &auth.Identity{User: "ann"}
	tests := []struct {
		id      *auth.Identity
		act     auth.Action
		channel string
		allowed bool
	}{
		{nil, auth.Presence, "news", true},       // the "" namespace: presence all
		{nil, auth.Subscribe, "news", false},     // and the rest none
		{ann, auth.Publish, "room:1", true},      // room's own rule
		{ann, auth.Subscribe, "room:1", false},   // room's empty rule: from the "" namespace
		{ann, auth.Presence, "room:#bob", false}, // not a member
		{ann, auth.Presence, "room:#ann", true},
	}
	for _, tt := range tests {
		err := a.Authorize(context.Background(), tt.id, tt.act, tt.channel)
		if (err == nil) != tt.allowed || (err != nil && !errors.Is(err, auth.ErrPermissionDenied)) {
			t.Errorf("%v %s %s: %v, want allowed=%v", tt.id, tt.act, tt.channel, err, tt.allowed)
		}
	}
}

// TestPresenceOptions: a channel keeps presence where its namespace lets
// anyone read it or pushes joins, leaves or occupancy; join_leave and
// occupancy are the namespace's own.
func TestPresenceOptions(t *testing.T) {
	a, err := New(Secure, []Namespace{
		{Name: "quiet", Presence: None},
		{Name: "room", Presence: None, JoinLeave: auth.JoinLeaveUsers},
		{Name: "tabs", JoinLeave: auth.JoinLeaveClients, Occupancy: true},
		{Name: "count", Presence: None, Occupancy: true},
		{Name: "off", JoinLeave: auth.JoinLeaveOff},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		channel string
		want    auth.PresenceOptions
	}{
		{"news", auth.PresenceOptions{Track: true, JoinLeave: auth.JoinLeaveOff}}, // Secure: presence users
		{"quiet:1", auth.PresenceOptions{JoinLeave: auth.JoinLeaveOff}},
		{"room:1", auth.PresenceOptions{Track: true, JoinLeave: auth.JoinLeaveUsers}},
		{"room:#ann,bob", auth.PresenceOptions{Track: true, JoinLeave: auth.JoinLeaveUsers}},
		{"tabs:1", auth.PresenceOptions{Track: true, JoinLeave: auth.JoinLeaveClients, Occupancy: true}},
		{"count:1", auth.PresenceOptions{Track: true, JoinLeave: auth.JoinLeaveOff, Occupancy: true}},
		{"off:1", auth.PresenceOptions{Track: true, JoinLeave: auth.JoinLeaveOff}},
	}
	for _, tt := range tests {
		if got := a.PresenceOptions(tt.channel); got != tt.want {
			t.Errorf("PresenceOptions(%s) = %+v, want %+v", tt.channel, got, tt.want)
		}
	}
}
