package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/seal"
)

// Each policyholder is a data subject with a data key of their own (the
// subject key), stored wrapped under the key ring's KEK. Their personal
// fields, and the free text of their claims, are sealed under it, so erasing
// a holder is destroying one key: the ciphertexts stay, unreadable, and
// amounts, decisions and the audit chain stay consistent.

// errErased is returned by holderKey for an erased subject.
var errErased = errors.New("store: data subject erased")

type holderPII struct {
	FullName    string `json:"fullName,omitempty"`
	DateOfBirth string `json:"dateOfBirth,omitempty"`
	Email       string `json:"email,omitempty"`
	Phone       string `json:"phone,omitempty"`
	Address     string `json:"address,omitempty"`
	NationalID  string `json:"nationalId,omitempty"`
}

func subjectKeyAAD(holderID claims.ID) []byte {
	return seal.AAD("policyholders", "subject_key", string(holderID))
}

// keyCache holds unwrapped subject keys for the length of one transaction.
type keyCache map[claims.ID]*seal.DEK

func (tx *Tx) keyCache() keyCache {
	if tx.keys == nil {
		tx.keys = keyCache{}
	}
	return tx.keys
}

// holderKey returns the unwrapped subject key of holder id, or errErased.
func (tx *Tx) holderKey(ctx context.Context, id claims.ID) (*seal.DEK, error) {
	kc := tx.keyCache()
	if k, ok := kc[id]; ok {
		if k == nil {
			return nil, errErased
		}
		return k, nil
	}
	var wrapped []byte
	err := tx.queryRow(ctx, `SELECT subject_key FROM policyholders WHERE id = ?`+tx.forShare(), id).Scan(&wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, claims.Errorf(claims.NotFound, "Policyholder not found.")
	}
	if err != nil {
		return nil, fmt.Errorf("select subject key of %s: %w", id, err)
	}
	if wrapped == nil {
		kc[id] = nil
		return nil, errErased
	}
	dek, err := tx.db.keys.UnwrapDEK(wrapped, subjectKeyAAD(id))
	if err != nil {
		return nil, fmt.Errorf("unwrap subject key of %s: %w", id, err)
	}
	kc[id] = &dek
	return &dek, nil
}

// loadHolderKeys puts the subject keys of ids into the transaction's key
// cache with one query per 500 holders, so that opening a page of claims of
// many holders does not run one holderKey query per holder. Unknown ids are
// left out (holderKey reports them); erased subjects are cached as erased.
// It takes no row lock, so it does nothing in PostgreSQL write
// transactions, where holderKey share-locks the holder before a seal.
func (tx *Tx) loadHolderKeys(ctx context.Context, ids []claims.ID) error {
	if tx.forShare() != "" {
		return nil // a PostgreSQL writer: holderKey takes the share lock, one holder at a time
	}
	kc := tx.keyCache()
	var need []any
	seen := map[claims.ID]bool{}
	for _, id := range ids {
		if _, ok := kc[id]; !ok && !seen[id] {
			seen[id] = true
			need = append(need, id)
		}
	}
	for len(need) > 0 {
		n := min(len(need), 500)
		rows, err := tx.query(ctx, `SELECT id, subject_key FROM policyholders WHERE id IN (?`+strings.Repeat(", ?", n-1)+`)`, need[:n]...)
		if err != nil {
			return fmt.Errorf("select subject keys: %w", err)
		}
		type wk struct {
			id      claims.ID
			wrapped []byte
		}
		var got []wk
		for rows.Next() {
			var w wk
			if err := rows.Scan(&w.id, &w.wrapped); err != nil {
				rows.Close()
				return err
			}
			got = append(got, w)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, w := range got {
			if w.wrapped == nil {
				kc[w.id] = nil
				continue
			}
			dek, err := tx.db.keys.UnwrapDEK(w.wrapped, subjectKeyAAD(w.id))
			if err != nil {
				return fmt.Errorf("unwrap subject key of %s: %w", w.id, err)
			}
			kc[w.id] = &dek
		}
		need = need[n:]
	}
	return nil
}

// sealFor seals plaintext under holder's subject key, bound to table.column:row.
func (tx *Tx) sealFor(ctx context.Context, holder claims.ID, table, column, row string, plaintext []byte) ([]byte, error) {
	k, err := tx.holderKey(ctx, holder)
	if err != nil {
		return nil, err
	}
	return k.Seal(plaintext, seal.AAD(table, column, row))
}

// openFor opens a value sealed by sealFor. For an erased holder it returns
// (nil, errErased) so callers can show the field as erased.
func (tx *Tx) openFor(ctx context.Context, holder claims.ID, table, column, row string, sealed []byte) ([]byte, error) {
	if sealed == nil {
		return nil, nil
	}
	k, err := tx.holderKey(ctx, holder)
	if err != nil {
		return nil, err
	}
	b, err := k.Open(sealed, seal.AAD(table, column, row))
	if err != nil {
		return nil, fmt.Errorf("open %s.%s of %s: %w", table, column, row, err)
	}
	return b, nil
}

// blind returns the blind index of a lookup value in domain.
func (db *DB) blind(domain, value string) []byte {
	return db.index.Index(domain, []byte(value))
}

// NormalizeEmail is the form emails are compared and indexed in.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// InsertHolder stores a new policyholder with a fresh subject key.
// source/sourceKey identify imported holders ("" for API-created ones).
func (tx *Tx) InsertHolder(ctx context.Context, h claims.Policyholder, source, sourceKey string) error {
	row, err := tx.holderRow(h, source, sourceKey)
	if err != nil {
		return err
	}
	if _, err = tx.exec(ctx, `INSERT INTO policyholders (`+holderInsertColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, row...); err != nil {
		return fmt.Errorf("insert policyholder: %w", err)
	}
	return nil
}

// holderInsertColumns are the columns holderRow gives values for.
const holderInsertColumns = `id, user_id, subject_key, pii, national_id_index, email_index,
		attributes, source, source_key, created_at`

// holderRow creates h's subject key (kept in the transaction's key cache,
// so the holder's claims are sealed under it without a query) and returns
// the values of holderInsertColumns, personal fields sealed.
func (tx *Tx) holderRow(h claims.Policyholder, source, sourceKey string) ([]any, error) {
	dek, wrapped, err := tx.db.keys.NewDEK(subjectKeyAAD(h.ID))
	if err != nil {
		return nil, fmt.Errorf("new subject key: %w", err)
	}
	tx.keyCache()[h.ID] = &dek
	pii, _ := json.Marshal(holderPII{
		FullName: h.FullName.Reveal(), DateOfBirth: h.DateOfBirth.String(), Email: h.Email.Reveal(),
		Phone: h.Phone.Reveal(), Address: h.Address.Reveal(), NationalID: h.NationalID.Reveal(),
	})
	sealed, err := dek.Seal(pii, seal.AAD("policyholders", "pii", string(h.ID)))
	if err != nil {
		return nil, err
	}
	var natIdx, emailIdx []byte
	if v := h.NationalID.Reveal(); v != "" {
		natIdx = tx.db.blind("holder.national_id", strings.TrimSpace(v))
	}
	if v := h.Email.Reveal(); v != "" {
		emailIdx = tx.db.blind("holder.email", NormalizeEmail(v))
	}
	if source == "" {
		source = "api"
	}
	var sk any
	if sourceKey != "" {
		sk = sourceKey
	}
	return []any{h.ID, nullID(h.UserID), wrapped, sealed, natIdx, emailIdx, attrs(h.Attributes), source, sk, micros(tx.now)}, nil
}

// Holder returns policyholder id with personal fields opened (empty and
// Erased set when the subject was erased).
func (tx *Tx) Holder(ctx context.Context, id claims.ID) (claims.Policyholder, error) {
	var (
		h        claims.Policyholder
		userID   sql.NullString
		pii      []byte
		attrText string
		erasedAt sql.NullInt64
		created  int64
	)
	err := tx.queryRow(ctx, `SELECT id, user_id, pii, attributes, erased_at, created_at FROM policyholders WHERE id = ?`, id).
		Scan(&h.ID, &userID, &pii, &attrText, &erasedAt, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return h, claims.Errorf(claims.NotFound, "Policyholder not found.")
	}
	if err != nil {
		return h, fmt.Errorf("select policyholder %s: %w", id, err)
	}
	h.UserID, h.CreatedAt, h.Attributes = claims.ID(userID.String), fromMicros(created), parseAttrs(attrText)
	plain, err := tx.openFor(ctx, h.ID, "policyholders", "pii", string(h.ID), pii)
	if errors.Is(err, errErased) || erasedAt.Valid {
		h.Erased = true
		return h, nil
	}
	if err != nil {
		return h, err
	}
	var p holderPII
	if len(plain) > 0 {
		if err := json.Unmarshal(plain, &p); err != nil {
			return h, fmt.Errorf("decode pii of %s: %w", id, err)
		}
	}
	h.FullName, h.Email, h.Phone, h.Address, h.NationalID = claims.Secret(p.FullName), claims.Secret(p.Email),
		claims.Secret(p.Phone), claims.Secret(p.Address), claims.Secret(p.NationalID)
	if p.DateOfBirth != "" {
		h.DateOfBirth, _ = claims.ParseDate(p.DateOfBirth)
	}
	return h, nil
}

// LinkHolderUser attaches a customer account to a policyholder.
func (tx *Tx) LinkHolderUser(ctx context.Context, holderID, userID claims.ID) error {
	if _, err := tx.exec(ctx, `UPDATE policyholders SET user_id = ? WHERE id = ?`, userID, holderID); err != nil {
		return fmt.Errorf("link holder %s: %w", holderID, err)
	}
	if _, err := tx.exec(ctx, `UPDATE users SET holder_id = ? WHERE id = ?`, holderID, userID); err != nil {
		return fmt.Errorf("link user %s: %w", userID, err)
	}
	return nil
}

// HoldersByEmail returns the ids of policyholders whose email matches,
// through the blind index.
func (tx *Tx) HoldersByEmail(ctx context.Context, email string) ([]claims.ID, error) {
	rows, err := tx.query(ctx, `SELECT id FROM policyholders WHERE email_index = ? AND erased_at IS NULL`,
		tx.db.blind("holder.email", NormalizeEmail(email)))
	if err != nil {
		return nil, fmt.Errorf("holders by email: %w", err)
	}
	defer rows.Close()
	var ids []claims.ID
	for rows.Next() {
		var id claims.ID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func nullID(id claims.ID) any {
	if id == "" {
		return nil
	}
	return string(id)
}

// attrs encodes m exactly as json.Marshal does (keys sorted, the same
// escaping), without reflection: imports encode one map per holder, policy
// and claim, and encoding/json was 8 % of an import's CPU.
func attrs(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	keys := make([]string, 0, len(m))
	n := 2
	for k, v := range m {
		keys = append(keys, k)
		n += len(k) + len(v) + 6
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return string(append(b, '}'))
}

// appendJSONString appends s as encoding/json writes it: printable ASCII
// other than the characters it escapes is copied, anything else goes
// through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func parseAttrs(s string) map[string]string {
	if s == "" || s == "{}" {
		return nil
	}
	var m map[string]string
	_ = json.Unmarshal([]byte(s), &m) // written by attrs; a bad value reads as none
	return m
}
