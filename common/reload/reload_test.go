package reload

import (
	"runtime"
	"testing"
)

type owner struct{ n int }

func TestRunCallsLiveOwners(t *testing.T) {
	o := &owner{}
	Register(o, func(o *owner) { o.n++ })
	Run()
	Run()
	if o.n != 2 {
		t.Fatalf("hook ran %d times, want 2", o.n)
	}
	runtime.KeepAlive(o)
}

func TestDeadOwnersAreDropped(t *testing.T) {
	for i := 0; i < 100; i++ {
		Register(&owner{}, func(o *owner) { o.n++ })
	}
	runtime.GC()
	keep := &owner{}
	Register(keep, func(o *owner) { o.n++ })
	mu.Lock()
	n := len(hooks)
	mu.Unlock()
	if n > 10 {
		t.Errorf("%d hooks kept after their owners died", n)
	}
	runtime.KeepAlive(keep)
}
