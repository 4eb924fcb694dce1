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
