package tether

import "github.com/tetherhq/tether/backend"

// PresenceStore returns the presence store the node uses. Test-only.
func (n *Node) PresenceStore() backend.Presence { return n.backends.Presence }
