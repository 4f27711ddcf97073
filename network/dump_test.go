package network

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestDumpRetry(t *testing.T) {
	calls := 0
	got, err := dumpRetry(func() ([]int, error) {
		calls++
		if calls < 3 {
			return []int{1}, netlink.ErrDumpInterrupted // partial
		}
		return []int{1, 2}, nil
	})
	if err != nil || len(got) != 2 || calls != 3 {
		t.Fatalf("after two interrupted dumps: %v, %v, %d calls", got, err, calls)
	}
	calls = 0
	if _, err := dumpRetry(func() ([]int, error) { calls++; return nil, netlink.ErrDumpInterrupted }); !errors.Is(err, netlink.ErrDumpInterrupted) || calls < 2 {
		t.Fatalf("a dump interrupted every time: %v after %d calls", err, calls)
	}
	other := errors.New("permission denied")
	calls = 0
	if _, err := dumpRetry(func() ([]int, error) { calls++; return nil, other }); err != other || calls != 1 {
		t.Fatalf("another error: %v after %d calls", err, calls)
	}
}
