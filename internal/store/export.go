package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// SubjectExport is everything held about one data subject (GDPR art. 15,
// HIPAA right of access), as the customer downloads it: their account,
// personal data, policies, claims with lines, decisions and history,
// document metadata, sessions, and who accessed their data (the audit log).
type SubjectExport struct {
	Format        string          `json:"format"`
	GeneratedAt   time.Time       `json:"generatedAt"`
	Account       *ExportAccount  `json:"account,omitempty"`
	Holder        ExportHolder    `json:"policyholder"`
	Policies      []ExportPolicy  `json:"policies"`
	Claims        []ExportClaim   `json:"claims"`
	Sessions      []ExportSession `json:"sessions"`
	AccessHistory []ExportAudit   `json:"accessHistory"`
}

type ExportAccount struct {
	ID         string    `json:"id"`
	Email      string    `json:"email"`
	Role       string    `json:"role"`
	Status     string    `json:"status"`
	MFAEnabled bool      `json:"mfaEnabled"`
	CreatedAt  time.Time `json:"createdAt"`
}

type ExportHolder struct {
	ID          string            `json:"id"`
	FullName    string            `json:"fullName,omitempty"`
	DateOfBirth string            `json:"dateOfBirth,omitempty"`
	Email       string            `json:"email,omitempty"`
	Phone       string            `json:"phone,omitempty"`
	Address     string            `json:"address,omitempty"`
	NationalID  string            `json:"nationalId,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	Erased      bool              `json:"erased"`
	CreatedAt   time.Time         `json:"createdAt"`
}

type ExportMoney struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

func exportMoney(m claims.Money) ExportMoney {
	return ExportMoney{Amount: m.Decimal(), Currency: m.Currency}
}

type ExportPolicy struct {
	ID            string      `json:"id"`
	Number        string      `json:"number"`
	ProductLine   string      `json:"productLine"`
	Status        string      `json:"status"`
	EffectiveDate string      `json:"effectiveDate"`
	ExpiryDate    string      `json:"expiryDate"`
	CoverageLimit ExportMoney `json:"coverageLimit"`
	Deductible    ExportMoney `json:"deductible"`
	Premium       ExportMoney `json:"premium"`
	CoinsuranceBP int         `json:"coinsuranceBp"`
}

type ExportLine struct {
	Seq         int         `json:"seq"`
	Category    string      `json:"category"`
	Description string      `json:"description"`
	ServiceDate string      `json:"serviceDate,omitempty"`
	Amount      ExportMoney `json:"amount"`
}

type ExportDecision struct {
	Outcome   string      `json:"outcome"`
	Status    string      `json:"status"`
	Reason    string      `json:"reason,omitempty"`
	Payable   ExportMoney `json:"payable"`
	DecidedBy string      `json:"decidedBy,omitempty"`
	DecidedAt time.Time   `json:"decidedAt"`
}

type ExportTransition struct {
	From    string    `json:"from"`
	To      string    `json:"to"`
	ActorID string    `json:"actorId,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

type ExportDocument struct {
	ID          string    `json:"id"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"contentType"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"createdAt"`
}

type ExportClaim struct {
	ID           string             `json:"id"`
	Number       string             `json:"number"`
	PolicyID     string             `json:"policyId"`
	Type         string             `json:"type"`
	IncidentDate string             `json:"incidentDate"`
	ReportedDate string             `json:"reportedDate"`
	Description  string             `json:"description"`
	Location     string             `json:"location,omitempty"`
	Status       string             `json:"status"`
	Total        ExportMoney        `json:"total"`
	Payable      ExportMoney        `json:"payable"`
	Lines        []ExportLine       `json:"lines"`
	Decision     *ExportDecision    `json:"decision,omitempty"`
	History      []ExportTransition `json:"history"`
	Documents    []ExportDocument   `json:"documents"`
	Messages     []ExportMessage    `json:"messages"`
	CreatedAt    time.Time          `json:"createdAt"`
	UpdatedAt    time.Time          `json:"updatedAt"`
}

// ExportMessage is one message on the subject's claim.
type ExportMessage struct {
	AuthorRole string    `json:"authorRole"`
	Text       string    `json:"text"`
	At         time.Time `json:"at"`
}

type ExportSession struct {
	CreatedAt time.Time `json:"createdAt"`
	LastSeen  time.Time `json:"lastSeen"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"userAgent,omitempty"`
}

type ExportAudit struct {
	At         time.Time         `json:"at"`
	ActorID    string            `json:"actorId,omitempty"`
	Action     string            `json:"action"`
	ObjectType string            `json:"objectType,omitempty"`
	ObjectID   string            `json:"objectId,omitempty"`
	Outcome    string            `json:"outcome"`
	Details    map[string]string `json:"details,omitempty"`
}

// maxExportAudit bounds the access history in one export.
const maxExportAudit = 10000

func (tx *Tx) ids(ctx context.Context, q string, args ...any) ([]claims.ID, error) {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []claims.ID
	for rows.Next() {
		var id claims.ID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// SubjectExport gathers everything about policyholder holder and account
// user ("" = none).
func (tx *Tx) SubjectExport(ctx context.Context, holder, user claims.ID) (SubjectExport, error) {
	x := SubjectExport{Format: "claims-subject-export/1", GeneratedAt: tx.now,
		Policies: []ExportPolicy{}, Claims: []ExportClaim{}, Sessions: []ExportSession{}, AccessHistory: []ExportAudit{}}
	objects := []string{string(holder)}
	if user != "" {
		u, err := tx.User(ctx, user)
		if err != nil {
			return x, err
		}
		var sec Security
		if sec, err = tx.UserSecurity(ctx, user); err != nil {
			return x, err
		}
		x.Account = &ExportAccount{ID: string(u.ID), Email: u.Email, Role: string(u.Role), Status: string(u.Status),
			MFAEnabled: sec.MFAEnabled, CreatedAt: u.CreatedAt}
		sessions, err := tx.UserSessions(ctx, user)
		if err != nil {
			return x, err
		}
		for _, s := range sessions {
			x.Sessions = append(x.Sessions, ExportSession{CreatedAt: s.CreatedAt, LastSeen: s.LastSeen, IP: s.IP, UserAgent: s.UserAgent})
		}
		objects = append(objects, string(user))
	}
	h, err := tx.Holder(ctx, holder)
	if err != nil {
		return x, err
	}
	x.Holder = ExportHolder{ID: string(h.ID), FullName: h.FullName.Reveal(), Email: h.Email.Reveal(), Phone: h.Phone.Reveal(),
		Address: h.Address.Reveal(), NationalID: h.NationalID.Reveal(), Attributes: h.Attributes, Erased: h.Erased, CreatedAt: h.CreatedAt}
	if !h.DateOfBirth.IsZero() {
		x.Holder.DateOfBirth = h.DateOfBirth.String()
	}
	pols, err := tx.ids(ctx, `SELECT id FROM policies WHERE holder_id = ? ORDER BY created_at, id`, holder)
	if err != nil {
		return x, fmt.Errorf("export policies: %w", err)
	}
	for _, id := range pols {
		p, err := tx.Policy(ctx, id)
		if err != nil {
			return x, err
		}
		x.Policies = append(x.Policies, ExportPolicy{ID: string(p.ID), Number: p.Number, ProductLine: string(p.ProductLine),
			Status: string(p.Status), EffectiveDate: p.EffectiveDate.String(), ExpiryDate: p.ExpiryDate.String(),
			CoverageLimit: exportMoney(p.CoverageLimit), Deductible: exportMoney(p.Deductible), Premium: exportMoney(p.Premium),
			CoinsuranceBP: p.CoinsuranceBP})
		objects = append(objects, string(p.ID))
	}
	cids, err := tx.ids(ctx, `SELECT id FROM claims WHERE holder_id = ? ORDER BY created_at, id`, holder)
	if err != nil {
		return x, fmt.Errorf("export claims: %w", err)
	}
	for _, id := range cids {
		c, err := tx.Claim(ctx, id)
		if err != nil {
			return x, err
		}
		ec := ExportClaim{ID: string(c.ID), Number: c.Number, PolicyID: string(c.PolicyID), Type: c.Type,
			IncidentDate: c.IncidentDate.String(), ReportedDate: c.ReportedDate.String(), Description: c.Description,
			Location: c.Location, Status: string(c.Status), Total: exportMoney(c.Total), Payable: exportMoney(c.Payable),
			Lines: []ExportLine{}, History: []ExportTransition{}, Documents: []ExportDocument{}, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
		for _, l := range c.Lines {
			el := ExportLine{Seq: l.Seq, Category: l.Category, Description: l.Description, Amount: exportMoney(l.Amount)}
			if !l.ServiceDate.IsZero() {
				el.ServiceDate = l.ServiceDate.String()
			}
			ec.Lines = append(ec.Lines, el)
		}
		if d := c.Decision; d != nil {
			ec.Decision = &ExportDecision{Outcome: string(d.Outcome), Status: string(d.Status), Reason: d.Reason,
				Payable: exportMoney(d.Payable), DecidedBy: string(d.DecidedBy), DecidedAt: d.DecidedAt}
		}
		hist, err := tx.Transitions(ctx, c.ID, holder)
		if err != nil {
			return x, err
		}
		for _, t := range hist {
			ec.History = append(ec.History, ExportTransition{From: string(t.From), To: string(t.To), ActorID: string(t.ActorID), Reason: t.Reason, At: t.At})
		}
		docs, err := tx.ClaimDocuments(ctx, c.ID)
		if err != nil {
			return x, err
		}
		for _, d := range docs {
			ec.Documents = append(ec.Documents, ExportDocument{ID: string(d.ID), Filename: d.Filename, ContentType: d.ContentType,
				Size: d.Size, SHA256: d.SHA256, Status: string(d.Status), CreatedAt: d.CreatedAt})
			objects = append(objects, string(d.ID))
		}
		ec.Messages = []ExportMessage{}
		for after := (Cursor{}); ; {
			msgs, err := tx.Messages(ctx, c.ID, holder, after, MaxPage)
			if err != nil {
				return x, err
			}
			for _, m := range msgs {
				ec.Messages = append(ec.Messages, ExportMessage{AuthorRole: string(m.AuthorRole), Text: m.Body, At: m.CreatedAt})
			}
			if len(msgs) < MaxPage {
				break
			}
			last := msgs[len(msgs)-1]
			after = Cursor{At: micros(last.CreatedAt), ID: last.ID}
		}
		x.Claims = append(x.Claims, ec)
		objects = append(objects, string(c.ID))
	}
	// Who touched their data: entries about any of their objects, and
	// their own actions.
	q := `SELECT at, actor_id, action, object_type, object_id, outcome, details FROM audit_log WHERE object_id IN (?` +
		strings.Repeat(", ?", len(objects)-1) + `)`
	args := make([]any, 0, len(objects)+2)
	for _, o := range objects {
		args = append(args, o)
	}
	if user != "" {
		q += ` OR actor_id = ?`
		args = append(args, string(user))
	}
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, maxExportAudit)
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return x, fmt.Errorf("export access history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e       ExportAudit
			at      int64
			details string
		)
		if err := rows.Scan(&at, &e.ActorID, &e.Action, &e.ObjectType, &e.ObjectID, &e.Outcome, &details); err != nil {
			return x, err
		}
		e.At = fromMicros(at)
		if details != "" && details != "{}" {
			_ = jsonUnmarshal(details, &e.Details)
		}
		x.AccessHistory = append(x.AccessHistory, e)
	}
	return x, rows.Err()
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
