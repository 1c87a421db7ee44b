package access

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// Property tests of the role hierarchy: inheritance is transitive, the
// hierarchy has no cycles, Outranks is a strict order (super admin apart),
// nobody escalates through ranks or delegations, and the documentation (the
// README's roles table and docs/access-matrix.md) says what the code does.

var updateDocs = flag.Bool("update", false, "rewrite the generated role table in docs/access-matrix.md")

const (
	readmePath = "../../README.md"
	matrixDoc  = "../../docs/access-matrix.md"
)

func has(ps []Permission, p Permission) bool { return slices.Contains(ps, p) }

// TestRolesAreWellFormed: every role named in the hierarchy is a built-in
// role, every built-in role is in the hierarchy, every permission is in the
// catalogue, and the catalogue has no duplicates.
func TestRolesAreWellFormed(t *testing.T) {
	for _, r := range claims.Roles {
		if _, ok := roles[r]; !ok {
			t.Errorf("built-in role %s has no entry in the hierarchy", r)
		}
	}
	for r, def := range roles {
		if !claims.ValidRole(r) {
			t.Errorf("hierarchy defines %q, which is not a built-in role", r)
		}
		for _, p := range def.own {
			if !ValidPermission(string(p)) {
				t.Errorf("role %s holds %q, which is not in the catalogue", r, p)
			}
		}
		for _, parent := range def.inherits {
			if _, ok := roles[parent]; !ok {
				t.Errorf("role %s inherits from unknown role %q", r, parent)
			}
		}
	}
	seen := map[Permission]bool{}
	for _, p := range Catalogue {
		if seen[p] {
			t.Errorf("catalogue lists %s twice", p)
		}
		seen[p] = true
	}
}

// TestNoCycles walks the inheritance graph depth first: a role met again on
// its own path is a cycle.
func TestNoCycles(t *testing.T) {
	const (
		white = iota
		grey
		black
	)
	color := map[claims.Role]int{}
	var visit func(r claims.Role, path []claims.Role)
	visit = func(r claims.Role, path []claims.Role) {
		switch color[r] {
		case grey:
			t.Fatalf("inheritance cycle: %v -> %s", path, r)
		case black:
			return
		}
		color[r] = grey
		for _, parent := range Inherits(r) {
			visit(parent, append(path, r))
		}
		color[r] = black
	}
	for _, r := range claims.Roles {
		visit(r, nil)
	}
	// Nobody inherits from themselves, even indirectly, and super_admin is
	// the top: no role inherits from it.
	for _, r := range claims.Roles {
		for _, a := range ancestors(r) {
			if a == r {
				t.Errorf("%s inherits from itself", r)
			}
			if a == claims.RoleSuperAdmin {
				t.Errorf("%s inherits from super_admin", r)
			}
		}
	}
}

// ancestors returns every role r inherits from, directly or not.
func ancestors(r claims.Role) []claims.Role {
	var out []claims.Role
	var walk func(claims.Role, int)
	walk = func(x claims.Role, depth int) {
		if depth > len(claims.Roles) { // a cycle; TestNoCycles reports it
			return
		}
		for _, p := range Inherits(x) {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
			walk(p, depth+1)
		}
	}
	walk(r, 0)
	return out
}

// TestInheritanceIsTransitive: a role holds its own permissions and every
// permission of every role it inherits from, recursively; and nothing else.
func TestInheritanceIsTransitive(t *testing.T) {
	for _, r := range claims.Roles {
		got := Permissions(r)
		want := slices.Clone(roles[r].own)
		for _, a := range ancestors(r) {
			for _, p := range Permissions(a) {
				if !has(got, p) {
					t.Errorf("%s inherits from %s but lacks its %s", r, a, p)
				}
			}
			want = append(want, roles[a].own...)
		}
		slices.Sort(want)
		want = slices.Compact(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want exactly its own plus inherited %v", r, got, want)
		}
		if !slices.IsSorted(got) {
			t.Errorf("Permissions(%s) is not sorted", r)
		}
		// Has agrees with Permissions for a principal without resolved grants.
		p := claims.Principal{UserID: "u", Role: r}
		for _, perm := range Catalogue {
			if Has(p, perm) != has(got, perm) {
				t.Errorf("Has(%s, %s) = %v, Permissions says %v", r, perm, Has(p, perm), has(got, perm))
			}
		}
	}
	// Deny by default: the anonymous principal and an unknown role hold nothing.
	for _, perm := range Catalogue {
		if Has(claims.Principal{}, perm) || Has(claims.Principal{UserID: "u", Role: "nobody"}, perm) {
			t.Errorf("%s granted to anonymous or an unknown role", perm)
		}
	}
}

// TestOutranksIsAStrictOrder: on the built-in roles other than super admin
// Outranks is irreflexive, asymmetric and transitive; super admin outranks
// everyone (itself included, so that super admins can administer each other)
// and nobody else outranks super admin.
func TestOutranksIsAStrictOrder(t *testing.T) {
	var rest []claims.Role
	for _, r := range claims.Roles {
		if r != claims.RoleSuperAdmin {
			rest = append(rest, r)
		}
	}
	for _, a := range rest {
		if Outranks(a, a) {
			t.Errorf("%s outranks itself", a)
		}
		if Outranks(a, claims.RoleSuperAdmin) {
			t.Errorf("%s outranks super_admin", a)
		}
		for _, b := range rest {
			if Outranks(a, b) && Outranks(b, a) {
				t.Errorf("%s and %s outrank each other", a, b)
			}
			for _, c := range rest {
				if Outranks(a, b) && Outranks(b, c) && !Outranks(a, c) {
					t.Errorf("not transitive: %s > %s > %s but not %s > %s", a, b, c, a, c)
				}
			}
		}
	}
	for _, b := range claims.Roles {
		if !Outranks(claims.RoleSuperAdmin, b) {
			t.Errorf("super_admin does not outrank %s", b)
		}
	}
	// The documented shape: super_admin > admin > (claims_processor,
	// ai_engineer) > customer, the two staff roles being peers.
	for _, c := range []struct {
		a, b claims.Role
		want bool
	}{
		{claims.RoleAdmin, claims.RoleClaimsProcessor, true},
		{claims.RoleAdmin, claims.RoleAIEngineer, true},
		{claims.RoleAdmin, claims.RoleCustomer, true},
		{claims.RoleClaimsProcessor, claims.RoleCustomer, true},
		{claims.RoleAIEngineer, claims.RoleCustomer, true},
		{claims.RoleClaimsProcessor, claims.RoleAIEngineer, false},
		{claims.RoleAIEngineer, claims.RoleClaimsProcessor, false},
		{claims.RoleClaimsProcessor, claims.RoleAdmin, false},
		{claims.RoleCustomer, claims.RoleCustomer, false},
	} {
		if got := Outranks(c.a, c.b); got != c.want {
			t.Errorf("Outranks(%s, %s) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// TestNobodyEscalates: outranking follows rank strictly, and a role that
// inherits from another ranks at least as high (so inheritance can't be used
// to reach above one's rank); roles that grant roles (roles.assign) are
// admin or above.
func TestNobodyEscalates(t *testing.T) {
	for _, a := range claims.Roles {
		if _, ok := rank[a]; !ok {
			t.Fatalf("built-in role %s has no rank", a)
		}
		for _, b := range claims.Roles {
			if a != claims.RoleSuperAdmin && Outranks(a, b) && rank[a] <= rank[b] {
				t.Errorf("%s (rank %d) outranks %s (rank %d)", a, rank[a], b, rank[b])
			}
		}
		for _, anc := range ancestors(a) {
			if rank[anc] > rank[a] {
				t.Errorf("%s (rank %d) inherits from higher-ranked %s (rank %d)", a, rank[a], anc, rank[anc])
			}
		}
		if Has(claims.Principal{UserID: "u", Role: a}, RolesAssign) && rank[a] < rank[claims.RoleAdmin] {
			t.Errorf("%s may assign roles but ranks below admin", a)
		}
	}
	// Key, backup and settings management stay with super admins.
	for _, r := range claims.Roles {
		for _, p := range []Permission{KeysManage, BackupsManage, SettingsManage} {
			if has(Permissions(r), p) != (r == claims.RoleSuperAdmin) {
				t.Errorf("%s holds %s: %v", r, p, has(Permissions(r), p))
			}
		}
	}
	// Role administration and key handling can never be delegated.
	for _, p := range []Permission{RolesAssign, UsersManage, KeysManage, BackupsManage, SettingsManage} {
		if Delegable(p) {
			t.Errorf("%s is delegable", p)
		}
	}
}

// TestResolveNeverEscalates feeds Resolve every permission of the catalogue
// through live, expired and revoked delegations, for every base role, and
// checks what comes out.
func TestResolveNeverEscalates(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	live := Delegation{ID: "d1", From: "boss", To: "u", Permissions: Catalogue, CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour), MaxAmount: 500}
	expired := Delegation{ID: "d2", From: "old", To: "u", Permissions: Catalogue, CreatedAt: now.Add(-48 * time.Hour), ExpiresAt: now.Add(-time.Nanosecond)}
	atExpiry := Delegation{ID: "d3", From: "edge", To: "u", Permissions: Catalogue, CreatedAt: now.Add(-time.Hour), ExpiresAt: now}
	revoked := Delegation{ID: "d4", From: "gone", To: "u", Permissions: Catalogue, CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour), Revoked: true}
	for _, base := range claims.Roles {
		own := Permissions(base)
		t.Run(string(base), func(t *testing.T) {
			// Only dead delegations: exactly the role's permissions.
			got := Resolve(base, nil, []Delegation{expired, atExpiry, revoked}, now)
			if len(got) != len(own) {
				t.Errorf("dead delegations changed the grants: %d permissions, role has %d", len(got), len(own))
			}
			for name, g := range got {
				if !has(own, Permission(name)) || g.Via != "" {
					t.Errorf("%s granted from a dead delegation (via %q)", name, g.Via)
				}
			}
			// A live delegation of everything, among dead ones.
			got = Resolve(base, nil, []Delegation{expired, live, revoked, atExpiry}, now)
			for _, p := range Catalogue {
				g, ok := got[string(p)]
				switch {
				case has(own, p):
					if !ok || g.Via != "" {
						t.Errorf("%s held directly but resolved as %+v (ok %v)", p, g, ok)
					}
				case !Delegable(p):
					if ok {
						t.Errorf("non-delegable %s granted through a delegation (via %q)", p, g.Via)
					}
				default:
					if !ok || g.Via != "boss" || g.MaxAmount != 500 {
						t.Errorf("delegable %s resolved as %+v (ok %v), want via boss, max 500", p, g, ok)
					}
				}
				if ok && (g.Via == "old" || g.Via == "edge" || g.Via == "gone") {
					t.Errorf("%s comes from a dead delegation (%s)", p, g.Via)
				}
			}
			// A custom role on this base adds its permissions directly.
			custom := &CustomRole{Name: "x_" + string(base), Base: base, Permissions: []Permission{ClaimsReadAny}}
			got = Resolve(base, custom, []Delegation{live}, now)
			if g, ok := got[string(ClaimsReadAny)]; !ok || g.Via != "" {
				t.Errorf("custom role's claims.read.any resolved as %+v (ok %v)", g, ok)
			}
		})
	}
	// A stored delegation naming role administration (written before the
	// rule, or behind the application's back) still grants none of it.
	bogus := Delegation{From: "x", To: "u", Permissions: []Permission{RolesAssign, UsersManage, KeysManage}, ExpiresAt: now.Add(time.Hour)}
	for name := range Resolve(claims.RoleCustomer, nil, []Delegation{bogus}, now) {
		if !has(Permissions(claims.RoleCustomer), Permission(name)) {
			t.Errorf("delegation granted %q", name)
		}
	}
	if !(Delegation{ExpiresAt: now.Add(time.Second)}).Live(now) || (Delegation{ExpiresAt: now}).Live(now) {
		t.Error("Live is wrong at the expiry boundary")
	}
}

// TestCanReadClaimObjectRules checks the object-level rule against each
// built-in role: only a holder reaches their own claim, processors reach
// the intake queue and their own assignments, nobody else reaches anything.
func TestCanReadClaimObjectRules(t *testing.T) {
	mine := claims.Claim{HolderID: "h1", AssigneeID: "p1"}
	queued := claims.Claim{HolderID: "h2"}
	others := claims.Claim{HolderID: "h2", AssigneeID: "p2"}
	for _, c := range []struct {
		p                    claims.Principal
		mine, queued, others bool
	}{
		{claims.Principal{UserID: "c1", Role: claims.RoleCustomer, HolderID: "h1"}, true, false, false},
		{claims.Principal{UserID: "c0", Role: claims.RoleCustomer}, false, false, false},
		{claims.Principal{UserID: "p1", Role: claims.RoleClaimsProcessor}, true, true, false},
		{claims.Principal{UserID: "p3", Role: claims.RoleClaimsProcessor}, false, true, false},
		{claims.Principal{UserID: "a", Role: claims.RoleAdmin}, false, false, false},
		{claims.Principal{UserID: "s", Role: claims.RoleSuperAdmin}, false, false, false},
		{claims.Principal{UserID: "e", Role: claims.RoleAIEngineer}, false, false, false},
		{claims.Principal{}, false, false, false},
	} {
		if CanReadClaim(c.p, mine) != c.mine || CanReadClaim(c.p, queued) != c.queued || CanReadClaim(c.p, others) != c.others {
			t.Errorf("%s/%s: mine %v queued %v others %v, want %v %v %v", c.p.Role, c.p.UserID,
				CanReadClaim(c.p, mine), CanReadClaim(c.p, queued), CanReadClaim(c.p, others), c.mine, c.queued, c.others)
		}
	}
	if !IsOwnClaim(claims.Principal{UserID: "u", HolderID: "h1"}, mine) || !IsOwnClaim(claims.Principal{UserID: "u"}, claims.Claim{FiledBy: "u"}) ||
		IsOwnClaim(claims.Principal{UserID: "u"}, claims.Claim{}) {
		t.Error("IsOwnClaim is wrong")
	}
}

// readmeRoles parses the "## Roles" table of the README: role -> text.
func readmeRoles(t *testing.T) map[claims.Role]string {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n## Roles\n")
	if i < 0 {
		t.Fatal("README has no \"## Roles\" section")
	}
	section := text[i+len("\n## Roles\n"):]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	row := regexp.MustCompile("(?m)^\\|\\s*`([a-z_]+)`\\s*\\|\\s*(.*?)\\s*\\|\\s*$")
	out := map[claims.Role]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		out[claims.Role(m[1])] = m[2]
	}
	if len(out) == 0 {
		t.Fatal("README's roles table has no rows of the form | `role` | text |")
	}
	return out
}

// TestREADMERolesTableMatchesCode checks the README's prose table: every role
// it names exists, every built-in role is in it, and each claim it makes
// (a phrase in the role's row) holds in access.Permissions. The README is
// prose; docs/access-matrix.md is the exhaustive, generated table.
func TestREADMERolesTableMatchesCode(t *testing.T) {
	table := readmeRoles(t)
	for r := range table {
		if !claims.ValidRole(r) {
			t.Errorf("README lists role %q, which does not exist", r)
		}
	}
	for _, r := range claims.Roles {
		if _, ok := table[r]; !ok {
			t.Errorf("README's roles table lacks %s", r)
		}
	}
	type claim struct {
		role     claims.Role
		phrase   string // must appear in the role's row
		holds    []Permission
		lacks    []Permission
		superset claims.Role // holds every permission of this role too
	}
	for _, c := range []claim{
		{role: claims.RoleCustomer, phrase: "file claims on own policies", holds: []Permission{ClaimsCreate}},
		{role: claims.RoleCustomer, phrase: "read own claims and policies", holds: []Permission{ClaimsReadOwn, PoliciesReadOwn},
			lacks: []Permission{ClaimsReadAny, ClaimsReadAssigned, PoliciesReadAny, DocumentsRead}},
		{role: claims.RoleClaimsProcessor, phrase: "the customer's permissions", superset: claims.RoleCustomer},
		{role: claims.RoleClaimsProcessor, phrase: "work the intake queue and claims assigned to them", holds: []Permission{ClaimsReadAssigned, ClaimsAssign, ClaimsReview},
			lacks: []Permission{ClaimsReadAny}},
		{role: claims.RoleClaimsProcessor, phrase: "request information, decide, pay", holds: []Permission{ClaimsReview, ClaimsDecide, ClaimsPay}},
		{role: claims.RoleAIEngineer, phrase: "the customer's permissions", superset: claims.RoleCustomer},
		{role: claims.RoleAIEngineer, phrase: "model training and anonymized exports", holds: []Permission{ModelsTrain, TrainingExport},
			lacks: []Permission{ClaimsReadAny, ClaimsReadAssigned, DocumentsRead, ClaimsDecide}},
		{role: claims.RoleAdmin, phrase: "the customer's permissions", superset: claims.RoleCustomer},
		{role: claims.RoleAdmin, phrase: "users, policies, imports, audit log", holds: []Permission{UsersManage, PoliciesManage, ClaimsImport, AuditRead}},
		{role: claims.RoleAdmin, phrase: "**not** claim contents or decisions",
			lacks: []Permission{ClaimsReadAny, ClaimsReadAssigned, DocumentsRead, ClaimsDecide, ClaimsPay, ClaimsAssign, ClaimsReview}},
		{role: claims.RoleSuperAdmin, phrase: "everything an admin can", superset: claims.RoleAdmin},
		{role: claims.RoleSuperAdmin, phrase: "keys, backups, settings", holds: []Permission{KeysManage, BackupsManage, SettingsManage}},
	} {
		row, ok := table[c.role]
		if !ok {
			continue
		}
		if !strings.Contains(row, c.phrase) {
			t.Errorf("README row of %s no longer says %q (row: %q): update this test's reading of it", c.role, c.phrase, row)
			continue
		}
		perms := Permissions(c.role)
		for _, p := range c.holds {
			if !has(perms, p) {
				t.Errorf("README says %s can %q, but the role lacks %s", c.role, c.phrase, p)
			}
		}
		for _, p := range c.lacks {
			if has(perms, p) {
				t.Errorf("README says %s: %q, but the role holds %s", c.role, c.phrase, p)
			}
		}
		if c.superset != "" {
			for _, p := range Permissions(c.superset) {
				if !has(perms, p) {
					t.Errorf("README says %s has %q, but it lacks %s's %s", c.role, c.phrase, c.superset, p)
				}
			}
		}
	}
}

const (
	rolesBegin = "<!-- roles:begin (generated by go test ./internal/access -run TestAccessMatrixDoc -update) -->"
	rolesEnd   = "<!-- roles:end -->"
)

// rolesTable renders the role -> permission table from the code.
func rolesTable() string {
	order := []claims.Role{claims.RoleCustomer, claims.RoleClaimsProcessor, claims.RoleAIEngineer, claims.RoleAdmin, claims.RoleSuperAdmin}
	var b strings.Builder
	b.WriteString("| permission | delegable |")
	for _, r := range order {
		fmt.Fprintf(&b, " %s |", r)
	}
	b.WriteString("\n|---|---|")
	for range order {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, p := range Catalogue {
		d := "yes"
		if !Delegable(p) {
			d = "no"
		}
		fmt.Fprintf(&b, "| `%s` | %s |", p, d)
		for _, r := range order {
			mark := ""
			if has(roles[r].own, p) {
				mark = "own"
			} else if has(Permissions(r), p) {
				mark = "inherited"
			}
			fmt.Fprintf(&b, " %s |", mark)
		}
		b.WriteString("\n")
	}
	b.WriteString("| _inherits from_ | |")
	for _, r := range order {
		var in []string
		for _, x := range Inherits(r) {
			in = append(in, string(x))
		}
		fmt.Fprintf(&b, " %s |", strings.Join(in, ", "))
	}
	b.WriteString("\n| _authority limit (minor units)_ | |")
	for _, r := range order {
		fmt.Fprintf(&b, " %d |", DefaultAuthority(r))
	}
	b.WriteString("\n")
	return b.String()
}

// TestAccessMatrixDoc fails when the generated role table in
// docs/access-matrix.md and access.Permissions disagree. Run with -update
// to rewrite the table.
func TestAccessMatrixDoc(t *testing.T) {
	b, err := os.ReadFile(matrixDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, rolesBegin), strings.Index(doc, rolesEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q ... %q", matrixDoc, rolesBegin, rolesEnd)
	}
	want := rolesTable()
	got := doc[i+len(rolesBegin)+1 : j]
	if got == want {
		return
	}
	if *updateDocs {
		if err := os.WriteFile(matrixDoc, []byte(doc[:i+len(rolesBegin)+1]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's role table disagrees with access.Permissions; run go test ./internal/access -run TestAccessMatrixDoc -update\n--- doc\n%s--- code\n%s", matrixDoc, got, want)
}
