package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openclaims/claims/internal/store"
)

// TestClaimMessages: the policyholder and a processor exchange messages on
// a claim; anyone else gets the answer of a missing claim; the text is
// limited, sealed at rest, and absent from the live event and the audit
// log.
func TestClaimMessages(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, newEnv(t, store.SQLite))
	path := "/api/v1/claims/" + e.claim + "/messages"
	const secret = "My neighbour Jane Roe saw it happen"

	live := e.openWS(e.alice)
	wsSend(t, live, map[string]string{"type": "subscribe", "claimId": e.claim})
	wsAwait(t, live, "subscribed", "", e.claim)

	first := e.expect(e.do("POST", path, e.alice, map[string]string{"text": secret}), 201)
	if first.str("text") != secret || first.str("authorRole") != "customer" || first.str("claimId") != e.claim {
		t.Fatalf("posted: %s", first.raw)
	}
	_, raw := wsAwait(t, live, "event", "message.created", e.claim)
	if strings.Contains(string(raw), "Jane") || strings.Contains(string(raw), "neighbour") {
		t.Fatalf("message text in the event: %s", raw)
	}
	// The processor (the claim waits in the intake queue) answers.
	e.expect(e.do("POST", path, e.proc, map[string]string{"text": "Thanks, please upload the police report."}), 201)
	list := e.expect(e.do("GET", path, e.alice, nil), 200).items()
	if len(list) != 2 || list[0]["text"] != secret || list[1]["authorRole"] != "claims_processor" {
		t.Fatalf("messages: %v", list)
	}
	if n := len(e.expect(e.do("GET", path, e.proc, nil), 200).items()); n != 2 {
		t.Fatalf("processor sees %d messages", n)
	}
	page := e.expect(e.do("GET", path+"?limit=1", e.alice, nil), 200)
	next := page.str("next_cursor")
	if len(page.items()) != 1 || next == "" {
		t.Fatalf("first page: %s", page.raw)
	}
	if rest := e.expect(e.do("GET", path+"?limit=1&cursor="+next, e.alice, nil), 200).items(); len(rest) != 1 || rest[0]["authorRole"] != "claims_processor" {
		t.Fatalf("second page: %v", rest)
	}

	// The policyholder's subject-access export includes the messages.
	exp := e.expect(e.do("GET", "/api/v1/me/export", e.alice, nil), 200)
	if !strings.Contains(string(exp.raw), secret) || !strings.Contains(string(exp.raw), "please upload the police report") {
		t.Errorf("export lacks the claim's messages: %s", exp.raw)
	}

	// Bob: a foreign claim answers exactly like a missing one.
	missing := "/api/v1/claims/0123456789abcdef0123456789abcdef/messages"
	for _, m := range []string{"GET", "POST"} {
		body := map[string]string{"text": "hello"}
		foreign := e.expect(e.do(m, path, e.bob, body), 404)
		gone := e.expect(e.do(m, missing, e.bob, body), 404)
		if foreign.str("detail") != gone.str("detail") {
			t.Errorf("%s foreign %q vs missing %q", m, foreign.str("detail"), gone.str("detail"))
		}
	}
	e.expect(e.do("GET", path, "", nil), 401)

	// Limits: 2,000 characters (runes, not bytes), no card numbers, not empty.
	e.expect(e.do("POST", path, e.alice, map[string]string{"text": strings.Repeat("é", 2000)}), 201)
	long := e.expect(e.do("POST", path, e.alice, map[string]string{"text": strings.Repeat("é", 2001)}), 400)
	if !strings.Contains(string(long.raw), "max_length") {
		t.Errorf("too long: %s", long.raw)
	}
	card := e.expect(e.do("POST", path, e.alice, map[string]string{"text": "my card is 4111 1111 1111 1111"}), 400)
	if !strings.Contains(string(card.raw), "no_card_number") {
		t.Errorf("card number: %s", card.raw)
	}
	e.expect(e.do("POST", path, e.alice, map[string]string{"text": "  "}), 400)
	e.expect(e.do("POST", path, e.alice, map[string]any{"text": "x", "extra": 1}), 400)

	// Audited, without the text.
	trail := e.expect(e.do("GET", "/api/v1/audit?object="+e.claim+"&action=claim.message_posted", e.admin, nil), 200)
	if n := len(trail.items()); n != 3 {
		t.Errorf("%d claim.message_posted entries, want 3: %s", n, trail.raw)
	}
	if strings.Contains(string(trail.raw), "Jane") || strings.Contains(string(trail.raw), "police") {
		t.Errorf("message text in the audit log: %s", trail.raw)
	}
	reads := e.expect(e.do("GET", "/api/v1/audit?object="+e.claim+"&action=claim.messages_read", e.admin, nil), 200)
	if len(reads.items()) == 0 {
		t.Errorf("message reads are not audited")
	}

	// Sealed at rest: the text appears nowhere in the database files.
	files, _ := filepath.Glob(filepath.Join(e.dataDir, "claims.db*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("Jane Roe saw")) {
			t.Errorf("message text in clear in %s", filepath.Base(f))
		}
	}
}
