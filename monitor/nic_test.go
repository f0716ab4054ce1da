package monitor

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestLinkUp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags uint32
		want  bool
	}{
		{"up with carrier", unix.IFF_UP | unix.IFF_LOWER_UP | unix.IFF_RUNNING, true},
		{"up, no carrier (cable out, veth peer down)", unix.IFF_UP, false},
		{"administratively down", unix.IFF_LOWER_UP, false},
		{"nothing", 0, false},
	} {
		if got := LinkUp(tc.flags); got != tc.want {
			t.Errorf("%s: LinkUp(%#x) = %v, want %v", tc.name, tc.flags, got, tc.want)
		}
	}
}
