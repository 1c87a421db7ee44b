package live_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/live"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
)

// newPostgres opens a bus on url, closed when the test ends.
func newPostgres(t *testing.T, url string, log *slog.Logger) *live.Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := live.NewPostgres(ctx, url, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func testLogger() (*slog.Logger, *lockedBuffer) {
	buf := new(lockedBuffer)
	return slog.New(slog.NewTextHandler(buf, nil)), buf
}

// next waits for one event on s.
func next(t *testing.T, name string, s *live.Subscription) claims.Event {
	t.Helper()
	select {
	case ev, ok := <-s.C:
		if !ok {
			t.Fatalf("%s: channel closed (%v) while waiting for an event", name, s.Err())
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no event within 10s", name)
	}
	panic("unreachable")
}

// closedWith waits for s's channel to close and returns why.
func closedWith(t *testing.T, s *live.Subscription, within time.Duration) error {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-s.C:
			if !ok {
				return s.Err()
			}
		case <-deadline:
			t.Fatalf("subscription still open after %v", within)
		}
	}
}

func sameEvent(t *testing.T, name string, got, want claims.Event) {
	t.Helper()
	if got.Type != want.Type || got.ClaimID != want.ClaimID || got.HolderID != want.HolderID ||
		got.AssigneeID != want.AssigneeID || got.Status != want.Status || !got.At.Equal(want.At) {
		t.Errorf("%s got %+v, want %+v", name, got, want)
	}
}

// TestPostgresAcrossBuses opens two buses on one database, as two nodes do:
// an event published on either reaches the subscribers of both, its own
// included, with every field intact.
func TestPostgresAcrossBuses(t *testing.T) {
	url := storetest.URL(t, store.Postgres)
	a, b := newPostgres(t, url, nil), newPostgres(t, url, nil)
	onA := a.Subscribe(live.Filter{All: true}, 16)
	onB := b.Subscribe(live.Filter{ClaimIDs: map[claims.ID]bool{"0123456789abcdef0123456789abcdef": true}}, 16)
	otherOnB := b.Subscribe(live.Filter{HolderID: "someone-else"}, 16)

	ev := claims.Event{Type: "claim.status_changed", ClaimID: "0123456789abcdef0123456789abcdef",
		HolderID: "fedcba9876543210fedcba9876543210", AssigneeID: "00112233445566778899aabbccddeeff",
		Status: claims.StatusApproved, At: time.Date(2026, 3, 1, 12, 30, 45, 123456000, time.UTC)}
	a.Publish(ev)
	sameEvent(t, "B's subscriber", next(t, "B", onB), ev)
	sameEvent(t, "A's own subscriber", next(t, "A", onA), ev)

	ev2 := ev
	ev2.Type, ev2.Status = "claim.filed", claims.StatusSubmitted
	b.Publish(ev2)
	sameEvent(t, "A's subscriber, from B", next(t, "A", onA), ev2)
	sameEvent(t, "B's own subscriber", next(t, "B", onB), ev2)
	if got, closed := drain(otherOnB); len(got) != 0 || closed {
		t.Errorf("a subscriber of another holder got %v (closed %v)", got, closed)
	}
}

// TestPostgresIgnoresForeignPayloads: anyone who can connect may NOTIFY on
// the channel; what is not an event is skipped, and the bus keeps working.
func TestPostgresIgnoresForeignPayloads(t *testing.T) {
	url := storetest.URL(t, store.Postgres)
	log, logs := testLogger()
	a := newPostgres(t, url, log)
	s := a.Subscribe(live.Filter{All: true}, 16)
	conn := mustConnect(t, url)
	for _, p := range []string{"not json", `{"type":"x"}`, `{"claimId":"c1"}`} {
		if _, err := conn.Exec(context.Background(), "SELECT pg_notify($1, $2)", live.Channel, p); err != nil {
			t.Fatal(err)
		}
	}
	ev := event("c1", "h1", "", 1)
	a.Publish(ev)
	sameEvent(t, "after foreign payloads", next(t, "A", s), ev)
	if n := strings.Count(logs.String(), "ignoring malformed event notification"); n != 3 {
		t.Errorf("%d malformed payloads logged, want 3:\n%s", n, logs)
	}
}

// TestPostgresCloseFlushes: events published just before Close (a CLI
// command that exits) are still sent.
func TestPostgresCloseFlushes(t *testing.T) {
	url := storetest.URL(t, store.Postgres)
	a, b := newPostgres(t, url, nil), newPostgres(t, url, nil)
	s := b.Subscribe(live.Filter{All: true}, 128)
	for i := range 100 {
		a.Publish(event("c1", "h1", "", i))
	}
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v", d)
	}
	a.Publish(event("c1", "h1", "", 100)) // after Close: ignored, no panic
	for i := range 100 {
		if ev := next(t, "B", s); string(ev.Status) != "s"+strconv.Itoa(i) {
			t.Fatalf("event %d is %s", i, ev.Status)
		}
	}
	sub := a.Subscribe(live.Filter{All: true}, 1)
	if _, closed := drain(sub); !closed || sub.Err() != live.ErrClosed {
		t.Errorf("Subscribe after Close: closed %v, Err %v", closed, sub.Err())
	}
}

// TestPostgresReconnect kills the bus's connections from the server side.
// The listener reconnects, and tells the subscribers that were open during
// the outage to reload (ErrGap); events published after the reconnection
// arrive, through a sender that reconnected too.
func TestPostgresReconnect(t *testing.T) {
	url := storetest.URL(t, store.Postgres)
	log, logs := testLogger()
	a := newPostgres(t, url, log)
	other := newPostgres(t, url, nil)
	before := a.Subscribe(live.Filter{All: true}, 16)

	admin := mustConnect(t, url)
	terminate := func(app string) {
		t.Helper()
		var n int
		err := admin.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()`, app).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 { // a's and other's
			t.Fatalf("terminated %d %s connections, want 2", n, app)
		}
	}
	terminate(live.ListenerName)
	if err := closedWith(t, before, 15*time.Second); err != live.ErrGap {
		t.Fatalf("subscriber open during the outage closed with %v, want ErrGap", err)
	}
	if !strings.Contains(logs.String(), "event listener reconnected") {
		t.Errorf("reconnection not logged:\n%s", logs)
	}

	after := a.Subscribe(live.Filter{All: true}, 16)
	ev := event("c1", "h1", "", 1)
	other.Publish(ev) // other's listener may still be reconnecting; a's is back
	sameEvent(t, "from the other bus, after reconnection", next(t, "A", after), ev)

	terminate(live.SenderName)
	ev2 := event("c2", "h1", "", 2)
	a.Publish(ev2) // the sender finds its connection dead and reconnects
	sameEvent(t, "own event after the sender reconnected", next(t, "A", after), ev2)
	if err := after.Err(); err != nil {
		t.Errorf("subscriber made after the reconnection: %v", err)
	}
}

func mustConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPostgresQuietListener: a listener with nothing to hear wakes up to
// ping the server and keeps its connection (a wait that times out must not
// be taken for a dropped connection).
func TestPostgresQuietListener(t *testing.T) {
	defer live.SetPingEvery(50 * time.Millisecond)()
	url := storetest.URL(t, store.Postgres)
	log, logs := testLogger()
	a := newPostgres(t, url, log)
	s := a.Subscribe(live.Filter{All: true}, 4)
	time.Sleep(400 * time.Millisecond) // several wait timeouts and pings
	ev := event("c1", "h1", "", 1)
	a.Publish(ev)
	sameEvent(t, "after quiet periods", next(t, "A", s), ev)
	if strings.Contains(logs.String(), "disconnected") || s.Err() != nil {
		t.Errorf("the quiet listener reconnected (Err %v):\n%s", s.Err(), logs)
	}
}
