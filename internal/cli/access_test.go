package cli_test

import (
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/store"
)

// TestAccessControlFeatures walks delegation, authority limits, custom
// roles, customers' access history and the AI engineers' pseudonymized
// view through the real server (SQLite; TestAccessMatrix covers both
// engines).
func TestAccessControlFeatures(t *testing.T) {
	w := newWorld(t, store.SQLite)
	s := w.s
	rule := func(r resp) string {
		if errs, _ := r.body["errors"].([]any); len(errs) > 0 {
			rl, _ := errs[0].(map[string]any)["rule"].(string)
			return rl
		}
		return ""
	}
	// A fresh processor to receive a delegation.
	out := mustRun(t, w.env, pw+"\n", "user", "create", "--email", "d2@example.com", "--role", "claims_processor", "--password-stdin")
	d2ID := userIDLine.FindStringSubmatch(out)[1]
	d2 := s.login("d2@example.com", pw)
	target, _ := w.readClaim("proc") // assigned to proc: out of d2's reach

	t.Run("delegation lets the delegate act and records both people; revocation is immediate", func(t *testing.T) {
		s.expect(s.do("GET", "/api/v1/claims/"+target, d2, nil), 404)
		exp := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
		del := s.expect(s.do("POST", "/api/v1/delegations", w.tok["senior"], map[string]any{"to": d2ID,
			"permissions": []string{"claims.read.any"}, "expiresAt": exp}), 201)
		s.expect(s.do("GET", "/api/v1/claims/"+target, d2, nil), 200)
		trail := s.expect(s.do("GET", "/api/v1/audit?object="+target+"&action=claim.read&actor="+d2ID, w.tok["admin"], nil), 200).items()
		if len(trail) == 0 {
			t.Fatalf("no audit entry for d2's read of %s", target)
		}
		if trail[len(trail)-1]["onBehalfOf"] != w.id["senior"] {
			t.Errorf("d2's read under senior's delegation is audited as %v, want onBehalfOf %s", trail[len(trail)-1], w.id["senior"])
		}
		// Both sides see it; revocation works on the very next request.
		for _, tok := range []string{w.tok["senior"], d2} {
			found := false
			for _, x := range s.expect(s.do("GET", "/api/v1/delegations", tok, nil), 200).items() {
				found = found || x["id"] == del.str("id") && x["active"] == true
			}
			if !found {
				t.Errorf("delegation %s not listed as active", del.str("id"))
			}
		}
		s.expect(s.do("DELETE", "/api/v1/delegations/"+del.str("id"), w.tok["senior"], nil), 204)
		s.expect(s.do("GET", "/api/v1/claims/"+target, d2, nil), 404)
		s.expect(s.do("DELETE", "/api/v1/delegations/"+del.str("id"), w.tok["senior"], nil), 404) // once
	})

	t.Run("a delegation scoped to an amount opens only claims up to it, by id and in lists", func(t *testing.T) {
		exp := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
		tgt := s.expect(s.do("GET", "/api/v1/claims/"+target, w.tok["senior"], nil), 200)
		total := tgt.str("total", "amount")
		minor, _ := strconv.ParseInt(strings.ReplaceAll(total, ".", ""), 10, 64)
		del := s.expect(s.do("POST", "/api/v1/delegations", w.tok["senior"], map[string]any{"to": d2ID,
			"permissions": []string{"claims.read.any"}, "expiresAt": exp, "maxAmountMinor": minor - 1}), 201)
		s.expect(s.do("GET", "/api/v1/claims/"+target, d2, nil), 404) // just over the scope
		for _, c := range s.expect(s.do("GET", "/api/v1/claims?limit=200", d2, nil), 200).items() {
			if c["id"] == target {
				t.Errorf("a claim over the delegation's amount is listed")
			}
			if c["status"] == "draft" {
				t.Errorf("a draft is listed to staff: %v", c["id"])
			}
		}
		s.expect(s.do("DELETE", "/api/v1/delegations/"+del.str("id"), w.tok["senior"], nil), 204)
		for _, c := range s.expect(s.do("GET", "/api/v1/claims?limit=200", w.tok["senior"], nil), 200).items() {
			if c["status"] == "draft" {
				t.Errorf("a draft is listed to a supervisor: %v", c["id"])
			}
		}
	})

	t.Run("delegation rules", func(t *testing.T) {
		soon := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		for _, c := range []struct {
			name, who string
			body      map[string]any
			rule      string
		}{
			{"what one doesn't hold", "proc", map[string]any{"to": d2ID, "permissions": []string{"claims.read.any"}, "expiresAt": soon}, "not_held"},
			{"re-delegation", "deleg", map[string]any{"to": d2ID, "permissions": []string{"claims.read.any"}, "expiresAt": soon}, "redelegation"},
			{"role administration", "admin", map[string]any{"to": d2ID, "permissions": []string{"roles.assign"}, "expiresAt": soon}, "not_delegable"},
			{"user administration", "super", map[string]any{"to": d2ID, "permissions": []string{"users.manage"}, "expiresAt": soon}, "not_delegable"},
			{"more than 30 days", "senior", map[string]any{"to": d2ID, "permissions": []string{"claims.read.any"},
				"expiresAt": time.Now().Add(31 * 24 * time.Hour).UTC().Format(time.RFC3339)}, "max_duration"},
			{"in the past", "senior", map[string]any{"to": d2ID, "permissions": []string{"claims.read.any"},
				"expiresAt": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, "future"},
			{"to oneself", "senior", map[string]any{"to": w.id["senior"], "permissions": []string{"claims.read.any"}, "expiresAt": soon}, "user"},
		} {
			r := s.do("POST", "/api/v1/delegations", w.tok[c.who], c.body)
			if r.status != 400 || rule(r) != c.rule {
				t.Errorf("%s: %d %s, want 400 %s", c.name, r.status, r.raw, c.rule)
			}
		}
		// Exactly 30 days is allowed.
		s.expect(s.do("POST", "/api/v1/delegations", w.tok["senior"], map[string]any{"to": d2ID, "permissions": []string{"claims.read.any"},
			"expiresAt": time.Now().Add(30*24*time.Hour - time.Minute).UTC().Format(time.RFC3339)}), 201)
	})

	t.Run("decisions above authority need a second person with more", func(t *testing.T) {
		id := w.claim("pending", "proc") // 6,000.00 proposed by proc (authority 5,000.00)
		s.expect(s.do("POST", "/api/v1/claims/"+id+"/approve-decision", w.tok["proc"], nil), 403)
		// Even with enough authority granted since, the proposer can't
		// approve their own proposal.
		mine := w.claim("pending", "over")
		s.expect(s.do("PUT", "/api/v1/users/"+w.id["over"]+"/authority-limit", w.tok["admin"], map[string]any{"limitMinor": 100_000_000}), 204)
		r := s.expect(s.do("POST", "/api/v1/claims/"+mine+"/approve-decision", w.tok["over"], nil), 403)
		if !strings.Contains(r.str("detail"), "second person") {
			t.Errorf("self-approval refused with %s", r.raw)
		}
		s.expect(s.do("PUT", "/api/v1/users/"+w.id["over"]+"/authority-limit", w.tok["admin"], map[string]any{"limitMinor": 10000}), 204)
		s.expect(s.do("POST", "/api/v1/claims/"+id+"/approve-decision", w.tok["deleg"], nil), 403) // 5,000.00 is not enough
		ok := s.expect(s.do("POST", "/api/v1/claims/"+id+"/approve-decision", w.tok["senior"], nil), 200)
		if st := ok.str("status"); st != "approved" && st != "partially_approved" {
			t.Fatalf("approved decision: %s", ok.raw)
		}
		// Paying it is above proc's authority too; senior may.
		pay := s.expect(s.do("POST", "/api/v1/claims/"+id+"/pay", w.tok["proc"], nil), 403)
		if !strings.Contains(pay.str("detail"), "authority") {
			t.Errorf("payment above authority refused with %s", pay.raw)
		}
		s.expect(s.do("POST", "/api/v1/claims/"+id+"/pay", w.tok["senior"], nil), 200)
		trail := s.expect(s.do("GET", "/api/v1/audit?object="+id, w.tok["admin"], nil), 200).items()
		var actions []string
		for _, e := range trail {
			actions = append(actions, e["action"].(string)+"/"+e["outcome"].(string))
		}
		for _, want := range []string{"claim.decided/ok", "claim.decision_approved/denied", "claim.decision_approved/ok", "claim.paid/denied", "claim.paid/ok"} {
			if !strings.Contains(strings.Join(actions, " "), want) {
				t.Errorf("audit of %s lacks %s: %v", id, want, actions)
			}
		}
	})

	t.Run("custom roles are versioned and audited", func(t *testing.T) {
		body := map[string]any{"baseRole": "claims_processor", "permissions": []string{"claims.read.any"}}
		if v := s.expect(s.do("PUT", "/api/v1/roles/feature_role", w.tok["super"], body), 200).body["version"]; v != 1.0 {
			t.Errorf("first definition: version %v", v)
		}
		body["authorityLimitMinor"] = 700000
		if v := s.expect(s.do("PUT", "/api/v1/roles/feature_role", w.tok["super"], body), 200).body["version"]; v != 2.0 {
			t.Errorf("second definition: version %v", v)
		}
		trail := s.expect(s.do("GET", "/api/v1/audit?objectType=role&object=feature_role", w.tok["admin"], nil), 200).items()
		if len(trail) != 2 || trail[1]["details"].(map[string]any)["version"] != "2" || trail[1]["actorId"] != w.id["super"] {
			t.Errorf("role definitions audited as %v", trail)
		}
		s.expect(s.do("PUT", "/api/v1/roles/feature_role", w.tok["admin"], body), 403)
		s.expect(s.do("PUT", "/api/v1/roles/admin", w.tok["super"], body), 400) // built-in names are taken
		s.expect(s.do("PUT", "/api/v1/roles/keys_role", w.tok["super"], map[string]any{"baseRole": "customer", "permissions": []string{"keys.manage"}}), 400)
	})

	t.Run("nobody administers a peer through a custom role", func(t *testing.T) {
		// A custom role resting on admin ranks as admin: another admin may
		// not disable, log out or reset such an account.
		s.expect(s.do("PUT", "/api/v1/roles/ops_admin", w.tok["super"], map[string]any{"baseRole": "admin", "permissions": []string{}}), 200)
		out := mustRun(t, w.env, pw+"\n", "user", "create", "--email", "ops@example.com", "--role", "claims_processor", "--password-stdin")
		ops := userIDLine.FindStringSubmatch(out)[1]
		s.expect(s.do("POST", "/api/v1/users/"+ops+"/role", w.tok["super"], map[string]string{"role": "ops_admin"}), 204)
		for _, action := range []string{"disable", "logout", "reset-mfa", "unlock"} {
			if r := s.do("POST", "/api/v1/users/"+ops+"/"+action, w.tok["admin"], nil); r.status != 403 {
				t.Errorf("admin could %s an ops_admin (a peer): %d %s", action, r.status, r.raw)
			}
		}
		s.expect(s.do("POST", "/api/v1/users/"+ops+"/role", w.tok["admin"], map[string]string{"role": "customer"}), 403)
		s.expect(s.do("PUT", "/api/v1/users/"+ops+"/authority-limit", w.tok["admin"], map[string]any{"limitMinor": 1}), 403)
		s.expect(s.do("POST", "/api/v1/users/"+ops+"/disable", w.tok["super"], nil), 204) // a super admin may
	})

	t.Run("customers see who read their claims", func(t *testing.T) {
		s.expect(s.do("GET", "/api/v1/claims/"+target, w.tok["proc"], nil), 200)
		log := s.expect(s.do("GET", "/api/v1/me/access-log", w.tok["owner"], nil), 200).items()
		found := false
		for _, e := range log {
			if e["claimId"] == target && e["action"] == "claim.read" && e["actorRole"] == "claims_processor" {
				found = true
			}
			if _, ok := e["actorId"]; ok {
				t.Errorf("access log names staff ids: %v", e)
			}
		}
		if !found {
			t.Errorf("owner's access log lacks proc's claim.read: %v", log)
		}
	})

	t.Run("AI engineers get no personal data; nobody else gets the training view", func(t *testing.T) {
		planted := []string{"Zebulon Plantedname", "NID-PLANT-424242", "planted.person@example.com", "Planted description qx7",
			"Planted line zz9", "+1 555 0199 123", "77 Plantation Road"}
		s.expect(s.do("POST", "/api/v1/policies", w.tok["admin"], map[string]any{"number": "POL-PLANT", "productLine": "auto",
			"effectiveDate": "2026-01-01", "expiryDate": "2026-12-31", "currency": "USD", "coverageLimit": "50000.00",
			"holder": map[string]string{"fullName": planted[0], "nationalId": planted[1], "email": planted[2], "phone": planted[5],
				"address": planted[6], "dateOfBirth": "1971-02-03"}}), 201)
		s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": planted[2], "password": pw, "fullName": planted[0]}), 202)
		s.verifyEmail(planted[2])
		cust := s.login(planted[2], pw)
		// The policy was recorded under this email before the account
		// existed: the owner links it with the code mailed to the address.
		s.expect(s.do("POST", "/api/v1/me/link-policyholder", cust, map[string]string{"token": linkCode(t, w.env, planted[2])}), 204)
		s.expect(s.do("POST", "/api/v1/claims", cust, map[string]any{"policyNumber": "POL-PLANT", "type": "collision",
			"incidentDate": "2026-05-05", "description": planted[3], "location": planted[6], "currency": "USD", "submit": true,
			"lines": []map[string]string{{"category": "vehicle", "description": planted[4], "amount": "1234.00"}}}), 201)
		r := s.expect(s.do("GET", "/api/v1/training/claims?limit=200", w.tok["ai"], nil), 200)
		if len(r.items()) < 2 {
			t.Fatalf("training view has %d rows", len(r.items()))
		}
		body := strings.ToLower(string(r.raw))
		for _, v := range append(planted, "1971-02-03", "2026-05-05", w.id["owner"], w.polAID) {
			if strings.Contains(body, strings.ToLower(v)) {
				t.Errorf("training view contains planted personal value %q", v)
			}
		}
		for _, who := range []string{"owner", "other", "proc", "procNA", "senior", "admin", "super", "deleg", "over"} {
			s.expect(s.do("GET", "/api/v1/training/claims", w.tok[who], nil), 403)
		}
		s.expect(s.do("GET", "/api/v1/training/claims", "", nil), 401)
	})
}

// TestAuditTamperCLI edits the SQLite file behind the application's back
// and runs `claims audit verify`: an altered row is caught by the chain; rows
// deleted from the end with the head rewound to match are caught only
// thanks to a signed checkpoint (`claims audit checkpoint`).
func TestAuditTamperCLI(t *testing.T) {
	seed := func(t *testing.T) (map[string]string, *sql.DB) {
		env := newEnv(t, store.SQLite)
		for _, u := range []string{"a1", "a2", "a3", "a4", "a5"} {
			mustRun(t, env, pw+"\n", "user", "create", "--email", u+"@example.com", "--role", "customer", "--password-stdin")
		}
		if out := mustRun(t, env, "", "audit", "verify"); !strings.Contains(out, "intact") {
			t.Fatalf("fresh log: %s", out)
		}
		db, err := sql.Open("sqlite", filepath.Join(env["CLAIMS_DATA_DIR"], "claims.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return env, db
	}
	exec := func(t *testing.T, db *sql.DB, q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// deleteTail deletes the last two entries and rewinds the head to the
	// entry before them, so that the chain itself is consistent.
	deleteTail := func(t *testing.T, db *sql.DB) int64 {
		var n int64
		if err := db.QueryRow(`SELECT MAX(seq) FROM audit_log`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		var hash []byte
		if err := db.QueryRow(`SELECT hash FROM audit_log WHERE seq = ?`, n-2).Scan(&hash); err != nil {
			t.Fatal(err)
		}
		exec(t, db, `DELETE FROM audit_log WHERE seq > ?`, n-2)
		exec(t, db, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, n-2, hash)
		return n
	}

	t.Run("altered action", func(t *testing.T) {
		env, db := seed(t)
		exec(t, db, `UPDATE audit_log SET action = 'user.nothing_happened' WHERE seq = 3`)
		out, err := run(t, env, "", "audit", "verify")
		if err == nil || !strings.Contains(err.Error(), "TAMPERED") || !strings.Contains(err.Error(), "3") {
			t.Errorf("verify after an UPDATE: %q, %v", out, err)
		}
	})
	t.Run("tail deleted and head rewound, without a checkpoint: undetectable", func(t *testing.T) {
		env, db := seed(t)
		deleteTail(t, db)
		if out, err := run(t, env, "", "audit", "verify"); err != nil || !strings.Contains(out, "intact") {
			t.Errorf("expected the chain alone to miss a consistent truncation (this is why checkpoints exist): %q, %v", out, err)
		}
	})
	t.Run("tail deleted and head rewound, after a signed checkpoint: caught", func(t *testing.T) {
		env, db := seed(t)
		if out := mustRun(t, env, "", "audit", "checkpoint"); !strings.Contains(out, "checkpoint signed") {
			t.Fatalf("checkpoint: %s", out)
		}
		mustRun(t, env, "", "audit", "verify")
		n := deleteTail(t, db)
		out, err := run(t, env, "", "audit", "verify")
		if err == nil || !strings.Contains(err.Error(), "TAMPERED") || !strings.Contains(err.Error(), "checkpoint") {
			t.Errorf("verify after deleting entries %d-%d: %q, %v", n-1, n, out, err)
		}
	})
}
