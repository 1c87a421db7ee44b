package live_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/live"
)

func event(claim, holder, assignee string, n int) claims.Event {
	return claims.Event{Type: "claim.status_changed", ClaimID: claims.ID(claim), HolderID: claims.ID(holder),
		AssigneeID: claims.ID(assignee), Status: claims.Status(fmt.Sprint("s", n)), At: time.Unix(int64(n), 0).UTC()}
}

// drain returns the statuses buffered in s without blocking, and whether
// its channel is closed.
func drain(s *live.Subscription) (got []string, closed bool) {
	for {
		select {
		case ev, ok := <-s.C:
			if !ok {
				return got, true
			}
			got = append(got, string(ev.Status))
		default:
			return got, false
		}
	}
}

func TestLocalFanOutByFilter(t *testing.T) {
	b := live.NewLocal()
	defer b.Close()
	subs := map[string]*live.Subscription{
		"claim c1":           b.Subscribe(live.Filter{ClaimIDs: map[claims.ID]bool{"c1": true, "c9": false}}, 10),
		"claims c1,c2":       b.Subscribe(live.Filter{ClaimIDs: map[claims.ID]bool{"c1": true, "c2": true}}, 10),
		"holder h1":          b.Subscribe(live.Filter{HolderID: "h1"}, 10),
		"assignee p1":        b.Subscribe(live.Filter{AssigneeID: "p1"}, 10),
		"all":                b.Subscribe(live.Filter{All: true}, 10),
		"empty":              b.Subscribe(live.Filter{}, 10),
		"c1 or h1 or p1 all": b.Subscribe(live.Filter{ClaimIDs: map[claims.ID]bool{"c1": true}, HolderID: "h1", AssigneeID: "p1", All: true}, 10),
	}
	b.Publish(event("c1", "h1", "", 1))   // claim c1 of holder h1, unassigned
	b.Publish(event("c2", "h2", "p1", 2)) // assigned to p1
	b.Publish(event("c3", "h1", "p2", 3)) // another claim of h1
	b.Publish(event("c9", "h9", "", 4))   // c9 is in a filter map as false
	want := map[string][]string{
		"claim c1":           {"s1"},
		"claims c1,c2":       {"s1", "s2"},
		"holder h1":          {"s1", "s3"},
		"assignee p1":        {"s2"},
		"all":                {"s1", "s2", "s3", "s4"},
		"empty":              nil,
		"c1 or h1 or p1 all": {"s1", "s2", "s3", "s4"}, // each event once, though it matches several fields
	}
	for name, s := range subs {
		got, closed := drain(s)
		if fmt.Sprint(got) != fmt.Sprint(want[name]) || closed {
			t.Errorf("%s: got %v (closed %v), want %v", name, got, closed, want[name])
		}
	}
}

func TestLocalFilterIsCopied(t *testing.T) {
	b := live.NewLocal()
	defer b.Close()
	ids := map[claims.ID]bool{"c1": true}
	s := b.Subscribe(live.Filter{ClaimIDs: ids}, 4)
	ids["c2"] = true
	b.Publish(event("c2", "", "", 1))
	if got, _ := drain(s); len(got) != 0 {
		t.Fatalf("changing the filter map after Subscribe changed the subscription: got %v", got)
	}
}

// TestLocalSlowConsumerDropped publishes 1000 events to a fast subscriber
// and to two slow ones (one that never reads, one that reads once and
// hangs): the slow ones are dropped with their channels closed, the fast
// one receives every event in order, and no Publish waits on anyone.
func TestLocalSlowConsumerDropped(t *testing.T) {
	b := live.NewLocal()
	defer b.Close()
	const n, batch = 1000, 50
	fast := b.Subscribe(live.Filter{All: true}, batch)
	never := b.Subscribe(live.Filter{All: true}, 8)
	hung := b.Subscribe(live.Filter{ClaimIDs: map[claims.ID]bool{"c1": true}}, 8)

	var received atomic.Int64
	var got []string
	fastDone := make(chan struct{})
	go func() {
		defer close(fastDone)
		for ev := range fast.C {
			got = append(got, string(ev.Status))
			received.Add(1)
		}
	}()
	hungRead := make(chan struct{})
	go func() {
		<-hung.C
		close(hungRead)
		<-t.Context().Done() // a reader stuck on a dead socket
	}()

	var slowest time.Duration
	for i := range n {
		start := time.Now()
		b.Publish(event("c1", "h1", "", i))
		slowest = max(slowest, time.Since(start))
		if i%batch == batch-1 { // pace like a real workflow: the fast reader keeps up
			deadline := time.Now().Add(10 * time.Second)
			for received.Load() < int64(i+1) {
				if time.Now().After(deadline) {
					t.Fatalf("fast subscriber stalled at %d of %d", received.Load(), i+1)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("slowest Publish took %v; it must never wait for a subscriber", slowest)
	}

	<-hungRead
	for name, s := range map[string]*live.Subscription{"never reads": never, "hung": hung} {
		left, closed := drain(s)
		if !closed {
			t.Errorf("%s: channel still open after %d events", name, n)
		}
		if len(left) > 8 {
			t.Errorf("%s: %d events buffered, more than its buffer of 8", name, len(left))
		}
		if err := s.Err(); err != live.ErrTooSlow {
			t.Errorf("%s: Err() = %v, want ErrTooSlow", name, err)
		}
	}

	if err := fast.Err(); err != nil {
		t.Fatalf("fast subscriber dropped: %v", err)
	}
	fast.Close()
	<-fastDone
	if len(got) != n {
		t.Fatalf("fast subscriber got %d events, want %d", len(got), n)
	}
	for i, s := range got {
		if s != fmt.Sprint("s", i) {
			t.Fatalf("fast subscriber event %d is %s: out of order", i, s)
		}
	}
	if err := fast.Err(); err != nil {
		t.Errorf("after its own Close, Err() = %v, want nil", err)
	}
}

func TestLocalClose(t *testing.T) {
	b := live.NewLocal()
	s1 := b.Subscribe(live.Filter{All: true}, 4)
	s2 := b.Subscribe(live.Filter{HolderID: "h1"}, 4)
	own := b.Subscribe(live.Filter{ClaimIDs: map[claims.ID]bool{"c1": true}}, 4)

	own.Close()
	own.Close() // twice is fine
	if _, closed := drain(own); !closed || own.Err() != nil {
		t.Fatalf("own Close: closed %v, Err %v", closed, own.Err())
	}
	b.Publish(event("c1", "h1", "", 1)) // no panic on the closed subscription

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*live.Subscription{s1, s2} {
		got, closed := drain(s)
		if !closed || len(got) != 1 || s.Err() != live.ErrClosed {
			t.Errorf("after bus Close: got %v, closed %v, Err %v; want the buffered event, then closed with ErrClosed", got, closed, s.Err())
		}
		s.Close() // after the bus closed it: no panic
	}
	b.Publish(event("c1", "h1", "", 2)) // ignored
	late := b.Subscribe(live.Filter{All: true}, 4)
	if _, closed := drain(late); !closed || late.Err() != live.ErrClosed {
		t.Errorf("Subscribe after Close: closed %v, Err %v", closed, late.Err())
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestLocalConcurrent runs publishers, subscribers and closers at once, for
// the race detector.
func TestLocalConcurrent(t *testing.T) {
	b := live.NewLocal()
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 500 {
				b.Publish(event(fmt.Sprint("c", i%7), fmt.Sprint("h", p), "", i))
			}
		})
	}
	for range 8 {
		wg.Go(func() {
			for i := range 100 {
				s := b.Subscribe(live.Filter{ClaimIDs: map[claims.ID]bool{claims.ID(fmt.Sprint("c", i%7)): true}, HolderID: "h1"}, 2)
				drain(s)
				s.Close()
			}
		})
	}
	wg.Wait()
	b.Close()
}
