package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/openclaims/claims/internal/access"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/web"
	"github.com/openclaims/claims/internal/workflow"
)

func (h *Handler) approveDecision(w http.ResponseWriter, r *http.Request) error {
	return h.transition(w, r, nil, func(p claims.Principal, id claims.ID, v int64) (claims.Claim, error) {
		return h.flow.ApproveDecision(r.Context(), p, id, v)
	})
}

func (h *Handler) returnDecision(w http.ResponseWriter, r *http.Request) error {
	var req reasonRequest
	return h.transition(w, r, &req, func(p claims.Principal, id claims.ID, v int64) (claims.Claim, error) {
		return h.flow.ReturnDecision(r.Context(), p, id, v, req.Reason)
	})
}

type delegationRequest struct {
	To             string   `json:"to"`
	Permissions    []string `json:"permissions"`
	ExpiresAt      string   `json:"expiresAt"`
	MaxAmountMinor int64    `json:"maxAmountMinor"`
}

type delegationDTO struct {
	ID             string   `json:"id"`
	From           string   `json:"from"`
	To             string   `json:"to"`
	Permissions    []string `json:"permissions"`
	MaxAmountMinor int64    `json:"maxAmountMinor,omitempty"`
	CreatedAt      string   `json:"createdAt"`
	ExpiresAt      string   `json:"expiresAt"`
	Active         bool     `json:"active"`
}

func toDelegation(d access.Delegation) delegationDTO {
	out := delegationDTO{ID: string(d.ID), From: string(d.From), To: string(d.To), Permissions: []string{},
		MaxAmountMinor: d.MaxAmount, CreatedAt: stamp(d.CreatedAt), ExpiresAt: stamp(d.ExpiresAt), Active: d.Live(time.Now())}
	for _, p := range d.Permissions {
		out.Permissions = append(out.Permissions, string(p))
	}
	return out
}

func (h *Handler) createDelegation(w http.ResponseWriter, r *http.Request) error {
	var req delegationRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	exp, err := time.Parse(time.RFC3339, req.ExpiresAt)
	if err != nil {
		return claims.InvalidField("expiresAt", "datetime", "expiresAt must be an RFC 3339 time.")
	}
	d, err := h.flow.Delegate(r.Context(), principal(r), workflow.DelegationRequest{To: claims.ID(req.To),
		Permissions: req.Permissions, ExpiresAt: exp, MaxAmount: req.MaxAmountMinor})
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusCreated, toDelegation(d))
}

func (h *Handler) listDelegations(w http.ResponseWriter, r *http.Request) error {
	list, err := h.flow.Delegations(r.Context(), principal(r))
	if err != nil {
		return err
	}
	out := listDTO[delegationDTO]{Items: []delegationDTO{}}
	for _, d := range list {
		out.Items = append(out.Items, toDelegation(d))
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) revokeDelegation(w http.ResponseWriter, r *http.Request) error {
	if err := h.flow.RevokeDelegation(r.Context(), principal(r), pathID(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type roleDTO struct {
	Name                string   `json:"name"`
	BaseRole            string   `json:"baseRole"`
	Inherits            []string `json:"inherits"`
	Permissions         []string `json:"permissions"`
	AuthorityLimitMinor int64    `json:"authorityLimitMinor"`
	Custom              bool     `json:"custom"`
	Version             int64    `json:"version,omitempty"`
}

func (h *Handler) listRoles(w http.ResponseWriter, r *http.Request) error {
	list, err := h.flow.Roles(r.Context(), principal(r))
	if err != nil {
		return err
	}
	out := listDTO[roleDTO]{Items: []roleDTO{}}
	for _, x := range list {
		d := roleDTO{Name: x.Name, BaseRole: string(x.Base), Inherits: []string{}, Permissions: []string{},
			AuthorityLimitMinor: x.AuthorityLimit, Custom: x.Custom, Version: x.Version}
		for _, i := range x.Inherits {
			d.Inherits = append(d.Inherits, string(i))
		}
		for _, p := range x.Permissions {
			d.Permissions = append(d.Permissions, string(p))
		}
		out.Items = append(out.Items, d)
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

type customRoleRequest struct {
	BaseRole            string   `json:"baseRole"`
	Permissions         []string `json:"permissions"`
	AuthorityLimitMinor *int64   `json:"authorityLimitMinor"`
}

func (h *Handler) putRole(w http.ResponseWriter, r *http.Request) error {
	var req customRoleRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	cr := access.CustomRole{Name: r.PathValue("name"), Base: claims.Role(req.BaseRole), AuthorityLimit: req.AuthorityLimitMinor}
	for _, p := range req.Permissions {
		cr.Permissions = append(cr.Permissions, access.Permission(p))
	}
	v, err := h.flow.PutCustomRole(r.Context(), principal(r), cr)
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, map[string]any{"name": cr.Name, "version": v})
}

type authorityRequest struct {
	LimitMinor *int64 `json:"limitMinor"`
}

func (h *Handler) setAuthority(w http.ResponseWriter, r *http.Request) error {
	var req authorityRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := h.flow.SetAuthorityLimit(r.Context(), principal(r), pathID(r), req.LimitMinor); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type adminUserDTO struct {
	ID         string `json:"id"`
	Email      string `json:"email"`
	Role       string `json:"role"`
	Status     string `json:"status"`
	MFAEnabled bool   `json:"mfaEnabled"`
	CreatedAt  string `json:"createdAt"`
}

func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request) error {
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxPage {
			return claims.InvalidField("limit", "range", "limit must be between 1 and %d.", store.MaxPage)
		}
		limit = n
	}
	list, err := h.flow.Users(r.Context(), principal(r), limit)
	if err != nil {
		return err
	}
	out := listDTO[adminUserDTO]{Items: []adminUserDTO{}}
	for _, u := range list {
		out.Items = append(out.Items, adminUserDTO{ID: string(u.ID), Email: u.Email, Role: string(u.Role), Status: string(u.Status),
			MFAEnabled: u.MFAEnabled, CreatedAt: stamp(u.CreatedAt)})
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

type inviteRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

func (h *Handler) inviteUser(w http.ResponseWriter, r *http.Request) error {
	var req inviteRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	u, err := h.flow.InviteUser(r.Context(), principal(r), req.Email, claims.Role(req.Role))
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusCreated, adminUserDTO{ID: string(u.ID), Email: u.Email, Role: string(u.Role),
		Status: string(u.Status), CreatedAt: stamp(u.CreatedAt)})
}

type accessEntryDTO struct {
	At        string `json:"at"`
	ActorRole string `json:"actorRole"`
	Action    string `json:"action"`
	ClaimID   string `json:"claimId"`
	Purpose   string `json:"purpose,omitempty"`
}

func (h *Handler) accessLog(w http.ResponseWriter, r *http.Request) error {
	list, err := h.flow.AccessHistory(r.Context(), principal(r))
	if err != nil {
		return err
	}
	out := listDTO[accessEntryDTO]{Items: []accessEntryDTO{}}
	for _, e := range list {
		out.Items = append(out.Items, accessEntryDTO{At: stamp(e.At), ActorRole: e.ActorRole, Action: e.Action,
			ClaimID: string(e.ClaimID), Purpose: e.Purpose})
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

type trainingDTO struct {
	Pseudonym       string   `json:"pseudonym"`
	HolderPseudonym string   `json:"holderPseudonym"`
	ProductLine     string   `json:"productLine"`
	Type            string   `json:"type"`
	IncidentMonth   string   `json:"incidentMonth"`
	ReportDelayDays int      `json:"reportDelayDays"`
	Total           moneyDTO `json:"total"`
	Payable         moneyDTO `json:"payable"`
	Lines           int      `json:"lines"`
	Categories      []string `json:"categories"`
	Status          string   `json:"status"`
	Flags           []string `json:"flags"`
	Label           string   `json:"label"`
}

func (h *Handler) trainingClaims(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxPage {
			return claims.InvalidField("limit", "range", "limit must be between 1 and %d.", store.MaxPage)
		}
		limit = n
	}
	page, err := h.flow.TrainingData(r.Context(), principal(r), q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	out := listDTO[trainingDTO]{Items: []trainingDTO{}, NextCursor: page.NextCursor}
	for _, t := range page.Items {
		d := trainingDTO{Pseudonym: t.Pseudonym, HolderPseudonym: t.HolderPseudonym, ProductLine: string(t.ProductLine),
			Type: t.Type, IncidentMonth: t.IncidentMonth, ReportDelayDays: t.ReportDelayDays, Total: money(t.Total),
			Payable: money(t.Payable), Lines: t.Lines, Categories: append([]string{}, t.Categories...), Status: string(t.Status),
			Flags: []string{}, Label: t.Label}
		for _, f := range t.Flags {
			d.Flags = append(d.Flags, string(f))
		}
		out.Items = append(out.Items, d)
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

type linkRequest struct {
	Token string `json:"token"`
}

func (h *Handler) linkPolicyholder(w http.ResponseWriter, r *http.Request) error {
	var req linkRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := h.flow.ConfirmEmailLink(r.Context(), principal(r), req.Token); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) verifyEmail(w http.ResponseWriter, r *http.Request) error {
	var req linkRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := h.flow.VerifyEmail(r.Context(), req.Token); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
