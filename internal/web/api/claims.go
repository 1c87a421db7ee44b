package api

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/web"
	"github.com/openclaims/claims/internal/workflow"
)

func timeUntil(p workflow.TokenPair) float64 {
	return time.Until(p.ExpiresAt).Round(time.Second).Seconds()
}

// parseDate parses an optional date field, recording a field error.
func parseDate(v *claims.Validation, field, s string, required bool) claims.Date {
	if s == "" {
		if required {
			v.Add(field, "required", "%s is required (YYYY-MM-DD).", field)
		}
		return claims.Date{}
	}
	d, err := claims.ParseDate(s)
	if err != nil {
		v.Add(field, "date", "%s must be a date in YYYY-MM-DD form.", field)
	}
	return d
}

// parseMoney parses a decimal amount field in currency cur.
func parseMoney(v *claims.Validation, field, s, cur string) claims.Money {
	if s == "" {
		v.Add(field, "required", "%s is required (a decimal string such as \"120.50\").", field)
		return claims.Money{Currency: cur}
	}
	if !claims.ValidCurrency(cur) {
		return claims.Money{Currency: cur} // the currency field carries the error
	}
	m, err := claims.ParseMoney(s, cur)
	if err != nil {
		v.Add(field, "decimal", "%s: %v.", field, err)
	}
	return m
}

func (h *Handler) fileClaim(w http.ResponseWriter, r *http.Request) error {
	// The body is read once here so the idempotency fingerprint covers the
	// exact bytes, then decoded from the copy.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, web.MaxJSONBody))
	if err != nil {
		return claims.Errorf(claims.TooLarge, "The request body is larger than %d bytes.", web.MaxJSONBody)
	}
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	var req newClaimRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	var v claims.Validation
	in := claims.NewClaimInput{PolicyNumber: req.PolicyNumber, Type: req.Type, Description: req.Description,
		Location: req.Location, Currency: req.Currency}
	in.IncidentDate = parseDate(&v, "incidentDate", req.IncidentDate, true)
	if !claims.ValidCurrency(req.Currency) {
		v.Add("currency", "enum", "currency must be a supported ISO 4217 code such as USD or EUR.")
	}
	if len(req.Lines) > claims.MaxLines {
		v.Add("lines", "max_items", "A claim may have at most %d line items.", claims.MaxLines)
		req.Lines = req.Lines[:claims.MaxLines]
	}
	for i, l := range req.Lines {
		f := fmt.Sprintf("lines[%d]", i)
		in.Lines = append(in.Lines, claims.NewLineInput{Category: l.Category, Description: l.Description,
			ServiceDate: parseDate(&v, f+".serviceDate", l.ServiceDate, false),
			Amount:      parseMoney(&v, f+".amount", l.Amount, req.Currency)})
	}
	if err := v.Err(); err != nil {
		return err
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 200 {
		return claims.InvalidField("Idempotency-Key", "max_length", "Idempotency-Key must be at most 200 characters.")
	}
	c, replayed, err := h.flow.FileClaim(r.Context(), principal(r), workflow.FileRequest{
		Input: in, Submit: req.Submit, IdempotencyKey: key,
		RequestHash: workflow.RequestHash(r.Method, r.URL.Path, body)})
	if err != nil {
		return err
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/api/v1/claims/"+string(c.ID))
	return writeClaim(w, http.StatusCreated, c)
}

func (h *Handler) getClaim(w http.ResponseWriter, r *http.Request) error {
	c, err := h.flow.Claim(r.Context(), principal(r), pathID(r))
	if err != nil {
		return err
	}
	return writeClaim(w, http.StatusOK, c)
}

func (h *Handler) claimHistory(w http.ResponseWriter, r *http.Request) error {
	list, err := h.flow.History(r.Context(), principal(r), pathID(r))
	if err != nil {
		return err
	}
	out := listDTO[transitionDTO]{Items: []transitionDTO{}}
	for _, t := range list {
		out.Items = append(out.Items, transitionDTO{From: string(t.From), To: string(t.To), ActorID: string(t.ActorID),
			Reason: t.Reason, At: stamp(t.At)})
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) listClaims(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var v claims.Validation
	req := workflow.ListRequest{Cursor: q.Get("cursor"), PolicyNumber: q.Get("policy"),
		AssigneeID: claims.ID(q.Get("assignee"))}
	if req.AssigneeID == "none" {
		req.AssigneeID, req.Unassigned = "", true
	} else if req.AssigneeID == "me" {
		req.AssigneeID = principal(r).UserID
	}
	for _, s := range q["status"] {
		for _, x := range strings.Split(s, ",") {
			if !claims.ValidStatus(claims.Status(x)) {
				v.Add("status", "enum", "status must be one of the claim statuses.")
				break
			}
			req.Status = append(req.Status, claims.Status(x))
		}
	}
	if len(req.Status) > len(claims.Statuses) {
		v.Add("status", "max_items", "Too many status values.")
	}
	req.IncidentFrom = parseDate(&v, "incidentFrom", q.Get("incidentFrom"), false)
	req.IncidentTo = parseDate(&v, "incidentTo", q.Get("incidentTo"), false)
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxPage {
			v.Add("limit", "range", "limit must be between 1 and %d.", store.MaxPage)
		}
		req.Limit = n
	}
	if err := v.Err(); err != nil {
		return err
	}
	page, err := h.flow.ListClaims(r.Context(), principal(r), req)
	if err != nil {
		return err
	}
	out := listDTO[claimDTO]{Items: []claimDTO{}, NextCursor: page.NextCursor}
	for _, c := range page.Items {
		out.Items = append(out.Items, toClaim(c))
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

// transition handles the POST /claims/{id}/<action> routes that take an
// optional JSON body.
func (h *Handler) transition(w http.ResponseWriter, r *http.Request, body any,
	do func(p claims.Principal, id claims.ID, version int64) (claims.Claim, error)) error {
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	if body != nil && r.ContentLength != 0 {
		if err := web.DecodeJSON(w, r, body); err != nil {
			return err
		}
	}
	c, err := do(principal(r), pathID(r), version)
	if err != nil {
		return err
	}
	return writeClaim(w, http.StatusOK, c)
}

func (h *Handler) submit(w http.ResponseWriter, r *http.Request) error {
	return h.transition(w, r, nil, func(p claims.Principal, id claims.ID, v int64) (claims.Claim, error) {
		return h.flow.Submit(r.Context(), p, id, v)
	})
}

func (h *Handler) withdraw(w http.ResponseWriter, r *http.Request) error {
	var req reasonRequest
	return h.transition(w, r, &req, func(p claims.Principal, id claims.ID, v int64) (claims.Claim, error) {
		return h.flow.Withdraw(r.Context(), p, id, v, req.Reason)
	})
}

func (h *Handler) assign(w http.ResponseWriter, r *http.Request) error {
	var req assignRequest
	return h.transition(w, r, &req, func(p claims.Principal, id claims.ID, v int64) (claims.Claim, error) {
		return h.flow.Assign(r.Context(), p, id, v, claims.ID(req.AssigneeID))
	})
}

func (h *Handler) requestInfo(w http.ResponseWriter, r *http.Request) error {
	var req messageRequest
	return h.transition(w, r, &req, func(p claims.Principal, id claims.ID, v int64) (claims.Claim, error) {
		return h.flow.RequestInfo(r.Context(), p, id, v, req.Message)
	})
}

func (h *Handler) respond(w http.ResponseWriter, r *http.Request) error {
	var req messageRequest
	return h.transition(w, r, &req, func(p claims.Principal, id claims.ID, v int64) (claims.Claim, error) {
		return h.flow.RespondInfo(r.Context(), p, id, v, req.Message)
	})
}

func (h *Handler) appeal(w http.ResponseWriter, r *http.Request) error {
	var req reasonRequest
	return h.transition(w, r, &req, func(p claims.Principal, id claims.ID, v int64) (claims.Claim, error) {
		return h.flow.Appeal(r.Context(), p, id, v, req.Reason)
	})
}

func (h *Handler) decide(w http.ResponseWriter, r *http.Request) error {
	var req decideRequest
	return h.transition(w, r, &req, func(p claims.Principal, id claims.ID, ver int64) (claims.Claim, error) {
		var v claims.Validation
		out := claims.Outcome(req.Outcome)
		if out != claims.OutcomeApprove && out != claims.OutcomeDeny {
			v.Add("outcome", "enum", "outcome must be approve or deny.")
		}
		var overrides []workflow.OverrideInput
		if len(req.Lines) > claims.MaxLines {
			v.Add("lines", "max_items", "At most %d line overrides.", claims.MaxLines)
			req.Lines = nil
		}
		for i, l := range req.Lines {
			claims.ValidateText(&v, fmt.Sprintf("lines[%d].note", i), l.Note, claims.MaxReasonRunes, false)
			overrides = append(overrides, workflow.OverrideInput{LineID: claims.ID(l.LineID), Exclude: l.Exclude,
				Allowed: l.Allowed, Note: l.Note})
		}
		if err := v.Err(); err != nil {
			return claims.Claim{}, err
		}
		return h.flow.Decide(r.Context(), p, id, ver, workflow.DecideRequest{Outcome: out, Reason: req.Reason, Overrides: overrides})
	})
}

func (h *Handler) pay(w http.ResponseWriter, r *http.Request) error {
	var req payRequest
	return h.transition(w, r, &req, func(p claims.Principal, id claims.ID, v int64) (claims.Claim, error) {
		return h.flow.Pay(r.Context(), p, id, v, req.Reference)
	})
}

func (h *Handler) closeClaim(w http.ResponseWriter, r *http.Request) error {
	return h.transition(w, r, nil, func(p claims.Principal, id claims.ID, v int64) (claims.Claim, error) {
		return h.flow.Close(r.Context(), p, id, v)
	})
}
