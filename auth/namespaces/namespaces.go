// Package namespaces is an auth.Authorizer driven by channel namespaces: the
// part of a channel's name before its first ':' ("chat" in "chat:lobby").
// Each namespace says who may subscribe, publish, read history and presence:
// everyone, authenticated users, only those the credentials grant the
// channel to, or nobody (the server API only); and whether its subscribers get
// join, leave and occupancy pushes (auth.PresencePolicy).
//
// A user channel, whose name after the namespace starts with '#' and lists
// user ids separated by commas ("dm:#alice,bob"), admits exactly the users
// it lists, whatever the grants, unless its namespace says none.
//
// The package decides; it must not do I/O, and it holds no per-connection
// state.
package namespaces

import (
	"context"
	"fmt"
	"strings"

	"github.com/tetherhq/tether/auth"
)

// Rule says who may do an action.
type Rule string

// The rules.
const (
	// All: everyone, anonymous connections too.
	All Rule = "all"
	// Users: any authenticated connection (a token with a user).
	Users Rule = "users"
	// Granted: only connections whose token's channels, or a subscription
	// token, grant the channel.
	Granted Rule = "granted"
	// None: nobody; the server API still may.
	None Rule = "none"
)

// Namespace is the permissions of the channels of one namespace.
type Namespace struct {
	// Name is the namespace: the channel prefix before ':'. Empty: the
	// default namespace, of channels without a ':' and of namespaces not
	// listed.
	Name string `yaml:"name"`
	// Subscribe, Publish, History and Presence say who may do each.
	// Empty: the default namespace's rule.
	Subscribe Rule `yaml:"subscribe"`
	Publish   Rule `yaml:"publish"`
	History   Rule `yaml:"history"`
	Presence  Rule `yaml:"presence"`
	// JoinLeave sends subscribers join and leave pushes: off (or empty),
	// clients (every connection) or users (a user's first and last
	// connection). Not taken from the default namespace.
	JoinLeave auth.JoinLeave `yaml:"join_leave"`
	// Occupancy sends subscribers the channel's counts of clients and users
	// when they change. Not taken from the default namespace.
	Occupancy bool `yaml:"occupancy"`
}

// Secure is the default namespace when connections authenticate: users may
// subscribe, read history and presence; clients may not publish.
var Secure = Namespace{Subscribe: Users, Publish: None, History: Users, Presence: Users}

// Open is the default namespace when connections do not authenticate:
// everyone may do everything (tether without auth).
var Open = Namespace{Subscribe: All, Publish: All, History: All, Presence: All}

// Authorizer allows or refuses by namespace. It implements auth.Authorizer
// and is safe for concurrent use; it must not be changed after New.
type Authorizer struct {
	def Namespace
	ns  map[string]Namespace
}

var (
	_ auth.Authorizer     = (*Authorizer)(nil)
	_ auth.PresencePolicy = (*Authorizer)(nil)
)

// New returns an authorizer with def as the default namespace (its Name is
// ignored; empty rules in it mean None) and namespaces, whose empty rules
// take def's. A namespace named "" replaces def.
func New(def Namespace, namespaces []Namespace) (*Authorizer, error) {
	a := &Authorizer{ns: make(map[string]Namespace, len(namespaces))}
	for _, n := range namespaces {
		if n.Name == "" {
			def = n
		}
	}
	a.def = fill(def, Namespace{Subscribe: None, Publish: None, History: None, Presence: None})
	if err := a.def.check(); err != nil {
		return nil, err
	}
	for _, n := range namespaces {
		if n.Name == "" {
			continue
		}
		if strings.ContainsAny(n.Name, ":# ") {
			return nil, fmt.Errorf("namespaces: name %q must not hold ':', '#' or a space", n.Name)
		}
		if _, dup := a.ns[n.Name]; dup {
			return nil, fmt.Errorf("namespaces: %q is listed twice", n.Name)
		}
		n = fill(n, a.def)
		if err := n.check(); err != nil {
			return nil, err
		}
		a.ns[n.Name] = n
	}
	return a, nil
}

func fill(n, def Namespace) Namespace {
	for _, p := range []struct{ r, d *Rule }{{&n.Subscribe, &def.Subscribe}, {&n.Publish, &def.Publish}, {&n.History, &def.History}, {&n.Presence, &def.Presence}} {
		if *p.r == "" {
			*p.r = *p.d
		}
	}
	return n
}

func (n Namespace) check() error {
	for _, r := range []struct {
		what string
		r    Rule
	}{{"subscribe", n.Subscribe}, {"publish", n.Publish}, {"history", n.History}, {"presence", n.Presence}} {
		switch r.r {
		case All, Users, Granted, None:
		default:
			return fmt.Errorf("namespaces: %q: %s must be all, users, granted or none, not %q", n.Name, r.what, r.r)
		}
	}
	switch n.JoinLeave {
	case "", auth.JoinLeaveOff, auth.JoinLeaveClients, auth.JoinLeaveUsers:
	default:
		return fmt.Errorf("namespaces: %q: join_leave must be off, clients or users, not %q", n.Name, n.JoinLeave)
	}
	return nil
}

// PresenceOptions implements auth.PresencePolicy: a channel keeps its
// members where its namespace's presence rule is not none, or where it sends
// join and leave or occupancy pushes.
func (a *Authorizer) PresenceOptions(channel string) auth.PresenceOptions {
	n := a.Namespace(channel)
	o := auth.PresenceOptions{JoinLeave: n.JoinLeave, Occupancy: n.Occupancy}
	if o.JoinLeave == "" {
		o.JoinLeave = auth.JoinLeaveOff
	}
	o.Track = n.Presence != None || o.JoinLeave != auth.JoinLeaveOff || o.Occupancy
	return o
}

// Namespace returns the rules that apply to channel.
func (a *Authorizer) Namespace(channel string) Namespace {
	if i := strings.IndexByte(channel, ':'); i >= 0 {
		if n, ok := a.ns[channel[:i]]; ok {
			return n
		}
	}
	return a.def
}

// Authorize implements auth.Authorizer.
func (a *Authorizer) Authorize(_ context.Context, id *auth.Identity, act auth.Action, channel string) error {
	n := a.Namespace(channel)
	var r Rule
	switch act {
	case auth.Subscribe:
		r = n.Subscribe
	case auth.Publish:
		r = n.Publish
	case auth.History:
		r = n.History
	case auth.Presence:
		r = n.Presence
	default:
		return fmt.Errorf("%w: unknown action %q", auth.ErrPermissionDenied, act)
	}
	if r == None {
		return fmt.Errorf("%w: %s is off in this namespace", auth.ErrPermissionDenied, act)
	}
	if users, ok := UserChannel(channel); ok {
		if id.Authenticated() && contains(users, id.User) {
			return nil
		}
		return fmt.Errorf("%w: not a user of this channel", auth.ErrPermissionDenied)
	}
	switch {
	case r == All,
		r == Users && id.Authenticated(),
		r == Granted && id.Granted(channel):
		return nil
	}
	return fmt.Errorf("%w: %s needs %s", auth.ErrPermissionDenied, act, r)
}

// UserChannel returns the users a user channel lists ("dm:#alice,bob":
// alice and bob) and true, or false for another channel. The list starts
// after the first '#' of the name; an empty user in it admits nobody.
func UserChannel(channel string) ([]string, bool) {
	i := strings.IndexByte(channel, '#')
	if i < 0 {
		return nil, false
	}
	var users []string
	for _, u := range strings.Split(channel[i+1:], ",") {
		if u != "" {
			users = append(users, u)
		}
	}
	return users, true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
