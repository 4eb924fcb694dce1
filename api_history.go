package tether

import (
	"net/http"

	"github.com/tetherhq/tether/protocol"
)

type historyRequest struct {
	Channel string             `json:"channel"`
	Since   *protocol.Position `json:"since"`
	Limit   int                `json:"limit"`
}

// apiHistory serves POST /api/history {"channel","since":{"epoch","offset"},"limit"}
// -> {"epoch","offset","publications":[...]}: the publications after since,
// oldest first, at most limit (0: all kept), and the channel's current
// position. A since from another epoch (or none) starts at the oldest kept.
func (n *Node) apiHistory(w http.ResponseWriter, r *http.Request) {
	if !n.authorized(w, r) {
		return
	}
	var req historyRequest
	if !n.decodeAPI(w, r, &req) {
		return
	}
	if perr := protocol.ValidateChannel(req.Channel, n.cfg.MaxChannelLength); perr != nil {
		writeJSON(w, http.StatusBadRequest, apiError{perr})
		return
	}
	if req.Limit < 0 {
		writeAPIError(w, http.StatusBadRequest, protocol.ErrBadRequest, "limit must not be negative")
		return
	}
	writeJSON(w, http.StatusOK, n.hub.History(req.Channel, req.Since, req.Limit))
}
