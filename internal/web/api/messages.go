package api

import (
	"net/http"
	"strconv"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/web"
)

// Claim messages (docs/live.md): the policyholder and the staff who may read
// a claim exchange short messages on it.

type messageDTO struct {
	ID         string `json:"id"`
	ClaimID    string `json:"claimId"`
	AuthorID   string `json:"authorId"`
	AuthorRole string `json:"authorRole"`
	Text       string `json:"text"`
	CreatedAt  string `json:"createdAt"`
}

type newMessageRequest struct {
	Text string `json:"text"`
}

func toMessage(m store.Message) messageDTO {
	return messageDTO{ID: string(m.ID), ClaimID: string(m.ClaimID), AuthorID: string(m.AuthorID),
		AuthorRole: string(m.AuthorRole), Text: m.Body, CreatedAt: stamp(m.CreatedAt)}
}

func (h *Handler) postMessage(w http.ResponseWriter, r *http.Request) error {
	var req newMessageRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	m, err := h.flow.PostMessage(r.Context(), principal(r), pathID(r), req.Text)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/claims/"+string(m.ClaimID)+"/messages")
	return web.WriteJSON(w, http.StatusCreated, toMessage(m))
}

func (h *Handler) listMessages(w http.ResponseWriter, r *http.Request) error {
	var limit int
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > store.MaxPage {
			return claims.InvalidField("limit", "range", "limit must be between 1 and %d.", store.MaxPage)
		}
		limit = n
	}
	page, err := h.flow.Messages(r.Context(), principal(r), pathID(r), r.URL.Query().Get("cursor"), limit)
	if err != nil {
		return err
	}
	out := listDTO[messageDTO]{Items: make([]messageDTO, 0, len(page.Items)), NextCursor: page.NextCursor}
	for _, m := range page.Items {
		out.Items = append(out.Items, toMessage(m))
	}
	return web.WriteJSON(w, http.StatusOK, out)
}
