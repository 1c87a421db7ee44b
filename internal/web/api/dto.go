package api

import (
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// The response and request types of /api/v1. These are the only JSON tags in
// the product: each field that leaves the server is chosen here.

type moneyDTO struct {
	Amount   string `json:"amount"` // decimal string in the currency's minor-unit precision; never a float
	Currency string `json:"currency"`
}

func money(m claims.Money) moneyDTO { return moneyDTO{Amount: m.Decimal(), Currency: m.Currency} }

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

type lineDTO struct {
	ID          string   `json:"id"`
	Seq         int      `json:"seq"`
	Category    string   `json:"category"`
	Description string   `json:"description"`
	ServiceDate string   `json:"serviceDate,omitempty"`
	Amount      moneyDTO `json:"amount"`
}

type lineDecisionDTO struct {
	LineID             string   `json:"lineId"`
	Seq                int      `json:"seq"`
	Submitted          moneyDTO `json:"submitted"`
	Eligible           moneyDTO `json:"eligible"`
	DeductibleApplied  moneyDTO `json:"deductibleApplied"`
	CoinsuranceApplied moneyDTO `json:"coinsuranceApplied"`
	LimitApplied       moneyDTO `json:"limitApplied"`
	Benefit            moneyDTO `json:"benefit"`
	Reasons            []string `json:"reasons"`
}

type decisionDTO struct {
	Outcome           string            `json:"outcome"`
	Status            string            `json:"status"`
	Reason            string            `json:"reason"`
	Submitted         moneyDTO          `json:"submitted"`
	Eligible          moneyDTO          `json:"eligible"`
	DeductibleApplied moneyDTO          `json:"deductibleApplied"`
	Payable           moneyDTO          `json:"payable"`
	DecidedBy         string            `json:"decidedBy"`
	DecidedAt         string            `json:"decidedAt"`
	Lines             []lineDecisionDTO `json:"lines"`
}

type claimDTO struct {
	ID                 string       `json:"id"`
	Number             string       `json:"number"`
	PolicyID           string       `json:"policyId"`
	Type               string       `json:"type"`
	IncidentDate       string       `json:"incidentDate"`
	ReportedDate       string       `json:"reportedDate"`
	Description        string       `json:"description"`
	Location           string       `json:"location"`
	Status             string       `json:"status"`
	AllowedTransitions []string     `json:"allowedTransitions"`
	AssigneeID         string       `json:"assigneeId,omitempty"`
	Total              moneyDTO     `json:"total"`
	Payable            moneyDTO     `json:"payable"`
	Flags              []string     `json:"flags"`
	Appealed           bool         `json:"appealed"`
	Source             string       `json:"source"`
	Version            int64        `json:"version"`
	Lines              []lineDTO    `json:"lines,omitempty"`
	Decision           *decisionDTO `json:"decision,omitempty"`
	CreatedAt          string       `json:"createdAt"`
	UpdatedAt          string       `json:"updatedAt"`
}

func toClaim(c claims.Claim) claimDTO {
	d := claimDTO{ID: string(c.ID), Number: c.Number, PolicyID: string(c.PolicyID), Type: c.Type,
		IncidentDate: c.IncidentDate.String(), ReportedDate: c.ReportedDate.String(), Description: c.Description,
		Location: c.Location, Status: string(c.Status), AssigneeID: string(c.AssigneeID), Total: money(c.Total),
		Payable: money(c.Payable), Flags: []string{}, Appealed: c.Appealed, Source: c.Source, Version: c.Version,
		CreatedAt: stamp(c.CreatedAt), UpdatedAt: stamp(c.UpdatedAt), AllowedTransitions: []string{}}
	for _, s := range c.Status.Next() {
		d.AllowedTransitions = append(d.AllowedTransitions, string(s))
	}
	for _, f := range c.Flags {
		d.Flags = append(d.Flags, string(f))
	}
	for _, l := range c.Lines {
		d.Lines = append(d.Lines, lineDTO{ID: string(l.ID), Seq: l.Seq, Category: l.Category, Description: l.Description,
			ServiceDate: l.ServiceDate.String(), Amount: money(l.Amount)})
	}
	if dec := c.Decision; dec != nil {
		dd := &decisionDTO{Outcome: string(dec.Outcome), Status: string(dec.Status), Reason: dec.Reason,
			Submitted: money(dec.Submitted), Eligible: money(dec.Eligible), DeductibleApplied: money(dec.DeductibleApplied),
			Payable: money(dec.Payable), DecidedBy: string(dec.DecidedBy), DecidedAt: stamp(dec.DecidedAt),
			Lines: []lineDecisionDTO{}}
		for _, ld := range dec.Lines {
			r := []string{}
			for _, x := range ld.Reasons {
				r = append(r, string(x))
			}
			dd.Lines = append(dd.Lines, lineDecisionDTO{LineID: string(ld.LineID), Seq: ld.Seq, Submitted: money(ld.Submitted),
				Eligible: money(ld.Eligible), DeductibleApplied: money(ld.DeductibleApplied),
				CoinsuranceApplied: money(ld.CoinsuranceApplied), LimitApplied: money(ld.LimitApplied),
				Benefit: money(ld.Benefit), Reasons: r})
		}
		d.Decision = dd
	}
	return d
}

type policyDTO struct {
	ID            string   `json:"id"`
	Number        string   `json:"number"`
	ProductLine   string   `json:"productLine"`
	Status        string   `json:"status"`
	EffectiveDate string   `json:"effectiveDate"`
	ExpiryDate    string   `json:"expiryDate"`
	CoverageLimit moneyDTO `json:"coverageLimit"`
	Deductible    moneyDTO `json:"deductible"`
	Premium       moneyDTO `json:"premium"`
	CoinsuranceBP int      `json:"coinsuranceBp"`
	CreatedAt     string   `json:"createdAt"`
}

func toPolicy(p claims.Policy) policyDTO {
	return policyDTO{ID: string(p.ID), Number: p.Number, ProductLine: string(p.ProductLine), Status: string(p.Status),
		EffectiveDate: p.EffectiveDate.String(), ExpiryDate: p.ExpiryDate.String(), CoverageLimit: money(p.CoverageLimit),
		Deductible: money(p.Deductible), Premium: money(p.Premium), CoinsuranceBP: p.CoinsuranceBP, CreatedAt: stamp(p.CreatedAt)}
}

type transitionDTO struct {
	From    string `json:"from"`
	To      string `json:"to"`
	ActorID string `json:"actorId,omitempty"`
	Reason  string `json:"reason,omitempty"`
	At      string `json:"at"`
}

type listDTO[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

type auditDTO struct {
	Seq        int64             `json:"seq"`
	At         string            `json:"at"`
	ActorID    string            `json:"actorId"`
	OnBehalfOf string            `json:"onBehalfOf,omitempty"`
	Action     string            `json:"action"`
	ObjectType string            `json:"objectType"`
	ObjectID   string            `json:"objectId"`
	Outcome    string            `json:"outcome"`
	IP         string            `json:"ip"`
	RequestID  string            `json:"requestId"`
	Details    map[string]string `json:"details,omitempty"`
}

type tokenDTO struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

type userDTO struct {
	ID          string   `json:"id"`
	Email       string   `json:"email"`
	Role        string   `json:"role"`
	Permissions []string `json:"permissions,omitempty"`
}

// Requests.

type registerRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	FullName string `json:"fullName"`
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type newLineRequest struct {
	Category    string `json:"category"`
	Description string `json:"description"`
	ServiceDate string `json:"serviceDate"`
	Amount      string `json:"amount"`
}

type newClaimRequest struct {
	PolicyNumber string           `json:"policyNumber"`
	Type         string           `json:"type"`
	IncidentDate string           `json:"incidentDate"`
	Description  string           `json:"description"`
	Location     string           `json:"location"`
	Currency     string           `json:"currency"`
	Lines        []newLineRequest `json:"lines"`
	Submit       bool             `json:"submit"`
}

type reasonRequest struct {
	Reason string `json:"reason"`
}

type messageRequest struct {
	Message string `json:"message"`
}

type assignRequest struct {
	AssigneeID string `json:"assigneeId"`
}

type lineOverrideRequest struct {
	LineID  string  `json:"lineId"`
	Exclude bool    `json:"exclude"`
	Allowed *string `json:"allowed"`
	Note    string  `json:"note"`
}

type decideRequest struct {
	Outcome string                `json:"outcome"`
	Reason  string                `json:"reason"`
	Lines   []lineOverrideRequest `json:"lines"`
}

type payRequest struct {
	Reference string `json:"reference"`
}

type newPolicyRequest struct {
	Number        string `json:"number"`
	ProductLine   string `json:"productLine"`
	EffectiveDate string `json:"effectiveDate"`
	ExpiryDate    string `json:"expiryDate"`
	Currency      string `json:"currency"`
	CoverageLimit string `json:"coverageLimit"`
	Deductible    string `json:"deductible"`
	Premium       string `json:"premium"`
	CoinsuranceBP int    `json:"coinsuranceBp"`
	HolderEmail   string `json:"holderEmail"`
	Holder        *struct {
		FullName    string `json:"fullName"`
		DateOfBirth string `json:"dateOfBirth"`
		Email       string `json:"email"`
		Phone       string `json:"phone"`
		Address     string `json:"address"`
		NationalID  string `json:"nationalId"`
	} `json:"holder"`
}
