// Package live is the event bus: it carries claims.Event values, announced
// by the workflow after a change commits, to the parts of the server that
// stream them to users (the WebSocket edge).
//
// Two implementations share the Bus interface. Local fans events out inside
// one process (SQLite, a single node). Postgres sends every event through
// PostgreSQL LISTEN/NOTIFY, so an event raised on one node reaches the
// subscribers of every node, including its own.
//
// The bus never slows the publisher: Publish does not block, and a
// subscriber that does not keep up is dropped (its channel closed) rather
// than delaying the others. Delivery is best effort; a subscriber whose
// channel closes has possibly missed events and must reload what it shows
// from the API, then subscribe again (Subscription.Err says why it closed).
//
// Events carry ids, status and time only, never personal data: whoever
// receives one fetches the details through the API, which checks access
// and audits the read. This package must not import store, workflow or
// anything that holds personal data.
package live

import (
	"errors"
	"sync"

	"github.com/openclaims/claims/internal/claims"
)

// Bus delivers events to the subscribers whose filter matches them.
// Workflow's Publisher is the publishing half.
type Bus interface {
	// Publish hands ev to the bus and returns at once; it never blocks
	// the caller (the workflow, right after a commit).
	Publish(ev claims.Event)
	// Subscribe returns a subscription receiving the events that match f,
	// with a channel of the given buffer (at least 1). A subscriber whose
	// buffer is full when an event arrives is dropped: its channel is
	// closed and Err reports ErrTooSlow. One slow reader never delays the
	// publisher or the other subscribers.
	Subscribe(f Filter, buffer int) *Subscription
	// Close closes every subscription (Err reports ErrClosed) and stops
	// the bus; later Publish calls are ignored and later subscriptions
	// are closed at once.
	Close() error
}

// Reasons a subscription's channel was closed, from Subscription.Err.
var (
	// ErrTooSlow: the subscriber's buffer was full when an event arrived.
	ErrTooSlow = errors.New("live: subscriber too slow; dropped")
	// ErrClosed: the bus was closed.
	ErrClosed = errors.New("live: bus closed")
	// ErrGap: the bus lost its connection to the database and has
	// re-established it; events raised meanwhile were not delivered.
	ErrGap = errors.New("live: events may have been missed; reload and subscribe again")
)

// Filter selects events. A subscription receives an event when any of the
// set fields matches it: the claim is in ClaimIDs, or the event's holder is
// HolderID, or its assignee is AssigneeID, or All is set. An empty filter
// matches nothing. The bus does no access control: the caller builds the
// filter from what its user may read.
type Filter struct {
	ClaimIDs   map[claims.ID]bool
	HolderID   claims.ID
	AssigneeID claims.ID
	All        bool
}

// Subscription is one subscriber's stream of events.
type Subscription struct {
	// C receives the matching events, in publication order. It is closed
	// when the subscription ends, for whatever reason (see Err).
	C <-chan claims.Event

	c      chan claims.Event
	bus    *Local
	claims []claims.ID // indexed keys, for removal
	holder claims.ID
	assign claims.ID
	all    bool
	seen   uint64 // last Publish generation that delivered to it (bus.mu)
	done   bool   // bus.mu
	err    error  // bus.mu
}

// Close ends the subscription and closes C. It is safe to call more than
// once, and after the bus closed the subscription itself.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	s.bus.removeLocked(s, nil)
}

// Err reports why C was closed: ErrTooSlow, ErrClosed, ErrGap, or nil if the
// subscriber closed it itself (or it is still open).
func (s *Subscription) Err() error {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.err
}

type subSet map[*Subscription]struct{}

// Local is the in-process bus. Its zero value is not usable; call NewLocal.
//
// Subscribers are indexed by claim, holder and assignee, so Publish costs
// the number of matching subscribers, not the number of subscribers.
type Local struct {
	mu         sync.Mutex
	closed     bool
	gen        uint64
	all        subSet
	byClaim    map[claims.ID]subSet
	byHolder   map[claims.ID]subSet
	byAssignee map[claims.ID]subSet
}

var _ Bus = (*Local)(nil)

// NewLocal returns an empty in-process bus.
func NewLocal() *Local {
	return &Local{all: subSet{}, byClaim: map[claims.ID]subSet{},
		byHolder: map[claims.ID]subSet{}, byAssignee: map[claims.ID]subSet{}}
}

// Publish delivers ev to every matching subscriber without blocking: a
// subscriber whose buffer is full is dropped (channel closed, ErrTooSlow)
// rather than allowed to stall the workflow and every other subscriber.
// Its client reconnects and reloads.
func (b *Local) Publish(ev claims.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.gen++ // a subscriber matching on several fields gets the event once
	b.deliverLocked(b.all, ev)
	b.deliverLocked(b.byClaim[ev.ClaimID], ev)
	if ev.HolderID != "" {
		b.deliverLocked(b.byHolder[ev.HolderID], ev)
	}
	if ev.AssigneeID != "" {
		b.deliverLocked(b.byAssignee[ev.AssigneeID], ev)
	}
}

func (b *Local) deliverLocked(set subSet, ev claims.Event) {
	for s := range set { // deleting during range is allowed
		if s.seen == b.gen {
			continue
		}
		s.seen = b.gen
		select {
		case s.c <- ev:
		default:
			b.removeLocked(s, ErrTooSlow)
		}
	}
}

// Subscribe registers a subscriber; see Bus.Subscribe. A buffer below 1 is
// taken as 1. The filter is copied: changing f.ClaimIDs later has no effect.
func (b *Local) Subscribe(f Filter, buffer int) *Subscription {
	c := make(chan claims.Event, max(buffer, 1))
	s := &Subscription{C: c, c: c, bus: b, holder: f.HolderID, assign: f.AssigneeID, all: f.All}
	for id, ok := range f.ClaimIDs {
		if ok && id != "" {
			s.claims = append(s.claims, id)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		s.done, s.err = true, ErrClosed
		close(c)
		return s
	}
	if s.all {
		b.all[s] = struct{}{}
	}
	for _, id := range s.claims {
		add(b.byClaim, id, s)
	}
	if s.holder != "" {
		add(b.byHolder, s.holder, s)
	}
	if s.assign != "" {
		add(b.byAssignee, s.assign, s)
	}
	return s
}

// Close closes every subscription with ErrClosed. It always returns nil.
func (b *Local) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.dropAllLocked(ErrClosed)
	return nil
}

// dropAll closes every current subscription with reason, leaving the bus
// open for new ones.
func (b *Local) dropAll(reason error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropAllLocked(reason)
}

func (b *Local) dropAllLocked(reason error) {
	for _, idx := range []map[claims.ID]subSet{b.byClaim, b.byHolder, b.byAssignee, {"": b.all}} {
		for _, set := range idx {
			for s := range set {
				b.removeLocked(s, reason)
			}
		}
	}
}

// removeLocked unindexes s and closes its channel, once.
func (b *Local) removeLocked(s *Subscription, reason error) {
	if s.done {
		return
	}
	s.done, s.err = true, reason
	delete(b.all, s)
	for _, id := range s.claims {
		remove(b.byClaim, id, s)
	}
	if s.holder != "" {
		remove(b.byHolder, s.holder, s)
	}
	if s.assign != "" {
		remove(b.byAssignee, s.assign, s)
	}
	close(s.c)
}

func add(idx map[claims.ID]subSet, id claims.ID, s *Subscription) {
	set := idx[id]
	if set == nil {
		set = subSet{}
		idx[id] = set
	}
	set[s] = struct{}{}
}

func remove(idx map[claims.ID]subSet, id claims.ID, s *Subscription) {
	if set := idx[id]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(idx, id)
		}
	}
}
