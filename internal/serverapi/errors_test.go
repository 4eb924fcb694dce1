package serverapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/tetherhq/tether/protocol"
)

// kinded is a Backend's sentinel error, as the node's ErrClosed is.
type kinded struct {
	msg  string
	kind Kind
}

func (e *kinded) Error() string { return e.msg }
func (e *kinded) Kind() Kind    { return e.kind }

var (
	errShutDown = &kinded{"node is shut down", KindUnavailable}
	errNoSuch   = &kinded{"no such client", KindNotFound}
)

func TestClassify(t *testing.T) {
	invalid := protocol.NewError(protocol.ErrInvalidChannel, "channel is required")
	tests := []struct {
		name   string
		err    error
		kind   Kind
		status int
		code   codes.Code
		proto  string // the answer's protocol error code
	}{
		{"bad request", protocol.NewError(protocol.ErrBadRequest, "x"), KindBadRequest, 400, codes.InvalidArgument, protocol.ErrBadRequest},
		{"invalid channel, wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", invalid)), KindBadRequest, 400, codes.InvalidArgument, protocol.ErrInvalidChannel},
		{"too many channels", protocol.NewError(protocol.ErrTooManyChans, "x"), KindLimit, 400, codes.ResourceExhausted, protocol.ErrTooManyChans},
		{"too many subscriptions", protocol.NewError(protocol.ErrTooManySubs, "x"), KindLimit, 400, codes.ResourceExhausted, protocol.ErrTooManySubs},
		{"rate limited", protocol.NewError(protocol.ErrRateLimited, "x"), KindRateLimited, 429, codes.ResourceExhausted, protocol.ErrRateLimited},
		{"permission denied", protocol.NewError(protocol.ErrPermission, "x"), KindForbidden, 403, codes.PermissionDenied, protocol.ErrPermission},
		{"unauthorized", protocol.NewError(protocol.ErrUnauthorized, "x"), KindUnauthorized, 401, codes.Unauthenticated, protocol.ErrUnauthorized},
		{"protocol unavailable", protocol.NewError(protocol.ErrUnavailable, "x"), KindUnavailable, 503, codes.Unavailable, protocol.ErrUnavailable},
		{"protocol internal", protocol.NewError(protocol.ErrInternal, "x"), KindInternal, 500, codes.Internal, protocol.ErrInternal},
		{"unknown protocol code", protocol.NewError("new_code", "x"), KindBadRequest, 400, codes.InvalidArgument, "new_code"},
		{"kinded: shut down", fmt.Errorf("publish: %w", errShutDown), KindUnavailable, 503, codes.Unavailable, protocol.ErrUnavailable},
		{"kinded: not found", fmt.Errorf("%w: %q", errNoSuch, "c1"), KindNotFound, 404, codes.NotFound, protocol.ErrBadRequest},
		{"kinded wins over its protocol error", &kindError{KindTooLarge, protocol.NewError(protocol.ErrBadRequest, "big")}, KindTooLarge, 413, codes.ResourceExhausted, protocol.ErrBadRequest},
		{"kinded wins over the context", errors.Join(errShutDown, context.Canceled), KindUnavailable, 503, codes.Unavailable, protocol.ErrUnavailable},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), KindCanceled, 499, codes.Canceled, protocol.ErrUnavailable},
		{"deadline", context.DeadlineExceeded, KindDeadline, 504, codes.DeadlineExceeded, protocol.ErrUnavailable},
		{"anything else", errors.New("disk on fire"), KindInternal, 500, codes.Internal, protocol.ErrInternal},
		{"a kind out of range", &kinded{"odd", Kind(200)}, KindInternal, 500, codes.Internal, protocol.ErrInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, perr := Classify(tt.err)
			if kind != tt.kind || kind.HTTPStatus() != tt.status || kind.GRPCCode() != tt.code {
				t.Fatalf("Classify = %v (%d, %v), want %v (%d, %v)", kind, kind.HTTPStatus(), kind.GRPCCode(), tt.kind, tt.status, tt.code)
			}
			if perr == nil || perr.Code != tt.proto {
				t.Fatalf("protocol error %v, want code %s", perr, tt.proto)
			}
			var inChain *protocol.Error
			if errors.As(tt.err, &inChain) && perr != inChain {
				t.Fatalf("answer %v is not the chain's own protocol error %v", perr, inChain)
			}
			if !errors.As(tt.err, &inChain) && perr.Message != tt.err.Error() {
				t.Fatalf("message %q, want the error's text %q", perr.Message, tt.err.Error())
			}
		})
	}
}

// TestKindsAreComplete: every kind has a name, a status and a code of its own
// choosing, and an out of range kind answers as internal.
func TestKindsAreComplete(t *testing.T) {
	for k := KindInternal; k.valid(); k++ {
		if kinds[k].name == "" || kinds[k].status == 0 || kinds[k].proto == "" {
			t.Errorf("kind %d is not filled in", k)
		}
		if k != KindInternal && kinds[k].code == codes.Internal {
			t.Errorf("%v maps to INTERNAL", k)
		}
	}
	if k := Kind(len(kinds)); k.HTTPStatus() != http.StatusInternalServerError || k.GRPCCode() != codes.Internal || k.String() != fmt.Sprintf("Kind(%d)", len(kinds)) {
		t.Errorf("out of range kind: %d %v %s", k.HTTPStatus(), k.GRPCCode(), k)
	}
}
