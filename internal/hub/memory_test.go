package hub

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/tetherhq/tether/backend/memory"
)

// TestMemberSize guards the memory budget of an idle subscription (issue 9):
// what a subscription needs only while its subscribe is in flight is behind
// a pointer.
func TestMemberSize(t *testing.T) {
	if n := unsafe.Sizeof(member{}); n > 48 {
		t.Fatalf("member is %d bytes, over the 48-byte size class", n)
	}
}

// TestIntern: a held channel's name comes back as the hub's own copy; any
// other name as it was given.
func TestIntern(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{Size: 10}, Config{})
	first := strings.Clone("room:1")
	subscribe(t, h, first, newRecorder(), nil)

	same := strings.Clone("room:1")
	if got := h.Intern(same); got != same || unsafe.StringData(got) != unsafe.StringData(first) {
		t.Fatalf("Intern(%q) did not return the channel's copy", same)
	}
	other := strings.Clone("room:2")
	if got := h.Intern(other); unsafe.StringData(got) != unsafe.StringData(other) {
		t.Fatalf("Intern(%q) of a channel the hub does not hold returned another string", other)
	}
}
