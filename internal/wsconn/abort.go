package wsconn

import (
	"math/rand/v2"

	"github.com/tetherhq/tether/internal/conns"
)

// Abort drops up to n connections picked at random, at once: no disconnect
// push, no close frame, and a TCP reset where the socket allows it, as a
// crashed server or a broken network would. It is meant for tests of client
// reconnection. It returns how many it dropped.
func (s *Server) Abort(n int) int {
	all := s.cfg.Conns.Conns(conns.WebSocket)
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	dropped := 0
	for _, cc := range all {
		c := cc.(*conn)
		if dropped == n {
			break
		}
		if c.load().state() == stateClosed {
			continue
		}
		if sock := c.socket(); sock != nil {
			_ = sock.SetLinger(1, 0) // close sends RST, not FIN
		}
		_ = c.nb.Close()
		dropped++
	}
	return dropped
}
