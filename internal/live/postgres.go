package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/openclaims/claims/internal/claims"
)

// pingEvery is how long the listener waits on a quiet connection before
// checking it still answers (a variable for tests).
var pingEvery = 30 * time.Second

// Channel is the PostgreSQL notification channel the bus uses.
const Channel = "claims_events"

// Application names of the bus's two connections, as pg_stat_activity shows
// them.
const (
	ListenerName = "claims-live-listener"
	SenderName   = "claims-live-sender"
)

const (
	queueSize    = 1024
	maxPayload   = 7999 // PostgreSQL's NOTIFY payload limit is 8000 bytes
	backoffMin   = 100 * time.Millisecond
	backoffMax   = 5 * time.Second
	flushTimeout = 2 * time.Second
	sendAttempts = 3
)

// Postgres is the bus for several nodes on one PostgreSQL database.
//
// Publish queues the event (a bounded queue: if it is full the event is
// dropped and logged, so a slow or unreachable database never blocks the
// workflow); one sender goroutine sends it with pg_notify on its own
// connection. A listener goroutine, on another connection, LISTENs on
// Channel and hands every notification, its own node's included, to an
// in-process Local that fans it out to this node's subscribers. Local
// subscribers therefore see the same order of events on every node.
//
// If the listener's connection drops, it reconnects with exponential
// backoff. Events raised while it was away are lost to this node, so once
// it listens again it closes every subscription open at that time with
// ErrGap: their clients reload and subscribe again, rather than silently
// showing stale state.
//
// Any role that can connect to the database can NOTIFY on Channel; the bus
// ignores payloads that are not well-formed events, and since events carry
// only ids and status, a forged one can at most make a client reload.
type Postgres struct {
	local  *Local
	cfg    *pgx.ConnConfig
	log    *slog.Logger
	queue  chan claims.Event
	stop   chan struct{} // closed by Close: no more Publish
	ctx    context.Context
	cancel context.CancelFunc
	sent   chan struct{} // closed when the sender goroutine returns
	wg     sync.WaitGroup
	once   sync.Once

	dropped   atomic.Int64 // events dropped since the last one sent
	pingEvery time.Duration
}

var _ Bus = (*Postgres)(nil)

// NewPostgres connects the bus to the database at url: it opens the
// listener and the sender connections and LISTENs before returning, so a
// wrong URL fails here. ctx bounds only these first connections; the bus
// runs until Close.
func NewPostgres(ctx context.Context, url string, log *slog.Logger) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("live: parse database url: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Postgres{local: NewLocal(), cfg: cfg, log: log.With("component", "live"),
		queue: make(chan claims.Event, queueSize), stop: make(chan struct{}), sent: make(chan struct{}),
		pingEvery: pingEvery}
	listener, err := b.listen(ctx)
	if err != nil {
		return nil, err
	}
	sender, err := b.connect(ctx, SenderName)
	if err != nil {
		listener.Close(context.Background())
		return nil, err
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(2)
	go b.runListener(listener)
	go b.runSender(sender)
	return b, nil
}

// Publish queues ev for pg_notify and returns at once. When the queue is
// full (the database is slow or unreachable) ev is dropped and the drop
// logged. After Close it does nothing.
func (b *Postgres) Publish(ev claims.Event) {
	select {
	case <-b.stop:
		return
	default:
	}
	select {
	case b.queue <- ev:
	default:
		if b.dropped.Add(1) == 1 {
			b.log.Warn("event queue full; dropping events", "claim_id", ev.ClaimID)
		}
	}
}

// Subscribe registers a subscriber on this node; see Bus.Subscribe.
func (b *Postgres) Subscribe(f Filter, buffer int) *Subscription {
	return b.local.Subscribe(f, buffer)
}

// Close sends what is still queued (for up to two seconds), stops both
// goroutines, closes the connections and every subscription.
func (b *Postgres) Close() error {
	b.once.Do(func() {
		close(b.stop)
		select { // let the sender flush the queue
		case <-b.sent:
		case <-time.After(flushTimeout):
		}
		b.cancel()
		b.wg.Wait()
		b.local.Close()
	})
	return nil
}

// wireEvent is the NOTIFY payload: ids, status and time only.
type wireEvent struct {
	Type       string    `json:"type"`
	ClaimID    claims.ID `json:"claimId"`
	HolderID   claims.ID `json:"holderId,omitempty"`
	AssigneeID claims.ID `json:"assigneeId,omitempty"`
	Status     string    `json:"status,omitempty"`
	At         time.Time `json:"at"`
}

func encode(ev claims.Event) (string, error) {
	p, err := json.Marshal(wireEvent{Type: ev.Type, ClaimID: ev.ClaimID, HolderID: ev.HolderID,
		AssigneeID: ev.AssigneeID, Status: string(ev.Status), At: ev.At})
	if err != nil {
		return "", err
	}
	if len(p) > maxPayload {
		return "", fmt.Errorf("event payload of %d bytes is over the NOTIFY limit", len(p))
	}
	return string(p), nil
}

func decode(payload string) (claims.Event, error) {
	var w wireEvent
	if err := json.Unmarshal([]byte(payload), &w); err != nil {
		return claims.Event{}, err
	}
	if w.Type == "" || w.ClaimID == "" {
		return claims.Event{}, errors.New("event without type or claim id")
	}
	return claims.Event{Type: w.Type, ClaimID: w.ClaimID, HolderID: w.HolderID, AssigneeID: w.AssigneeID,
		Status: claims.Status(w.Status), At: w.At}, nil
}

func (b *Postgres) connect(ctx context.Context, name string) (*pgx.Conn, error) {
	cfg := b.cfg.Copy()
	cfg.RuntimeParams["application_name"] = name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("live: connect %s: %w", name, err)
	}
	return conn, nil
}

// listen opens the listener connection and subscribes it to Channel.
func (b *Postgres) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := b.connect(ctx, ListenerName)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("live: listen: %w", err)
	}
	return conn, nil
}

// runListener delivers notifications to the local bus until Close,
// reconnecting when the connection fails.
func (b *Postgres) runListener(conn *pgx.Conn) {
	defer b.wg.Done()
	for {
		err := b.receive(conn)
		conn.Close(context.Background())
		if b.ctx.Err() != nil {
			return
		}
		b.log.Warn("event listener disconnected; reconnecting", "err", err)
		conn = b.relisten()
		if conn == nil {
			return // closed while reconnecting
		}
		b.log.Info("event listener reconnected")
		// Events raised while we were away never reached this node's
		// subscribers: make them reload instead of showing stale state.
		b.local.dropAll(ErrGap)
	}
}

// receive waits for notifications on conn and publishes them locally. It
// returns when the connection fails or the bus closes. A quiet connection
// is pinged every b.pingEvery, so a half-open TCP connection is noticed.
func (b *Postgres) receive(conn *pgx.Conn) error {
	for {
		ctx, cancel := context.WithTimeout(b.ctx, b.pingEvery)
		n, err := conn.WaitForNotification(ctx)
		cancel()
		switch {
		case err == nil:
			ev, derr := decode(n.Payload)
			if derr != nil {
				b.log.Warn("ignoring malformed event notification", "err", derr)
				continue
			}
			b.local.Publish(ev)
		case b.ctx.Err() != nil:
			return b.ctx.Err()
		case pgconn.Timeout(err) && !conn.IsClosed():
			// A timeout sets a deadline on the socket without closing
			// the connection; check it still answers.
			pctx, pcancel := context.WithTimeout(b.ctx, 10*time.Second)
			err = conn.Ping(pctx)
			pcancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// relisten reconnects with jittered exponential backoff until it succeeds
// or the bus closes (nil).
func (b *Postgres) relisten() *pgx.Conn {
	for attempt, wait := 1, backoffMin; ; attempt++ {
		if !b.sleep(wait) {
			return nil
		}
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		conn, err := b.listen(ctx)
		cancel()
		if err == nil {
			return conn
		}
		if b.ctx.Err() != nil {
			return nil
		}
		if attempt == 1 || attempt%10 == 0 {
			b.log.Warn("event listener reconnect failed", "attempt", attempt, "err", err)
		}
		wait = min(2*wait, backoffMax)
	}
}

// sleep waits about d (±25%), or returns false at once if the bus closes.
func (b *Postgres) sleep(d time.Duration) bool {
	d = d*3/4 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}

// runSender sends queued events with pg_notify, one at a time and in
// order, reconnecting when needed. After Close it sends what is still
// queued, until the queue is empty or the flush timeout cancels b.ctx.
func (b *Postgres) runSender(conn *pgx.Conn) {
	defer b.wg.Done()
	defer close(b.sent)
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		var ev claims.Event
		select {
		case ev = <-b.queue:
		case <-b.stop:
			select {
			case ev = <-b.queue:
			default:
				return // closed and drained
			}
		}
		payload, err := encode(ev)
		if err != nil {
			b.log.Error("event not sent", "claim_id", ev.ClaimID, "err", err)
			continue
		}
		conn = b.send(conn, payload)
		if b.ctx.Err() != nil {
			return
		}
	}
}

// send notifies payload on conn (reconnecting if conn is nil or fails),
// trying a few times before dropping the event. It returns the connection
// to use next (nil if none).
func (b *Postgres) send(conn *pgx.Conn, payload string) *pgx.Conn {
	wait := backoffMin
	var err error
	for attempt := 1; attempt <= sendAttempts; attempt++ {
		if conn == nil {
			ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
			conn, err = b.connect(ctx, SenderName)
			cancel()
		}
		if conn != nil {
			ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
			_, err = conn.Exec(ctx, "SELECT pg_notify($1, $2)", Channel, payload)
			cancel()
			if err == nil {
				if n := b.dropped.Swap(0); n > 0 {
					b.log.Warn("events dropped while the queue was full", "count", n)
				}
				return conn
			}
			if conn.IsClosed() || !isQueryError(err) {
				conn.Close(context.Background())
				conn = nil
			}
		}
		if b.ctx.Err() != nil || !b.sleep(wait) {
			break
		}
		wait = min(2*wait, backoffMax)
	}
	b.log.Error("event not sent", "err", err)
	return conn
}

// isQueryError reports an error the server returned for a statement that
// leaves the connection usable.
func isQueryError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Severity != "FATAL" && pgErr.Severity != "PANIC"
}
