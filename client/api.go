package client

import (
	"context"
	"net/url"
	"strconv"
	"strings"
)

// Tokens is a sign-in answer.
type Tokens struct {
	AccessToken   string `json:"access_token"`
	TokenType     string `json:"token_type"`
	ExpiresIn     int    `json:"expires_in"`
	RefreshToken  string `json:"refresh_token"`
	MFARequired   bool   `json:"mfa_required"`
	MFAToken      string `json:"mfa_token"`
	EndedSessions int    `json:"ended_sessions"`
}

// Login signs in. When the account has a second factor, the answer has
// MFARequired and an MFAToken: call CompleteMFA with a code. Otherwise the
// client keeps the tokens for later calls.
func (c *Client) Login(ctx context.Context, email, password string) (*Tokens, error) {
	var t Tokens
	if _, err := c.do(ctx, "POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": password}, &t); err != nil {
		return nil, err
	}
	if t.AccessToken != "" {
		c.SetTokens(t.AccessToken, t.RefreshToken)
	}
	return &t, nil
}

// CompleteMFA is the second sign-in step: the mfa_token from Login and a
// TOTP code (or, with recovery set, a recovery code).
func (c *Client) CompleteMFA(ctx context.Context, mfaToken, code string, recovery bool) (*Tokens, error) {
	body := map[string]string{"mfa_token": mfaToken, "code": code}
	if recovery {
		body = map[string]string{"mfa_token": mfaToken, "recovery_code": code}
	}
	var t Tokens
	if _, err := c.do(ctx, "POST", "/api/v1/auth/mfa", "", body, &t); err != nil {
		return nil, err
	}
	c.SetTokens(t.AccessToken, t.RefreshToken)
	return &t, nil
}

// Refresh exchanges the refresh token (single use) for new tokens.
func (c *Client) Refresh(ctx context.Context) error {
	_, refresh := c.Tokens()
	var t Tokens
	if _, err := c.do(ctx, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}, &t); err != nil {
		return err
	}
	c.SetTokens(t.AccessToken, t.RefreshToken)
	return nil
}

// Logout ends the session and forgets the tokens.
func (c *Client) Logout(ctx context.Context) error {
	_, err := c.Do(ctx, "POST", "/api/v1/auth/logout", nil, nil)
	if err == nil {
		c.SetTokens("", "")
	}
	return err
}

// Money is a decimal amount (a string, never a float) and its currency.
type Money struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// Line is a claim line.
type Line struct {
	ID          string `json:"id,omitempty"`
	Seq         int    `json:"seq,omitempty"`
	Category    string `json:"category"`
	Description string `json:"description"`
	ServiceDate string `json:"serviceDate,omitempty"`
	Amount      Money  `json:"amount"`
}

// Decision is a claim's adjudication.
type Decision struct {
	Outcome   string `json:"outcome"`
	Status    string `json:"status"`
	Reason    string `json:"reason"`
	Submitted Money  `json:"submitted"`
	Eligible  Money  `json:"eligible"`
	Payable   Money  `json:"payable"`
	DecidedBy string `json:"decidedBy"`
	DecidedAt string `json:"decidedAt"`
}

// Claim is a claim as the API returns it.
type Claim struct {
	ID                 string    `json:"id"`
	Number             string    `json:"number"`
	PolicyID           string    `json:"policyId"`
	Type               string    `json:"type"`
	IncidentDate       string    `json:"incidentDate"`
	ReportedDate       string    `json:"reportedDate"`
	Description        string    `json:"description"`
	Location           string    `json:"location"`
	Status             string    `json:"status"`
	AllowedTransitions []string  `json:"allowedTransitions"`
	AssigneeID         string    `json:"assigneeId"`
	Total              Money     `json:"total"`
	Payable            Money     `json:"payable"`
	Flags              []string  `json:"flags"`
	Appealed           bool      `json:"appealed"`
	Version            int64     `json:"version"`
	Lines              []Line    `json:"lines"`
	Decision           *Decision `json:"decision"`
	CreatedAt          string    `json:"createdAt"`
	UpdatedAt          string    `json:"updatedAt"`
}

// NewLine is a line of a new claim; Amount is a decimal string.
type NewLine struct {
	Category    string `json:"category"`
	Description string `json:"description"`
	ServiceDate string `json:"serviceDate,omitempty"`
	Amount      string `json:"amount"`
}

// NewClaim is a first notice of loss.
type NewClaim struct {
	PolicyNumber string    `json:"policyNumber"`
	Type         string    `json:"type"`
	IncidentDate string    `json:"incidentDate"`
	Description  string    `json:"description"`
	Location     string    `json:"location,omitempty"`
	Currency     string    `json:"currency"`
	Lines        []NewLine `json:"lines"`
	Submit       bool      `json:"submit,omitempty"`
}

// FileClaim files a claim. idempotencyKey (optional) makes a retry after a
// lost answer return the same claim instead of filing twice.
func (c *Client) FileClaim(ctx context.Context, in NewClaim, idempotencyKey string) (*Claim, error) {
	var h []string
	if idempotencyKey != "" {
		h = []string{"Idempotency-Key", idempotencyKey}
	}
	var out Claim
	if _, err := c.Do(ctx, "POST", "/api/v1/claims", in, &out, h...); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetClaim returns one claim (the read is audited).
func (c *Client) GetClaim(ctx context.Context, id string) (*Claim, error) {
	var out Claim
	if _, err := c.Do(ctx, "GET", "/api/v1/claims/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ClaimPage is one page of a claim list.
type ClaimPage struct {
	Items      []Claim `json:"items"`
	NextCursor string  `json:"next_cursor"`
}

// ListOptions filters ListClaims.
type ListOptions struct {
	Status   []string
	Assignee string // a user id, "me" or "none"
	Cursor   string
	Limit    int
}

// ListClaims returns the claims the caller may see, newest first.
func (c *Client) ListClaims(ctx context.Context, o ListOptions) (*ClaimPage, error) {
	q := url.Values{}
	if len(o.Status) > 0 {
		q.Set("status", strings.Join(o.Status, ","))
	}
	if o.Assignee != "" {
		q.Set("assignee", o.Assignee)
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	path := "/api/v1/claims"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out ClaimPage
	if _, err := c.Do(ctx, "GET", path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Decide approves or denies a claim under review. version is the claim's
// version (its ETag); a stale one answers a 412 Problem.
func (c *Client) Decide(ctx context.Context, id string, version int64, outcome, reason string) (*Claim, error) {
	var out Claim
	_, err := c.Do(ctx, "POST", "/api/v1/claims/"+url.PathEscape(id)+"/decide", map[string]string{"outcome": outcome, "reason": reason},
		&out, "If-Match", `"`+strconv.FormatInt(version, 10)+`"`)
	if err != nil {
		return nil, err
	}
	return &out, nil
}
