package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/web"
	"github.com/openclaims/claims/internal/workflow"
)

func (h *Handler) listPolicies(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxPage {
			return claims.InvalidField("limit", "range", "limit must be between 1 and %d.", store.MaxPage)
		}
		limit = n
	}
	page, err := h.flow.Policies(r.Context(), principal(r), q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	out := listDTO[policyDTO]{Items: []policyDTO{}, NextCursor: page.NextCursor}
	for _, p := range page.Items {
		out.Items = append(out.Items, toPolicy(p))
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) getPolicy(w http.ResponseWriter, r *http.Request) error {
	p, err := h.flow.Policy(r.Context(), principal(r), pathID(r))
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, toPolicy(p))
}

func (h *Handler) createPolicy(w http.ResponseWriter, r *http.Request) error {
	var req newPolicyRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	var v claims.Validation
	if !claims.ValidCurrency(req.Currency) {
		v.Add("currency", "enum", "currency must be a supported ISO 4217 code.")
	}
	pol := claims.Policy{Number: req.Number, ProductLine: claims.ProductLine(req.ProductLine), CoinsuranceBP: req.CoinsuranceBP,
		EffectiveDate: parseDate(&v, "effectiveDate", req.EffectiveDate, true),
		ExpiryDate:    parseDate(&v, "expiryDate", req.ExpiryDate, true),
		CoverageLimit: parseMoney(&v, "coverageLimit", req.CoverageLimit, req.Currency),
		Deductible:    parseMoney(&v, "deductible", orZero(req.Deductible), req.Currency),
		Premium:       parseMoney(&v, "premium", orZero(req.Premium), req.Currency)}
	var holder claims.Policyholder
	switch {
	case req.HolderEmail == "" && req.Holder == nil:
		v.Add("holder", "required", "Give holderEmail (an existing customer) or holder (a new policyholder).")
	case req.Holder != nil:
		hd := req.Holder
		claims.ValidateText(&v, "holder.fullName", hd.FullName, claims.MaxShortTextRunes, true)
		claims.ValidateText(&v, "holder.email", hd.Email, 254, false)
		claims.ValidateText(&v, "holder.phone", hd.Phone, 50, false)
		claims.ValidateText(&v, "holder.address", hd.Address, claims.MaxShortTextRunes, false)
		claims.ValidateText(&v, "holder.nationalId", hd.NationalID, 50, false)
		holder = claims.Policyholder{FullName: claims.Secret(hd.FullName), Email: claims.Secret(hd.Email),
			Phone: claims.Secret(hd.Phone), Address: claims.Secret(hd.Address), NationalID: claims.Secret(hd.NationalID),
			DateOfBirth: parseDate(&v, "holder.dateOfBirth", hd.DateOfBirth, false)}
	}
	if err := v.Err(); err != nil {
		return err
	}
	p, err := h.flow.CreatePolicy(r.Context(), principal(r), workflow.NewPolicyRequest{Policy: pol, Holder: holder, HolderEmail: req.HolderEmail})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/policies/"+string(p.ID))
	return web.WriteJSON(w, http.StatusCreated, toPolicy(p))
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func (h *Handler) auditTrail(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var v claims.Validation
	f := store.AuditFilter{ActorID: claims.ID(q.Get("actor")), ObjectType: q.Get("objectType"), ObjectID: q.Get("object"),
		Action: q.Get("action")}
	parseTime := func(field string) time.Time {
		s := q.Get(field)
		if s == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			v.Add(field, "datetime", "%s must be an RFC 3339 time.", field)
		}
		return t
	}
	f.From, f.To = parseTime("from"), parseTime("to")
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			v.Add("after", "integer", "after must be a sequence number.")
		}
		f.AfterSeq = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			v.Add("limit", "range", "limit must be between 1 and 1000.")
		}
		f.Limit = n
	}
	if err := v.Err(); err != nil {
		return err
	}
	list, err := h.flow.AuditTrail(r.Context(), principal(r), f)
	if err != nil {
		return err
	}
	out := listDTO[auditDTO]{Items: []auditDTO{}}
	for _, e := range list {
		out.Items = append(out.Items, auditDTO{Seq: e.Seq, At: stamp(e.At), ActorID: string(e.ActorID),
			OnBehalfOf: string(e.OnBehalfOf), Action: e.Action, ObjectType: e.ObjectType, ObjectID: e.ObjectID,
			Outcome: e.Outcome, IP: e.IP, RequestID: e.RequestID, Details: e.Details})
	}
	if n := len(list); n > 0 && (f.Limit == 0 && n == 100 || n == f.Limit) {
		out.NextCursor = strconv.FormatInt(list[n-1].Seq, 10)
	}
	return web.WriteJSON(w, http.StatusOK, out)
}
