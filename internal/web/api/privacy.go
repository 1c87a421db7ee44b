package api

import (
	"net/http"
	"time"

	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/web"
)

// Data subject rights: export and erasure (docs/data-protection.md).

type erasureDTO struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	HolderID    string `json:"holderId"`
	UserID      string `json:"userId,omitempty"`
	RequestedAt string `json:"requestedAt"`
	DecidedBy   string `json:"decidedBy,omitempty"`
	DecidedAt   string `json:"decidedAt,omitempty"`
}

func toErasure(r store.ErasureRequest) erasureDTO {
	d := erasureDTO{ID: string(r.ID), Status: r.Status, HolderID: string(r.HolderID), UserID: string(r.UserID),
		RequestedAt: r.RequestedAt.Format(time.RFC3339Nano), DecidedBy: string(r.DecidedBy)}
	if !r.DecidedAt.IsZero() {
		d.DecidedAt = r.DecidedAt.Format(time.RFC3339Nano)
	}
	return d
}

func (h *Handler) exportMe(w http.ResponseWriter, r *http.Request) error {
	x, err := h.flow.ExportSubject(r.Context(), principal(r))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Disposition", `attachment; filename="my-data.json"`)
	w.Header().Set("Cache-Control", "no-store")
	return web.WriteJSON(w, http.StatusOK, x)
}

func (h *Handler) requestErasure(w http.ResponseWriter, r *http.Request) error {
	req, err := h.flow.RequestErasure(r.Context(), principal(r))
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusAccepted, toErasure(req))
}

func (h *Handler) listErasureRequests(w http.ResponseWriter, r *http.Request) error {
	list, err := h.flow.ErasureRequests(r.Context(), principal(r), r.URL.Query().Get("status"))
	if err != nil {
		return err
	}
	out := make([]erasureDTO, 0, len(list))
	for _, e := range list {
		out = append(out, toErasure(e))
	}
	return web.WriteJSON(w, http.StatusOK, map[string]any{"items": out, "next_cursor": ""})
}

func (h *Handler) approveErasure(w http.ResponseWriter, r *http.Request) error {
	req, err := h.flow.ApproveErasure(r.Context(), principal(r), pathID(r))
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, toErasure(req))
}
