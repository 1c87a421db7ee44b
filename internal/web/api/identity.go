package api

import (
	"encoding/base64"
	"net/http"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/web"
	"github.com/openclaims/claims/internal/workflow"
)

// mfaEnrollmentRoutes are all an administrator without a second factor may
// use: they must enrol before anything else.
var mfaEnrollmentRoutes = map[string]bool{
	"GET /api/v1/me":                true,
	"POST /api/v1/auth/mfa/enroll":  true,
	"POST /api/v1/auth/mfa/confirm": true,
	"POST /api/v1/auth/logout":      true,
}

type loginResponse struct {
	MFARequired   bool   `json:"mfa_required,omitempty"`
	MFAToken      string `json:"mfa_token,omitempty"`
	AccessToken   string `json:"access_token,omitempty"`
	TokenType     string `json:"token_type,omitempty"`
	ExpiresIn     int    `json:"expires_in"`
	RefreshToken  string `json:"refresh_token,omitempty"`
	EndedSessions int    `json:"ended_sessions,omitempty"`
}

func loginResult(r workflow.LoginResult) loginResponse {
	if r.Tokens == nil {
		return loginResponse{MFARequired: true, MFAToken: r.MFAToken, ExpiresIn: 300}
	}
	t := tokens(*r.Tokens)
	return loginResponse{AccessToken: t.AccessToken, TokenType: t.TokenType, ExpiresIn: t.ExpiresIn,
		RefreshToken: t.RefreshToken, EndedSessions: r.EndedSessions}
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	res, err := h.flow.Login(r.Context(), req.Email, req.Password)
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, loginResult(res))
}

type mfaLoginRequest struct {
	MFAToken     string `json:"mfa_token"`
	Code         string `json:"code"`
	RecoveryCode string `json:"recovery_code"`
}

func (h *Handler) loginMFA(w http.ResponseWriter, r *http.Request) error {
	var req mfaLoginRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	res, err := h.flow.CompleteMFA(r.Context(), req.MFAToken, req.Code, req.RecoveryCode)
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, loginResult(res))
}

type enrollResponse struct {
	Secret     string `json:"secret"`
	OTPAuthURI string `json:"otpauth_uri"`
	QRPNG      string `json:"qr_png_base64"`
}

func (h *Handler) mfaEnroll(w http.ResponseWriter, r *http.Request) error {
	en, err := h.flow.EnrollMFA(r.Context(), principal(r))
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, enrollResponse{Secret: en.Secret, OTPAuthURI: en.URI,
		QRPNG: base64.StdEncoding.EncodeToString(en.QRPNG)})
}

type codeRequest struct {
	Code string `json:"code"`
}

func (h *Handler) mfaConfirm(w http.ResponseWriter, r *http.Request) error {
	var req codeRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	codes, err := h.flow.ConfirmMFA(r.Context(), principal(r), req.Code)
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, map[string][]string{"recovery_codes": codes})
}

func (h *Handler) mfaVerify(w http.ResponseWriter, r *http.Request) error {
	var req codeRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := h.flow.VerifyMFA(r.Context(), principal(r), req.Code); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type passwordRequest struct {
	CurrentPassword string `json:"currentPassword"`
	NewPassword     string `json:"newPassword"`
	Code            string `json:"code"`
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request) error {
	var req passwordRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := h.flow.ChangePassword(r.Context(), principal(r), req.CurrentPassword, req.NewPassword, req.Code); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type resetRequest struct {
	Email string `json:"email"`
}

func (h *Handler) passwordReset(w http.ResponseWriter, r *http.Request) error {
	var req resetRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := h.flow.RequestPasswordReset(r.Context(), req.Email); err != nil {
		return err
	}
	// The same answer whether or not the email has an account.
	return web.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "if the account exists, a reset link is on its way"})
}

type resetConfirmRequest struct {
	Token       string `json:"token"`
	NewPassword string `json:"newPassword"`
}

func (h *Handler) passwordResetConfirm(w http.ResponseWriter, r *http.Request) error {
	var req resetConfirmRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := h.flow.ResetPassword(r.Context(), req.Token, req.NewPassword); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type sessionDTO struct {
	ID        string `json:"id"`
	Current   bool   `json:"current"`
	CreatedAt string `json:"createdAt"`
	LastSeen  string `json:"lastSeen"`
	ExpiresAt string `json:"expiresAt"`
	IP        string `json:"ip"`
	UserAgent string `json:"userAgent"`
}

func (h *Handler) listSessions(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	list, err := h.flow.Sessions(r.Context(), p)
	if err != nil {
		return err
	}
	out := listDTO[sessionDTO]{Items: []sessionDTO{}}
	for _, s := range list {
		out.Items = append(out.Items, sessionDTO{ID: string(s.ID), Current: s.ID == p.SessionID, CreatedAt: stamp(s.CreatedAt),
			LastSeen: stamp(s.LastSeen), ExpiresAt: stamp(s.ExpiresAt), IP: s.IP, UserAgent: s.UserAgent})
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) endSession(w http.ResponseWriter, r *http.Request) error {
	if _, err := h.flow.EndSession(r.Context(), principal(r), pathID(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) endOtherSessions(w http.ResponseWriter, r *http.Request) error {
	n, err := h.flow.EndSession(r.Context(), principal(r), "")
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, map[string]int{"ended": n})
}

func (h *Handler) adminUser(action workflow.AdminAction) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := h.flow.AdministerUser(r.Context(), principal(r), pathID(r), action); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type roleRequest struct {
	Role string `json:"role"`
}

func (h *Handler) setRole(w http.ResponseWriter, r *http.Request) error {
	var req roleRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := h.flow.SetRole(r.Context(), principal(r), pathID(r), claims.Role(req.Role)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
