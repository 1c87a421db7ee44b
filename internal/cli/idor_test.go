package cli_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/openclaims/claims/internal/store"
)

// problemKey is a problem response without the fields that differ per
// request (instance, requestId): two answers with the same key are
// indistinguishable to a client.
func problemKey(r resp) string {
	m := map[string]any{}
	_ = json.Unmarshal(r.raw, &m)
	delete(m, "instance")
	delete(m, "requestId")
	b, _ := json.Marshal(m)
	return fmt.Sprintf("%d %s", r.status, b)
}

// TestIDOR probes every route with an {id} (and {docId}) with guessed,
// sequential-looking, foreign and malformed ids: a foreign object answers
// exactly as a missing one, on every surface. Lists with filters never
// show foreign rows; ordinary payloads can't carry role, status, owner,
// amount or permission fields. SQLite only (the same code runs on
// PostgreSQL in TestAccessMatrix).
func TestIDOR(t *testing.T) {
	w := newWorld(t, store.SQLite)
	s := w.s
	// The other customer's claim with a document, and one of their sessions.
	otherClaim := s.expect(s.do("POST", "/api/v1/claims", w.tok["other"], claimBody("POL-B", "700.00", w.nextDate(), true)), 201).str("id")
	otherDoc := s.expect(s.upload(w.tok["other"], otherClaim, "mine.pdf", "application/pdf", docPDF("Bob's invoice", 0), 0), 201).str("id")
	var otherSession string
	for _, x := range s.expect(s.do("GET", "/api/v1/sessions", w.tok["other"], nil), 200).items() {
		otherSession = x["id"].(string)
	}
	procClaim, procDoc := w.readClaim("proc") // assigned to proc: foreign to procNA
	ownClaim, _ := w.readClaim("proc")        // the owner's

	bodies := map[string]any{
		"withdraw": map[string]string{"reason": "x"}, "request-info": map[string]string{"message": "x"},
		"respond": map[string]string{"message": "x"}, "decide": map[string]string{"outcome": "approve"},
		"appeal": map[string]string{"reason": "x"}, "return-decision": map[string]string{"reason": "x"},
		"role": map[string]string{"role": "customer"}, "authority-limit": map[string]any{"limitMinor": 1},
		"messages": map[string]string{"text": "x"},
	}
	const guessed = "5f3c0e7a9b1d4c2e8f6a0b3c5d7e9f10"
	sequential := []string{"00000000000000000000000000000001", "00000000000000000000000000000002"}
	malformed := []string{"not-an-id", url.PathEscape("1' OR '1'='1"), strings.Repeat("f", 33), "5F3C0E7A9B1D4C2E8F6A0B3C5D7E9F10", "0x1", "-1"}
	// neighbour returns a "sequential-looking" id next to a real one.
	neighbour := func(id string) string {
		last := id[len(id)-1]
		if last == '0' {
			return id[:len(id)-1] + "1"
		}
		return id[:len(id)-1] + "0"
	}

	type probe struct {
		who      string
		foreign  string // a real id the caller must not reach ("" = none for this surface)
		docOwn   string // for {docId} routes: the claim the foreign document is probed under
		foreignD string
		want     int // status every variant must answer
	}
	for _, route := range routeList() {
		if !strings.Contains(route, "{id}") {
			continue
		}
		method, pattern, _ := strings.Cut(route, " ")
		var probes []probe
		switch {
		case strings.HasPrefix(pattern, "/api/v1/claims/{id}"):
			probes = []probe{{who: "owner", foreign: otherClaim, docOwn: ownClaim, foreignD: otherDoc, want: 404},
				{who: "procNA", foreign: procClaim, docOwn: procClaim, foreignD: procDoc, want: 404}}
			if staffOnly[pattern[strings.LastIndex(pattern, "/")+1:]] {
				probes[0].want = 403 // a customer lacks the permission: refused before any lookup
			}
		case strings.HasPrefix(pattern, "/api/v1/policies/{id}"):
			probes = []probe{{who: "owner", foreign: w.polBID, want: 404}, {who: "ai", foreign: w.polAID, want: 404}}
		case strings.HasPrefix(pattern, "/api/v1/sessions/{id}"):
			probes = []probe{{who: "owner", foreign: otherSession, want: 404}}
		case strings.HasPrefix(pattern, "/api/v1/delegations/{id}"):
			probes = []probe{{who: "owner", foreign: w.delegs["deleg"], want: 404}}
		case strings.HasPrefix(pattern, "/api/v1/users/{id}"):
			// Administrators reach every account: only missing ids; a
			// customer is refused whatever the id.
			probes = []probe{{who: "admin", want: 404}, {who: "owner", foreign: w.id["other"], want: 403}}
		case strings.HasPrefix(pattern, "/api/v1/erasure-requests/{id}"):
			probes = []probe{{who: "admin", want: 404}, {who: "owner", foreign: w.erasureRequest("owner"), want: 403}}
		default:
			t.Errorf("route %s has an {id} this test doesn't know how to probe: add it", route)
			continue
		}
		action := pattern[strings.LastIndex(pattern, "/")+1:]
		for _, pr := range probes {
			ids := append([]string{guessed}, sequential...)
			ids = append(ids, malformed...)
			if pr.foreign != "" {
				ids = append(ids, pr.foreign, neighbour(pr.foreign))
			}
			send := func(id, doc string) resp {
				path := strings.ReplaceAll(strings.ReplaceAll(pattern, "{id}", id), "{docId}", doc)
				if route == "POST /api/v1/claims/{id}/documents" {
					return s.upload(w.tok[pr.who], id, "probe.pdf", "application/pdf", docPDF("probe", 0), 0)
				}
				return s.do(method, path, w.tok[pr.who], bodies[action])
			}
			var base string
			for _, id := range ids {
				docs := []string{guessed}
				if strings.Contains(pattern, "{docId}") {
					docs = append(docs, "not-a-doc", pr.foreignD)
				}
				for _, doc := range docs {
					r := send(id, doc)
					if r.status != pr.want {
						t.Errorf("%s as %s, id %q doc %q: status %d, want %d: %s", route, pr.who, id, doc, r.status, pr.want, r.raw)
						continue
					}
					k := problemKey(r)
					if base == "" {
						base = k
					} else if k != base {
						t.Errorf("%s as %s: id %q doc %q answers %s, a missing id answers %s", route, pr.who, id, doc, k, base)
					}
				}
			}
			// A foreign document under the caller's own claim is a missing one.
			if strings.Contains(pattern, "{docId}") && pr.who == "owner" {
				a := send(ownClaim, otherDoc)
				b := send(ownClaim, guessed)
				if a.status != 404 || problemKey(a) != problemKey(b) {
					t.Errorf("%s: foreign document under own claim %s vs missing %s", route, problemKey(a), problemKey(b))
				}
			}
		}
	}

	t.Run("lists never show foreign rows", func(t *testing.T) {
		all := func(who, query string) []map[string]any {
			return s.expect(s.do("GET", "/api/v1/claims?limit=200"+query, w.tok[who], nil), 200).items()
		}
		statuses := "&status=draft,submitted,under_review,info_requested,pending_approval,approved,partially_approved,denied,paid,closed,withdrawn"
		countOf := func(who, pol string) int { return len(all("senior", "&policy="+pol)) }
		for who, pol := range map[string]string{"owner": w.polAID, "other": w.polBID} {
			mine := all(who, "")
			for _, q := range []string{"", statuses, "&status=submitted", "&status=paid", "&assignee=" + w.id["proc"], "&assignee=none", "&incidentFrom=2000-01-01"} {
				for _, c := range all(who, q) {
					if c["policyId"] != pol {
						t.Errorf("%s's list %q shows claim %v of policy %v", who, q, c["id"], c["policyId"])
					}
				}
			}
			number := map[string]string{w.polAID: "POL-A", w.polBID: "POL-B"}[pol]
			if n := countOf(who, number); len(mine) != n {
				t.Errorf("%s lists %d claims, their policy has %d", who, len(mine), n)
			}
		}
		// Filtering by someone else's policy answers like a policy that doesn't exist.
		foreign := s.expect(s.do("GET", "/api/v1/claims?policy=POL-B", w.tok["owner"], nil), 200)
		missing := s.expect(s.do("GET", "/api/v1/claims?policy=NO-SUCH-POLICY", w.tok["owner"], nil), 200)
		if len(foreign.items()) != 0 || string(foreign.raw) != string(missing.raw) {
			t.Errorf("owner filtering by POL-B: %s; by a missing policy: %s", foreign.raw, missing.raw)
		}
		// A processor without claims.read.any sees the queue and their own, never a colleague's.
		for _, q := range []string{"", "&assignee=" + w.id["proc"], "&policy=POL-A", statuses} {
			for _, c := range all("procNA", q) {
				if a, _ := c["assigneeId"].(string); a != "" && a != w.id["procNA"] {
					t.Errorf("procNA's list %q shows claim %v assigned to %s", q, c["id"], a)
				}
			}
		}
		if n := len(all("procNA", "&assignee="+w.id["proc"])); n != 0 {
			t.Errorf("procNA filtering by proc's assignments sees %d claims", n)
		}
		for _, who := range []string{"ai", "admin", "super"} {
			if n := len(all(who, statuses)); n != 0 {
				t.Errorf("%s lists %d claims", who, n)
			}
		}
		for _, who := range []string{"expired", "revoked"} { // back to an ordinary processor's view
			for _, c := range all(who, statuses) {
				if a, _ := c["assigneeId"].(string); a != "" {
					t.Errorf("%s (delegation ended) lists claim %v assigned to %s", who, c["id"], a)
				}
			}
		}
		// Policies: customers see their own only.
		for who, pol := range map[string]string{"owner": w.polAID, "other": w.polBID} {
			list := s.expect(s.do("GET", "/api/v1/policies?limit=200", w.tok[who], nil), 200).items()
			if len(list) != 1 || list[0]["id"] != pol {
				t.Errorf("%s lists policies %v", who, list)
			}
		}
		// Access history and its counts: only one's own claims.
		s.expect(s.do("GET", "/api/v1/claims/"+otherClaim, w.tok["senior"], nil), 200) // a staff read of other's claim
		for who, forbidden := range map[string]string{"owner": otherClaim, "other": ownClaim} {
			log := s.expect(s.do("GET", "/api/v1/me/access-log", w.tok[who], nil), 200)
			if strings.Contains(string(log.raw), forbidden) {
				t.Errorf("%s's access log names a foreign claim: %s", who, log.raw)
			}
		}
		// Foreign claim's nested surfaces answer as a missing claim.
		for _, sub := range []string{"", "/history", "/documents", "/documents/" + otherDoc, "/documents/" + otherDoc + "/content"} {
			a := s.do("GET", "/api/v1/claims/"+otherClaim+sub, w.tok["owner"], nil)
			b := s.do("GET", "/api/v1/claims/"+guessed+sub, w.tok["owner"], nil)
			if a.status != 404 || problemKey(a) != problemKey(b) {
				t.Errorf("foreign %s: %s; missing: %s", sub, problemKey(a), problemKey(b))
			}
		}
	})

	review := w.claim("review", "proc")
	approved := w.claim("approved", "proc")
	t.Run("payloads can't carry privileged fields", func(t *testing.T) {
		for _, c := range []struct {
			name, method, path, who string
			body                    any
			want                    int
			field                   string // the unknown_field reported (400 only)
		}{
			{"register as admin", "POST", "/api/v1/auth/register", "anon", map[string]string{"email": "sneaky@example.com", "password": pw, "role": "admin"}, 400, "role"},
			{"register with permissions", "POST", "/api/v1/auth/register", "anon", map[string]any{"email": "sneaky2@example.com", "password": pw, "permissions": []string{"audit.read"}}, 400, "permissions"},
			{"file a paid claim", "POST", "/api/v1/claims", "owner", withField(claimBody("POL-A", "100.00", w.nextDate(), true), "status", "paid"), 400, "status"},
			{"file on someone's holder", "POST", "/api/v1/claims", "owner", withField(claimBody("POL-A", "100.00", w.nextDate(), true), "holderId", w.id["other"]), 400, "holderId"},
			{"file with a payable amount", "POST", "/api/v1/claims", "owner", withField(claimBody("POL-A", "100.00", w.nextDate(), true), "payable", "99999.00"), 400, "payable"},
			{"file pre-assigned", "POST", "/api/v1/claims", "owner", withField(claimBody("POL-A", "100.00", w.nextDate(), true), "assigneeId", w.id["proc"]), 400, "assigneeId"},
			{"assign with a status", "POST", "/api/v1/claims/" + review + "/assign", "proc", map[string]string{"status": "approved"}, 400, "status"},
			{"decide with a payable", "POST", "/api/v1/claims/" + review + "/decide", "proc", map[string]string{"outcome": "approve", "payable": "99999.00"}, 400, "payable"},
			{"pay another amount", "POST", "/api/v1/claims/" + approved + "/pay", "proc", map[string]string{"amount": "99999.00"}, 400, "amount"},
			{"withdraw with an owner", "POST", "/api/v1/claims/" + review + "/withdraw", "owner", map[string]string{"holderId": w.id["other"]}, 400, "holderId"},
			{"admin defines a role", "PUT", "/api/v1/roles/sneaky_role", "admin", map[string]any{"baseRole": "admin", "permissions": []string{"keys.manage"}}, 403, ""},
			{"invite with permissions", "POST", "/api/v1/users", "admin", map[string]any{"email": "x1@example.com", "role": "customer", "permissions": []string{"roles.assign"}}, 400, "permissions"},
			{"invite a super admin", "POST", "/api/v1/users", "admin", map[string]any{"email": "x2@example.com", "role": "super_admin"}, 403, ""},
			{"role change with an authority", "POST", "/api/v1/users/" + w.id["victimStaff"] + "/role", "admin", map[string]any{"role": "claims_processor", "authorityLimitMinor": 1}, 400, "authorityLimitMinor"},
			{"authority change with a role", "PUT", "/api/v1/users/" + w.id["victimStaff"] + "/authority-limit", "admin", map[string]any{"limitMinor": 1, "role": "admin"}, 400, "role"},
			{"delegation from someone else", "POST", "/api/v1/delegations", "owner", withField(w.delegationBody("claims.create", 3600e9), "from", w.id["senior"]), 400, "from"},
			{"policy with a status", "POST", "/api/v1/policies", "admin", withField(policyBody("POL-X", "owner@example.com"), "status", "cancelled"), 400, "status"},
			{"policy for a holder id", "POST", "/api/v1/policies", "admin", withField(policyBody("POL-Y", "owner@example.com"), "holderId", w.id["other"]), 400, "holderId"},
			{"password change with a role", "POST", "/api/v1/auth/password", "owner", map[string]string{"currentPassword": pw, "newPassword": "another long passphrase 9", "role": "admin"}, 400, "role"},
		} {
			r := s.do(c.method, c.path, w.tok[c.who], c.body)
			if r.status != c.want {
				t.Errorf("%s: status %d, want %d: %s", c.name, r.status, c.want, r.raw)
				continue
			}
			if c.field != "" && !strings.Contains(string(r.raw), `"unknown_field"`) || c.field != "" && !strings.Contains(string(r.raw), `"`+c.field+`"`) {
				t.Errorf("%s: want unknown_field on %s: %s", c.name, c.field, r.raw)
			}
		}
		// Nothing was applied.
		if r := s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "sneaky@example.com", "password": pw}); r.status != 401 {
			t.Errorf("the refused registration created an account: %d", r.status)
		}
		if st := s.expect(s.do("GET", "/api/v1/claims/"+review, w.tok["proc"], nil), 200).str("status"); st != "under_review" {
			t.Errorf("claim status after refused payloads: %s", st)
		}
		if st := s.expect(s.do("GET", "/api/v1/claims/"+approved, w.tok["proc"], nil), 200).str("status"); st != "approved" && st != "partially_approved" {
			t.Errorf("approved claim after the refused payment: %s", st)
		}
		for _, x := range s.expect(s.do("GET", "/api/v1/users?limit=200", w.tok["admin"], nil), 200).items() {
			if x["email"] == "x1@example.com" || x["email"] == "x2@example.com" {
				t.Errorf("a refused invitation created %v", x)
			}
		}
		for _, x := range s.expect(s.do("GET", "/api/v1/roles", w.tok["admin"], nil), 200).items() {
			if x["name"] == "sneaky_role" {
				t.Errorf("admin defined a role: %v", x)
			}
		}
	})
}

// staffOnly are the claim actions that need a staff permission, which a
// customer lacks whatever the claim.
var staffOnly = map[string]bool{"assign": true, "request-info": true, "decide": true, "pay": true, "close": true,
	"approve-decision": true, "return-decision": true}

func withField(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

// TestHiddenProbesAudited: a request for another customer's claim answers
// 404 like a missing one, and the audit log records the probe as denied.
func TestHiddenProbesAudited(t *testing.T) {
	env := newEnv(t, store.SQLite)
	mustRun(t, env, pw+"\n", "user", "create", "--email", "adm@example.com", "--role", "admin", "--password-stdin")
	s := startServer(t, env)
	for _, e := range []string{"own@example.com", "peek@example.com"} {
		s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": e, "password": pw}), 202)
		s.verifyEmail(e)
	}
	admin := s.adminSession("adm@example.com")
	s.expect(s.do("POST", "/api/v1/policies", admin, map[string]any{"number": "P-HID", "productLine": "auto",
		"effectiveDate": "2026-01-01", "expiryDate": "2026-12-31", "currency": "USD", "coverageLimit": "1000.00",
		"holderEmail": "own@example.com"}), 201)
	own, peek := s.login("own@example.com", pw), s.login("peek@example.com", pw)
	id := s.expect(s.do("POST", "/api/v1/claims", own, map[string]any{"policyNumber": "P-HID", "type": "theft",
		"incidentDate": "2026-02-01", "description": "bike", "currency": "USD", "submit": true,
		"lines": []map[string]string{{"category": "property", "description": "bike", "amount": "100.00"}}}), 201).str("id")
	s.expect(s.do("GET", "/api/v1/claims/"+id, peek, nil), 404)
	s.expect(s.do("POST", "/api/v1/claims/"+id+"/withdraw", peek, nil), 404)
	peekID := userID(t, s, "peek@example.com")
	var denied int
	for _, e := range s.expect(s.do("GET", "/api/v1/audit?object="+id+"&actor="+peekID, admin, nil), 200).items() {
		if e["outcome"] == "denied" {
			denied++
		}
	}
	if denied != 2 {
		t.Errorf("%d denied entries for the probes, want 2", denied)
	}
}

// TestForbiddenAudited: a refused admin request is an audit entry.
func TestForbiddenAudited(t *testing.T) {
	env := newEnv(t, store.SQLite)
	mustRun(t, env, pw+"\n", "user", "create", "--email", "adm@example.com", "--role", "admin", "--password-stdin")
	s := startServer(t, env)
	s.registerVerified("nosy@example.com", pw)
	nosy := s.login("nosy@example.com", pw)
	s.expect(s.do("GET", "/api/v1/users", nosy, nil), 403)
	admin := s.adminSession("adm@example.com")
	trail := s.expect(s.do("GET", "/api/v1/audit?action=access.denied", admin, nil), 200).items()
	if len(trail) != 1 || trail[0]["objectId"] != "GET /api/v1/users" || trail[0]["outcome"] != "denied" {
		t.Fatalf("audit of the refused request: %v", trail)
	}
}
