package api

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/live"
	"github.com/openclaims/claims/internal/web"
	"github.com/openclaims/claims/internal/workflow"
)

// The live channel: GET /api/v1/ws upgrades to a WebSocket that streams
// claim events (ids, status and time, never personal data) to a signed-in
// user, for the claims that user may read. docs/live.md is the protocol
// for client authors; this file is the server side.

// Subprotocol is the protocol the server speaks (and the only one it echoes
// back); the access token travels as a second offered subprotocol,
// "bearer.<token>", which is never echoed.
const (
	Subprotocol  = "claims.v1"
	bearerPrefix = "bearer."
)

// LiveOptions configure the live channel. Zero values take the defaults.
type LiveOptions struct {
	// Origins are exact origins ("https://app.example.com") allowed besides
	// the server's own. A browser page of any other origin is refused.
	Origins     []string
	MaxPerUser  int           // open sockets per user, default 5
	MaxPerIP    int           // open sockets per client address, default 50
	AuthTimeout time.Duration // for the first-message token, default 5s
	Recheck     time.Duration // session re-check period, default 5s
	PingEvery   time.Duration // heartbeat, default 20s
	PongTimeout time.Duration // a ping not answered within this closes the socket, default 10s
	// Buffer is how many events may wait for a socket before it counts as
	// too slow and is dropped, default 32.
	Buffer int
	// SendBuffer bounds the kernel's send buffer per socket (bytes), so a
	// client that stops reading is noticed after a few dozen events rather
	// than megabytes, and 10,000 idle sockets don't pin autotuned buffers.
	// Default 32 KiB; negative keeps the system's.
	SendBuffer int
}

func (o *LiveOptions) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxPerUser, 5)
	def(&o.MaxPerIP, 50)
	def(&o.Buffer, 32)
	if o.SendBuffer == 0 {
		o.SendBuffer = 32 << 10
	}
	defDur(&o.AuthTimeout, 5*time.Second)
	defDur(&o.Recheck, 5*time.Second)
	defDur(&o.PingEvery, 20*time.Second)
	defDur(&o.PongTimeout, 10*time.Second)
}

// Limits inside one socket.
const (
	wsReadLimit        = 8 << 10 // a client message is a small JSON object
	wsMaxClaims        = 100     // claims followed one by one per socket
	wsMaxMessagesPerS  = 20      // client messages per second before the socket is closed
	wsWriteTimeout     = 10 * time.Second
	wsDeliveryRecheck  = time.Second // an event is delivered only on a session checked this recently
	wsCheckTimeout     = 5 * time.Second
	wsRecentEventsSeen = 8 // duplicates suppressed (an event matching two subscriptions, a resubscription)
)

// liveHub holds the open sockets of one server: the per-user and per-IP
// counts, the shared session checks, and shutdown.
type liveHub struct {
	bus      live.Bus
	opt      LiveOptions
	origins  map[string]bool
	patterns []string

	mu       sync.Mutex
	closed   bool
	perUser  map[claims.ID]int
	perIP    map[string]int
	conns    map[*wsConn]struct{}
	sessions map[string]*sessionCheck // by access token
}

// SetLive enables GET /api/v1/ws on bus. Without it the route answers 404.
func (h *Handler) SetLive(bus live.Bus, opt LiveOptions) {
	opt.defaults()
	hub := &liveHub{bus: bus, opt: opt, origins: map[string]bool{}, perUser: map[claims.ID]int{},
		perIP: map[string]int{}, conns: map[*wsConn]struct{}{}, sessions: map[string]*sessionCheck{}}
	for _, o := range opt.Origins {
		o = strings.TrimSuffix(strings.ToLower(o), "/")
		hub.origins[o] = true
		hub.patterns = append(hub.patterns, o) // coder/websocket's own check: scheme://host
	}
	h.live = hub
}

// CloseLive closes every open socket with 1001 (going away) and refuses new
// ones. http.Server.Shutdown does not see hijacked connections; serve
// registers this with RegisterOnShutdown.
func (h *Handler) CloseLive() {
	hub := h.live
	if hub == nil {
		return
	}
	hub.mu.Lock()
	defer hub.mu.Unlock()
	hub.closed = true
	for c := range hub.conns {
		c.kill()
	}
}

// LiveStats reports the open sockets (for the load benchmark).
func (h *Handler) LiveStats() (sockets int) {
	if h.live == nil {
		return 0
	}
	h.live.mu.Lock()
	defer h.live.mu.Unlock()
	return len(h.live.conns)
}

var errLiveOff = claims.Errorf(claims.NotFound, "Live updates are not enabled on this server.")

// websocket authenticates, then upgrades. Everything that can be refused
// is refused with an HTTP problem before the upgrade.
func (h *Handler) websocket(w http.ResponseWriter, r *http.Request) error {
	hub := h.live
	if hub == nil {
		return errLiveOff
	}
	if r.URL.RawQuery != "" {
		// URLs end up in logs, proxies and browser history: a token there
		// is a token leaked. Refuse any query, so none is ever "accepted".
		return claims.Errorf(claims.Invalid, "Do not put anything in the URL of /api/v1/ws: send the access token as the subprotocol %s<token> or in the first message.", bearerPrefix)
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") || !headerHasToken(r.Header, "Connection", "upgrade") {
		return claims.Errorf(claims.Invalid, "/api/v1/ws speaks WebSocket only (see docs/live.md).")
	}
	if err := hub.checkOrigin(r); err != nil {
		return err
	}
	var (
		token   string
		offered bool
		protos  = headerTokens(r.Header, "Sec-WebSocket-Protocol")
	)
	for _, p := range protos {
		switch {
		case p == Subprotocol:
			offered = true
		case strings.HasPrefix(p, bearerPrefix):
			token = strings.TrimPrefix(p, bearerPrefix)
		}
	}
	if len(protos) > 0 && !offered {
		return claims.Errorf(claims.Invalid, "Offer the %s subprotocol.", Subprotocol)
	}
	if authz := r.Header.Get("Authorization"); token == "" && strings.HasPrefix(authz, "Bearer ") && len(authz) <= 4096 {
		token = strings.TrimPrefix(authz, "Bearer ") // non-browser clients may use the header
	}
	if len(token) > 4096 {
		return claims.Errorf(claims.Unauthenticated, "The access token is not valid.")
	}
	var p claims.Principal
	if token != "" {
		var err error
		if p, err = h.flow.Authenticate(r.Context(), token); err != nil {
			return err
		}
		if p.MustEnrollMFA() {
			return h.flow.StepUp(p)
		}
		web.SetLogUser(r.Context(), p.UserID)
	}
	ip := web.ClientIP(r.Context())
	if ip == "" {
		ip, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	conn := &wsConn{hub: hub, flow: h.flow, log: h.log, ip: ip, token: token, p: p,
		claims: map[claims.ID]bool{}, done: make(chan struct{})}
	if err := hub.admit(conn); err != nil {
		return err
	}
	defer hub.leave(conn)

	// The server's read and write timeouts are for requests; a socket
	// lives for hours. Heartbeats and write timeouts guard it instead.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	c, err := websocket.Accept(&sendBufferWriter{ResponseWriter: w, size: hub.opt.SendBuffer}, r, &websocket.AcceptOptions{
		Subprotocols:    []string{Subprotocol},
		OriginPatterns:  hub.patterns,
		CompressionMode: websocket.CompressionDisabled, // small messages; no compression oracles
	})
	if err != nil {
		return nil // Accept answered the client
	}
	c.SetReadLimit(wsReadLimit)
	conn.c = c
	conn.run()
	return nil
}

// checkOrigin allows requests without Origin (non-browser clients; every
// browser sends one on a WebSocket handshake), the server's own origin
// (https and the Host the client asked for: an http:// page on the same host
// is another origin), and the configured ones.
func (hub *liveHub) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	o := strings.ToLower(origin)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if o == scheme+"://"+strings.ToLower(r.Host) || hub.origins[o] {
		return nil
	}
	return claims.Errorf(claims.Forbidden, "WebSocket connections from this origin are not allowed.")
}

func (hub *liveHub) admit(c *wsConn) error {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	if hub.closed {
		return claims.Errorf(claims.NotFound, "The server is shutting down.")
	}
	if hub.perIP[c.ip] >= hub.opt.MaxPerIP {
		return tooMany("from this address")
	}
	if c.p.UserID != "" && hub.perUser[c.p.UserID] >= hub.opt.MaxPerUser {
		return tooMany("for this account")
	}
	hub.perIP[c.ip]++
	if c.p.UserID != "" {
		hub.perUser[c.p.UserID]++
		c.counted = true
	}
	hub.conns[c] = struct{}{}
	c.refSession()
	return nil
}

// admitUser counts an account's socket authenticated by its first message.
func (hub *liveHub) admitUser(c *wsConn) bool {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	if hub.perUser[c.p.UserID] >= hub.opt.MaxPerUser {
		return false
	}
	hub.perUser[c.p.UserID]++
	c.counted = true
	c.refSession()
	return true
}

func (hub *liveHub) leave(c *wsConn) {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	delete(hub.conns, c)
	if hub.perIP[c.ip]--; hub.perIP[c.ip] <= 0 {
		delete(hub.perIP, c.ip)
	}
	if c.counted {
		if hub.perUser[c.p.UserID]--; hub.perUser[c.p.UserID] <= 0 {
			delete(hub.perUser, c.p.UserID)
		}
	}
	if c.session != nil {
		if c.session.refs--; c.session.refs <= 0 {
			delete(hub.sessions, c.token)
		}
	}
}

func tooMany(what string) error {
	return &claims.Error{Kind: claims.RateLimited, Message: "Too many open live connections " + what + "; close one first.",
		Extra: map[string]any{"retry_after": 30}}
}

// sessionCheck is the last re-check of one access token, shared by the
// sockets opened with it, so N sockets of one sign-in cost one check.
type sessionCheck struct {
	refs int // hub.mu
	mu   sync.Mutex
	at   time.Time
	p    claims.Principal
	err  error
}

// refSession attaches c to its token's shared check (hub.mu held).
func (c *wsConn) refSession() {
	if c.token == "" || c.session != nil {
		return
	}
	s := c.hub.sessions[c.token]
	if s == nil {
		s = &sessionCheck{at: time.Now(), p: c.p}
		c.hub.sessions[c.token] = s
	}
	s.refs++
	c.session = s
}

// check returns the session's principal as checked no longer than maxAge
// ago. Only an authentication failure is final: a database hiccup keeps the
// socket (closing thousands at once would just bring them back at once).
func (c *wsConn) check(maxAge time.Duration) (claims.Principal, error) {
	s := c.session
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || time.Since(s.at) < maxAge {
		return s.p, s.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), wsCheckTimeout)
	defer cancel()
	p, err := c.flow.CheckSession(ctx, c.token)
	switch claims.KindOf(err) {
	case claims.Unauthenticated:
		s.err = err
	case claims.Internal:
		if err != nil {
			c.log.Warn("live: session re-check failed; keeping the socket", "err", err)
			return s.p, nil
		}
		s.p = p
	default:
		s.err = err
	}
	s.at = time.Now()
	return s.p, s.err
}

// wsConn is one open socket.
type wsConn struct {
	hub   *liveHub
	flow  *workflow.Service
	log   *slog.Logger
	c     *websocket.Conn
	ip    string
	token string

	counted bool          // hub.mu: counted in perUser
	session *sessionCheck // hub.mu to attach
	done    chan struct{} // closed by kill
	once    sync.Once

	// Owned by run's goroutine.
	p      claims.Principal
	claims map[claims.ID]bool
	own    bool
	queue  bool
	sub    *live.Subscription
	recent [wsRecentEventsSeen]claims.Event
	ri     int
}

func (c *wsConn) kill() { c.once.Do(func() { close(c.done) }) }

// closeError ends the socket with a status and a reason the client can show.
type closeError struct {
	code   websocket.StatusCode
	reason string
}

func (e *closeError) Error() string { return e.reason }

var (
	errSessionEnded = &closeError{websocket.StatusPolicyViolation, "session ended"}
	errPermissions  = &closeError{websocket.StatusPolicyViolation, "permissions changed"}
	errNoAuth       = &closeError{websocket.StatusPolicyViolation, "authentication required"}
	errAuthFailed   = &closeError{websocket.StatusPolicyViolation, "authentication failed"}
	errTooManyUser  = &closeError{websocket.StatusPolicyViolation, "too many connections for this account"}
	errFlood        = &closeError{websocket.StatusPolicyViolation, "too many messages"}
	errBadMessage   = &closeError{websocket.StatusUnsupportedData, "messages must be JSON text"}
	errTooSlow      = &closeError{websocket.StatusTryAgainLater, "too slow: events were not read in time; reload and reconnect"}
	errGap          = &closeError{websocket.StatusServiceRestart, "events may have been missed; reload and reconnect"}
	errGoingAway    = &closeError{websocket.StatusGoingAway, "server shutting down"}
)

// clientMsg is any message a client sends.
type clientMsg struct {
	Type    string `json:"type"`
	Token   string `json:"token,omitempty"`
	ClaimID string `json:"claimId,omitempty"`
	Scope   string `json:"scope,omitempty"`
}

// serverMsg is any message the server sends. Events carry ids, status and
// time only.
type serverMsg struct {
	Type     string `json:"type"`
	Event    string `json:"event,omitempty"`
	ClaimID  string `json:"claimId,omitempty"`
	Scope    string `json:"scope,omitempty"`
	Status   string `json:"status,omitempty"`
	At       string `json:"at,omitempty"`
	Code     string `json:"code,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}

type readResult struct {
	b   []byte
	err error
}

func (c *wsConn) run() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := make(chan readResult, 1)
	go func() {
		for {
			typ, b, err := c.c.Read(ctx)
			if err == nil && typ != websocket.MessageText {
				err = errBadMessage
			}
			select {
			case in <- readResult{b, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	err := c.loop(ctx, in)
	if c.sub != nil {
		c.sub.Close()
	}
	var ce *closeError
	switch {
	case errors.As(err, &ce):
		if ce == errTooSlow {
			// The peer isn't reading: the close frame may never get
			// through, so don't wait for its answer.
			go c.c.Close(ce.code, ce.reason)
			time.Sleep(100 * time.Millisecond)
			c.c.CloseNow()
			return
		}
		c.c.Close(ce.code, ce.reason)
	default:
		c.c.CloseNow() // the peer left, or a write failed
	}
}

func (c *wsConn) loop(ctx context.Context, in <-chan readResult) error {
	opt := c.hub.opt
	if c.p.IsZero() {
		if err := c.authenticate(in); err != nil {
			return err
		}
	}
	if err := c.write(ctx, serverMsg{Type: "ready", Protocol: Subprotocol}); err != nil {
		return err
	}
	recheck := time.NewTicker(opt.Recheck)
	defer recheck.Stop()
	ping := time.NewTicker(opt.PingEvery)
	defer ping.Stop()
	window, count := time.Now(), 0
	for {
		var events <-chan claims.Event
		if c.sub != nil {
			events = c.sub.C
		}
		select {
		case <-c.done:
			return errGoingAway
		case r := <-in:
			if r.err != nil {
				return r.err
			}
			if time.Since(window) > time.Second {
				window, count = time.Now(), 0
			}
			if count++; count > wsMaxMessagesPerS {
				return errFlood
			}
			if err := c.handle(ctx, r.b); err != nil {
				return err
			}
		case ev, ok := <-events:
			if !ok {
				return c.subscriptionEnded()
			}
			if err := c.deliver(ctx, ev); err != nil {
				return err
			}
		case <-recheck.C:
			if err := c.recheck(opt.Recheck); err != nil {
				return err
			}
		case <-ping.C:
			go func() {
				pctx, cancel := context.WithTimeout(ctx, opt.PongTimeout)
				defer cancel()
				if err := c.c.Ping(pctx); err != nil {
					c.c.CloseNow() // dead peer: the reader fails and run returns
				}
			}()
		}
	}
}

// authenticate waits for {"type":"auth","token":...} as the first message.
func (c *wsConn) authenticate(in <-chan readResult) error {
	timer := time.NewTimer(c.hub.opt.AuthTimeout)
	defer timer.Stop()
	var r readResult
	select {
	case r = <-in:
	case <-timer.C:
		return errNoAuth
	case <-c.done:
		return errGoingAway
	}
	if r.err != nil {
		return r.err
	}
	var m clientMsg
	if json.Unmarshal(r.b, &m) != nil || m.Type != "auth" || m.Token == "" || len(m.Token) > 4096 {
		return errNoAuth
	}
	ctx, cancel := context.WithTimeout(context.Background(), wsCheckTimeout)
	defer cancel()
	p, err := c.flow.Authenticate(ctx, m.Token)
	if err != nil || p.MustEnrollMFA() {
		return errAuthFailed
	}
	c.p, c.token = p, m.Token
	if !c.hub.admitUser(c) {
		return errTooManyUser
	}
	return nil
}

func (c *wsConn) recheck(maxAge time.Duration) error {
	p, err := c.check(maxAge)
	if err != nil {
		return errSessionEnded
	}
	if !workflow.SamePermissions(c.p, p) {
		return errPermissions
	}
	return nil
}

func (c *wsConn) subscriptionEnded() error {
	switch c.sub.Err() {
	case live.ErrTooSlow:
		return errTooSlow
	case live.ErrGap:
		return errGap
	default:
		return errGoingAway
	}
}

// deliver sends ev if the session still holds and ev is for something the
// socket follows and its user may read.
func (c *wsConn) deliver(ctx context.Context, ev claims.Event) error {
	for _, seen := range c.recent {
		if seen == ev {
			return nil
		}
	}
	if err := c.recheck(wsDeliveryRecheck); err != nil {
		return err
	}
	visible := workflow.EventVisible(c.p, ev)
	if c.claims[ev.ClaimID] && !visible {
		// The user can no longer read this claim (a processor's claim went
		// to someone else): stop following it.
		delete(c.claims, ev.ClaimID)
		c.resubscribe(ctx)
		return c.write(ctx, serverMsg{Type: "unsubscribed", ClaimID: string(ev.ClaimID), Code: "no_access"})
	}
	match := c.claims[ev.ClaimID] || c.own && workflow.InScope(c.p, workflow.ScopeOwn, ev) ||
		c.queue && workflow.InScope(c.p, workflow.ScopeQueue, ev)
	if !visible || !match {
		return nil
	}
	c.recent[c.ri] = ev
	c.ri = (c.ri + 1) % len(c.recent)
	return c.write(ctx, serverMsg{Type: "event", Event: ev.Type, ClaimID: string(ev.ClaimID), Status: string(ev.Status), At: stamp(ev.At)})
}

// handle answers one client message.
func (c *wsConn) handle(ctx context.Context, b []byte) error {
	var m clientMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return c.write(ctx, serverMsg{Type: "error", Code: "invalid", Detail: "Messages are JSON objects with a type (see docs/live.md)."})
	}
	switch m.Type {
	case "ping":
		return c.write(ctx, serverMsg{Type: "pong"})
	case "auth":
		return c.write(ctx, serverMsg{Type: "error", Code: "invalid", Detail: "Already authenticated."})
	case "subscribe", "unsubscribe":
	default:
		return c.write(ctx, serverMsg{Type: "error", Code: "invalid", Detail: "Unknown message type; use subscribe, unsubscribe or ping."})
	}
	sub := m.Type == "subscribe"
	switch {
	case m.ClaimID != "" && m.Scope == "":
		id := claims.ID(m.ClaimID)
		if !sub {
			if c.claims[id] {
				delete(c.claims, id)
				c.resubscribe(ctx)
			}
			return c.write(ctx, serverMsg{Type: "unsubscribed", ClaimID: m.ClaimID})
		}
		if !c.claims[id] && len(c.claims) >= wsMaxClaims {
			return c.write(ctx, serverMsg{Type: "error", Code: "too_many_subscriptions", ClaimID: m.ClaimID,
				Detail: "Follow at most 100 claims per connection, or subscribe to a scope."})
		}
		if err := c.recheck(wsDeliveryRecheck); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, wsCheckTimeout)
		status, err := c.flow.FollowClaim(cctx, c.p, id)
		cancel()
		if err != nil {
			return c.write(ctx, errorMsg(err, m.ClaimID, ""))
		}
		if !c.claims[id] {
			c.claims[id] = true
			c.resubscribe(ctx)
		}
		return c.write(ctx, serverMsg{Type: "subscribed", ClaimID: m.ClaimID, Status: string(status)})
	case m.Scope != "" && m.ClaimID == "":
		if err := workflow.CanFollowScope(c.p, m.Scope); err != nil {
			return c.write(ctx, errorMsg(err, "", m.Scope))
		}
		dst := &c.own
		if m.Scope == workflow.ScopeQueue {
			dst = &c.queue
		}
		if *dst != sub {
			*dst = sub
			c.resubscribe(ctx)
		}
		return c.write(ctx, serverMsg{Type: map[bool]string{true: "subscribed", false: "unsubscribed"}[sub], Scope: m.Scope})
	}
	return c.write(ctx, serverMsg{Type: "error", Code: "invalid", Detail: "Send either claimId or scope."})
}

func errorMsg(err error, claimID, scope string) serverMsg {
	k := claims.KindOf(err)
	detail := claims.MessageOf(err)
	if k == claims.Internal {
		detail = "Internal error; try again."
	}
	return serverMsg{Type: "error", Code: k.String(), Detail: detail, ClaimID: claimID, Scope: scope}
}

// resubscribe replaces the socket's bus subscription with one for what it
// now follows. The old subscription's queued events are still delivered
// (duplicates with the new one are suppressed), so nothing is lost in the
// switch.
func (c *wsConn) resubscribe(ctx context.Context) {
	f := live.Filter{All: c.queue}
	if c.own {
		f.HolderID = c.p.HolderID
	}
	if len(c.claims) > 0 {
		f.ClaimIDs = make(map[claims.ID]bool, len(c.claims))
		for id := range c.claims {
			f.ClaimIDs[id] = true
		}
	}
	old := c.sub
	c.sub = nil
	if f.All || f.HolderID != "" || len(f.ClaimIDs) > 0 {
		c.sub = c.hub.bus.Subscribe(f, c.hub.opt.Buffer)
	}
	if old == nil {
		return
	}
	old.Close()
	var pending []claims.Event
	for ev := range old.C {
		pending = append(pending, ev)
	}
	for _, ev := range pending {
		if c.deliver(ctx, ev) != nil {
			return // the next write or check fails the same way
		}
	}
}

func (c *wsConn) write(ctx context.Context, m serverMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, wsWriteTimeout)
	defer cancel()
	return c.c.Write(wctx, websocket.MessageText, b)
}

// sendBufferWriter bounds the kernel send buffer of the connection it
// hijacks (see LiveOptions.SendBuffer).
type sendBufferWriter struct {
	http.ResponseWriter
	size int
}

func (w *sendBufferWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *sendBufferWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil || w.size <= 0 {
		return conn, brw, err
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetWriteBuffer(w.size)
	}
	return conn, brw, nil
}

// headerTokens splits a comma-separated header into trimmed tokens.
func headerTokens(h http.Header, key string) []string {
	var out []string
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, t := range headerTokens(h, key) {
		if strings.EqualFold(t, token) {
			return true
		}
	}
	return false
}
