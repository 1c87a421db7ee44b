package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
)

// The OpenAPI 3.1 document is built from the same route table the mux
// uses, plus a description per route below; a test fails when a route has
// no description, so the document can't fall behind the code.

type op struct {
	summary  string
	request  string // schema name of the JSON body, "" for none
	response string // schema name of the 2xx body, "" for no content
	status   string
	params   []string // query parameter names
	ifMatch  bool
	media    string // media type of the 2xx body when not application/json
}

var operations = map[string]op{
	"GET /api/v1/openapi.json":                  {summary: "This document.", response: "Object", status: "200"},
	"GET /api/v1/.well-known/jwks.json":         {summary: "Public keys that verify access tokens (RFC 7517).", response: "Object", status: "200", media: "application/jwk-set+json"},
	"POST /api/v1/auth/register":                {summary: "Register a customer account. Answers 202 whether or not the email had an account.", request: "Register", response: "Status", status: "202"},
	"POST /api/v1/auth/login":                   {summary: "Sign in with email and password.", request: "Login", response: "Tokens", status: "200"},
	"POST /api/v1/auth/refresh":                 {summary: "Exchange a refresh token (single use) for new tokens.", request: "Refresh", response: "Tokens", status: "200"},
	"POST /api/v1/auth/logout":                  {summary: "End the current session.", status: "204"},
	"GET /api/v1/me":                            {summary: "The signed-in account and its permissions.", response: "User", status: "200"},
	"POST /api/v1/auth/mfa":                     {summary: "Second sign-in step: the mfa_token from login with a TOTP code or a recovery code.", request: "MFALogin", response: "Tokens", status: "200"},
	"POST /api/v1/auth/mfa/enroll":              {summary: "Start TOTP enrolment: secret, otpauth URI and QR code.", response: "Object", status: "200"},
	"POST /api/v1/auth/mfa/confirm":             {summary: "Activate TOTP with a first code; returns ten recovery codes, shown once.", request: "Code", response: "Object", status: "200"},
	"POST /api/v1/auth/mfa/verify":              {summary: "Step-up: prove a current code before a sensitive action.", request: "Code", status: "204"},
	"POST /api/v1/auth/password":                {summary: "Change the password (current password, and a code when MFA is on). Ends other sessions.", request: "PasswordChange", status: "204"},
	"POST /api/v1/auth/password-reset":          {summary: "Ask for a reset link. Same answer whether or not the email has an account.", request: "ResetRequest", response: "Status", status: "202"},
	"POST /api/v1/auth/password-reset/confirm":  {summary: "Set a new password with a reset token. Ends every session.", request: "ResetConfirm", status: "204"},
	"GET /api/v1/sessions":                      {summary: "The caller's live sessions.", response: "SessionList", status: "200"},
	"DELETE /api/v1/sessions/{id}":              {summary: "End one of the caller's sessions.", status: "204"},
	"POST /api/v1/sessions/end-others":          {summary: "End every session of the caller but the current one.", response: "Object", status: "200"},
	"POST /api/v1/users/{id}/disable":           {summary: "Disable an account and end its sessions (users.manage).", status: "204"},
	"POST /api/v1/users/{id}/enable":            {summary: "Enable an account (users.manage).", status: "204"},
	"POST /api/v1/users/{id}/unlock":            {summary: "Lift a sign-in lockout (users.manage).", status: "204"},
	"POST /api/v1/users/{id}/logout":            {summary: "End every session of an account (sessions.revoke).", status: "204"},
	"POST /api/v1/users/{id}/reset-mfa":         {summary: "Remove an account's second factor; needs step-up (users.manage).", status: "204"},
	"POST /api/v1/users/{id}/role":              {summary: "Change an account's role; needs step-up (roles.assign).", request: "RoleChange", status: "204"},
	"GET /api/v1/policies":                      {summary: "Policies the caller may see.", response: "PolicyList", status: "200", params: []string{"cursor", "limit"}},
	"POST /api/v1/policies":                     {summary: "Create a policy (policies.manage).", request: "NewPolicy", response: "Policy", status: "201"},
	"GET /api/v1/policies/{id}":                 {summary: "One policy.", response: "Policy", status: "200"},
	"GET /api/v1/claims":                        {summary: "Claims the caller may see, newest first.", response: "ClaimList", status: "200", params: []string{"status", "assignee", "policy", "incidentFrom", "incidentTo", "cursor", "limit"}},
	"POST /api/v1/claims":                       {summary: "File a claim (first notice of loss). Accepts Idempotency-Key.", request: "NewClaim", response: "Claim", status: "201"},
	"GET /api/v1/claims/{id}":                   {summary: "One claim with lines and decision. The read is audited.", response: "Claim", status: "200"},
	"GET /api/v1/claims/{id}/history":           {summary: "The claim's status history.", response: "TransitionList", status: "200"},
	"POST /api/v1/claims/{id}/submit":           {summary: "Submit a draft claim.", response: "Claim", status: "200", ifMatch: true},
	"POST /api/v1/claims/{id}/withdraw":         {summary: "Withdraw a claim before a decision.", request: "Reason", response: "Claim", status: "200", ifMatch: true},
	"POST /api/v1/claims/{id}/assign":           {summary: "Take a claim for review (or assign it, for supervisors).", request: "Assign", response: "Claim", status: "200", ifMatch: true},
	"POST /api/v1/claims/{id}/request-info":     {summary: "Ask the policyholder for information.", request: "Message", response: "Claim", status: "200", ifMatch: true},
	"POST /api/v1/claims/{id}/respond":          {summary: "Answer a request for information.", request: "Message", response: "Claim", status: "200", ifMatch: true},
	"POST /api/v1/claims/{id}/decide":           {summary: "Approve or deny; the payable amount is computed per line.", request: "Decide", response: "Claim", status: "200", ifMatch: true},
	"POST /api/v1/claims/{id}/pay":              {summary: "Record payment of the payable amount.", request: "Pay", response: "Claim", status: "200", ifMatch: true},
	"POST /api/v1/claims/{id}/close":            {summary: "Close a paid or denied claim.", response: "Claim", status: "200", ifMatch: true},
	"POST /api/v1/claims/{id}/appeal":           {summary: "Appeal a denied or partially approved claim.", request: "Reason", response: "Claim", status: "200", ifMatch: true},
	"GET /api/v1/audit":                         {summary: "Search the audit log (audit.read).", response: "AuditList", status: "200", params: []string{"actor", "objectType", "object", "action", "from", "to", "after", "limit"}},
	"POST /api/v1/claims/{id}/approve-decision": {summary: "Second person approves a decision waiting in pending_approval (claims.decide, enough authority, not the proposer).", response: "Claim", status: "200", ifMatch: true},
	"POST /api/v1/claims/{id}/return-decision":  {summary: "Send a pending decision back to review.", request: "Reason", response: "Claim", status: "200", ifMatch: true},
	"GET /api/v1/delegations":                   {summary: "Delegations given by or to the caller.", response: "DelegationList", status: "200"},
	"POST /api/v1/delegations":                  {summary: "Delegate some of one's own permissions for at most 30 days.", request: "NewDelegation", response: "Delegation", status: "201"},
	"DELETE /api/v1/delegations/{id}":           {summary: "Revoke a delegation at once.", status: "204"},
	"GET /api/v1/roles":                         {summary: "Built-in and custom roles with their effective permissions (roles.assign or users.manage).", response: "RoleList", status: "200"},
	"PUT /api/v1/roles/{name}":                  {summary: "Define or change a custom role (super admins, step-up). Versioned and audited.", request: "CustomRole", response: "Object", status: "200"},
	"GET /api/v1/users":                         {summary: "Accounts (users.manage): identity and role only.", response: "UserList", status: "200", params: []string{"limit"}},
	"POST /api/v1/users":                        {summary: "Invite a user: the account gets a reset link, nobody sets its password (users.manage; staff roles need roles.assign and step-up).", request: "Invite", response: "AdminUser", status: "201"},
	"PUT /api/v1/users/{id}/authority-limit":    {summary: "Set or clear (null) a user's monetary authority in minor units (roles.assign, step-up).", request: "Authority", status: "204"},
	"GET /api/v1/me/access-log":                 {summary: "Who (by role) accessed the caller's claims, and why.", response: "AccessList", status: "200"},
	"POST /api/v1/me/link-policyholder":         {summary: "Link the policies recorded under your email, with the single-use code mailed to it at registration.", request: "LinkCode", status: "204"},
	"POST /api/v1/auth/verify-email":            {summary: "Confirm the account's email with the code mailed at registration; until then no policy is attached to it by email.", request: "LinkCode", status: "204"},
	"GET /api/v1/training/claims":               {summary: "Pseudonymized claims for model work (training_data.export): no personal data.", response: "TrainingList", status: "200", params: []string{"cursor", "limit"}},

	// Data subject rights (docs/data-protection.md).
	"GET /api/v1/me/export":                      {summary: "Everything held about the signed-in customer as JSON (account, personal data, policies, claims with lines, decisions and history, document metadata, sessions, and the access history of their data). Audited as subject.exported.", response: "SubjectExport", status: "200"},
	"POST /api/v1/me/erasure-request":            {summary: "Ask for erasure of the signed-in customer's personal data; an administrator approves it. 409 if one is pending.", response: "ErasureRequest", status: "202"},
	"GET /api/v1/erasure-requests":               {summary: "Erasure requests (users.manage).", response: "ErasureRequestList", status: "200", params: []string{"status"}},
	"POST /api/v1/erasure-requests/{id}/approve": {summary: "Carry out an erasure: the subject key is destroyed, the account disabled and its sessions ended; amounts, decisions and the audit chain remain. Needs step-up (users.manage).", response: "ErasureRequest", status: "200"},

	// Claim documents (docs/documents.md).
	"POST /api/v1/claims/{id}/documents":                {summary: "Upload a document (multipart/form-data, the file in the part named file). PDF, JPEG, PNG, WebP, TIFF or plain text, decided from the bytes; images are re-encoded. Answers with status pending_scan; 413 over a size limit, 415 for other types, 409 for a duplicate or a full claim.", response: "Document", status: "201"},
	"GET /api/v1/claims/{id}/documents":                 {summary: "The claim's documents with their scan status.", response: "DocumentList", status: "200"},
	"GET /api/v1/claims/{id}/documents/{docId}":         {summary: "One document's metadata, including its status (pending_scan, clean, quarantined).", response: "Document", status: "200"},
	"GET /api/v1/claims/{id}/documents/{docId}/content": {summary: "The document's bytes as an attachment, only once scanned clean (409 while pending_scan or quarantined). Every download is audited.", status: "200"},

	// Live updates and claim messages (docs/live.md).
	"GET /api/v1/ws":                    {summary: "Live claim events over a WebSocket (subprotocol claims.v1). Authenticate with the subprotocol bearer.<access token> or a first message {\"type\":\"auth\",\"token\":\"...\"} within 5 s; a token in the URL is refused (400). Same-origin or configured origins only (403); too many sockets per user or address answer 429. Events carry ids, status and time only; see docs/live.md for the messages and close codes.", status: "101"},
	"GET /api/v1/claims/{id}/messages":  {summary: "The claim's messages, oldest first (anyone who may read the claim; the read is audited).", response: "MessageList", status: "200", params: []string{"cursor", "limit"}},
	"POST /api/v1/claims/{id}/messages": {summary: "Post a message on the claim (at most 2,000 characters, no card numbers). Stored sealed, audited without its text, announced live as message.created.", request: "NewMessage", response: "ClaimMessage", status: "201"},
}

func obj(props map[string]any, required ...string) map[string]any {
	m := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		m["required"] = required
	}
	return m
}

var (
	str     = map[string]any{"type": "string"}
	date    = map[string]any{"type": "string", "format": "date"}
	stamp_  = map[string]any{"type": "string", "format": "date-time"}
	integer = map[string]any{"type": "integer"}
	boolean = map[string]any{"type": "boolean"}
	decimal = map[string]any{"type": "string", "pattern": `^-?[0-9]+(\.[0-9]+)?$`, "description": "Decimal amount in the currency's minor-unit precision; never a float."}
)

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }
func arr(items any) map[string]any   { return map[string]any{"type": "array", "items": items} }
func list(item string) map[string]any {
	return obj(map[string]any{"items": arr(ref(item)), "next_cursor": str}, "items", "next_cursor")
}

var schemas = map[string]any{
	"Object": map[string]any{"type": "object"},
	"Status": obj(map[string]any{"status": str}),
	"Problem": map[string]any{"type": "object", "description": "RFC 9457 problem details.",
		"properties": map[string]any{"type": str, "title": str, "status": integer, "detail": str, "instance": str,
			"requestId": str, "allowed": arr(str), "status_current": str,
			"errors": arr(obj(map[string]any{"field": str, "rule": str, "detail": str}))}},
	"NewDelegation":  obj(map[string]any{"to": str, "permissions": arr(str), "expiresAt": stamp_, "maxAmountMinor": integer}, "to", "permissions", "expiresAt"),
	"Delegation":     obj(map[string]any{"id": str, "from": str, "to": str, "permissions": arr(str), "maxAmountMinor": integer, "createdAt": stamp_, "expiresAt": stamp_, "active": boolean}),
	"DelegationList": list("Delegation"),
	"Role":           obj(map[string]any{"name": str, "baseRole": str, "inherits": arr(str), "permissions": arr(str), "authorityLimitMinor": integer, "custom": boolean, "version": integer}),
	"RoleList":       list("Role"),
	"CustomRole":     obj(map[string]any{"baseRole": str, "permissions": arr(str), "authorityLimitMinor": integer}, "baseRole"),
	"Authority":      obj(map[string]any{"limitMinor": integer}),
	"AdminUser":      obj(map[string]any{"id": str, "email": str, "role": str, "status": str, "mfaEnabled": boolean, "createdAt": stamp_}),
	"UserList":       list("AdminUser"),
	"Invite":         obj(map[string]any{"email": str, "role": str}, "email", "role"),
	"AccessEntry":    obj(map[string]any{"at": stamp_, "actorRole": str, "action": str, "claimId": str, "purpose": str}),
	"AccessList":     list("AccessEntry"),
	"LinkCode":       obj(map[string]any{"token": str}, "token"),
	"Training":       obj(map[string]any{"pseudonym": str, "holderPseudonym": str, "productLine": str, "type": str, "incidentMonth": str, "reportDelayDays": integer, "total": ref("Money"), "payable": ref("Money"), "lines": integer, "categories": arr(str), "status": str, "flags": arr(str), "label": str}),
	"TrainingList":   list("Training"),
	"MFALogin":       obj(map[string]any{"mfa_token": str, "code": str, "recovery_code": str}, "mfa_token"),
	"Code":           obj(map[string]any{"code": str}, "code"),
	"PasswordChange": obj(map[string]any{"currentPassword": str, "newPassword": str, "code": str}, "currentPassword", "newPassword"),
	"ResetRequest":   obj(map[string]any{"email": str}, "email"),
	"ResetConfirm":   obj(map[string]any{"token": str, "newPassword": str}, "token", "newPassword"),
	"RoleChange":     obj(map[string]any{"role": str}, "role"),
	"Session":        obj(map[string]any{"id": str, "current": boolean, "createdAt": stamp_, "lastSeen": stamp_, "expiresAt": stamp_, "ip": str, "userAgent": str}),
	"SessionList":    list("Session"),
	"Money":          obj(map[string]any{"amount": decimal, "currency": str}, "amount", "currency"),
	"Register":       obj(map[string]any{"email": str, "password": str, "fullName": str}, "email", "password"),
	"Login":          obj(map[string]any{"email": str, "password": str}, "email", "password"),
	"Refresh":        obj(map[string]any{"refresh_token": str}, "refresh_token"),
	"Tokens":         obj(map[string]any{"access_token": str, "token_type": str, "expires_in": integer, "refresh_token": str, "mfa_required": boolean, "mfa_token": str, "ended_sessions": integer}),
	"User":           obj(map[string]any{"id": str, "email": str, "role": str, "permissions": arr(str)}),
	"Reason":         obj(map[string]any{"reason": str}),
	"Message":        obj(map[string]any{"message": str}, "message"),
	"Assign":         obj(map[string]any{"assigneeId": str}),
	"Pay":            obj(map[string]any{"reference": str}),
	"Decide": obj(map[string]any{"outcome": map[string]any{"enum": []string{"approve", "deny"}}, "reason": str,
		"lines": arr(obj(map[string]any{"lineId": str, "exclude": boolean, "allowed": decimal, "note": str}, "lineId"))}, "outcome"),
	"NewClaim": obj(map[string]any{"policyNumber": str, "type": str, "incidentDate": date, "description": str,
		"location": str, "currency": str, "submit": boolean,
		"lines": arr(obj(map[string]any{"category": str, "description": str, "serviceDate": date, "amount": decimal},
			"category", "description", "amount"))}, "policyNumber", "type", "incidentDate", "description", "currency", "lines"),
	"NewPolicy": obj(map[string]any{"number": str, "productLine": map[string]any{"enum": []string{"auto", "health", "property"}},
		"effectiveDate": date, "expiryDate": date, "currency": str, "coverageLimit": decimal, "deductible": decimal,
		"premium": decimal, "coinsuranceBp": integer, "holderEmail": str,
		"holder": obj(map[string]any{"fullName": str, "dateOfBirth": date, "email": str, "phone": str, "address": str, "nationalId": str})},
		"number", "productLine", "effectiveDate", "expiryDate", "currency", "coverageLimit"),
	"Policy": obj(map[string]any{"id": str, "number": str, "productLine": str, "status": str, "effectiveDate": date,
		"expiryDate": date, "coverageLimit": ref("Money"), "deductible": ref("Money"), "premium": ref("Money"),
		"coinsuranceBp": integer, "createdAt": stamp_}),
	"Claim": obj(map[string]any{"id": str, "number": str, "policyId": str, "type": str, "incidentDate": date,
		"reportedDate": date, "description": str, "location": str, "status": str, "allowedTransitions": arr(str),
		"assigneeId": str, "total": ref("Money"), "payable": ref("Money"), "flags": arr(str), "appealed": boolean,
		"source": str, "version": integer, "createdAt": stamp_, "updatedAt": stamp_,
		"lines": arr(obj(map[string]any{"id": str, "seq": integer, "category": str, "description": str,
			"serviceDate": date, "amount": ref("Money")})),
		"decision": obj(map[string]any{"outcome": str, "status": str, "reason": str, "submitted": ref("Money"),
			"eligible": ref("Money"), "deductibleApplied": ref("Money"), "payable": ref("Money"), "decidedBy": str,
			"decidedAt": stamp_, "lines": arr(obj(map[string]any{"lineId": str, "seq": integer, "submitted": ref("Money"),
				"eligible": ref("Money"), "deductibleApplied": ref("Money"), "coinsuranceApplied": ref("Money"),
				"limitApplied": ref("Money"), "benefit": ref("Money"), "reasons": arr(str)}))})}),
	"ClaimList":      list("Claim"),
	"PolicyList":     list("Policy"),
	"Transition":     obj(map[string]any{"from": str, "to": str, "actorId": str, "reason": str, "at": stamp_}),
	"TransitionList": list("Transition"),
	"AuditEntry": obj(map[string]any{"seq": integer, "at": stamp_, "actorId": str, "onBehalfOf": str, "action": str,
		"objectType": str, "objectId": str, "outcome": str, "ip": str, "requestId": str,
		"details": map[string]any{"type": "object", "additionalProperties": str}}),
	"AuditList": list("AuditEntry"),
	"Document": obj(map[string]any{"id": str, "claimId": str, "filename": str, "contentType": str, "size": integer,
		"sha256": str, "status": map[string]any{"enum": []string{"pending_scan", "clean", "quarantined"}},
		"scanSignature": str, "uploadedBy": str, "createdAt": stamp_, "scannedAt": stamp_, "contentUrl": str}),
	"DocumentList": list("Document"),
	"ErasureRequest": obj(map[string]any{"id": str, "status": map[string]any{"enum": []string{"pending", "approved"}}, "holderId": str,
		"userId": str, "requestedAt": stamp_, "decidedBy": str, "decidedAt": stamp_}),
	"ErasureRequestList": list("ErasureRequest"),
	"SubjectExport": map[string]any{"type": "object", "description": "format claims-subject-export/1: account, policyholder, policies, claims (lines, decision, history, documents), sessions, accessHistory.",
		"required": []string{"format", "generatedAt", "policyholder", "policies", "claims", "accessHistory"}},
	"NewMessage":     obj(map[string]any{"text": map[string]any{"type": "string", "minLength": 1, "maxLength": 2000}}, "text"),
	"ClaimMessage":   obj(map[string]any{"id": str, "claimId": str, "authorId": str, "authorRole": str, "text": str, "createdAt": stamp_}),
	"MessageList":    list("ClaimMessage"),
	"DocumentUpload": obj(map[string]any{"file": map[string]any{"type": "string", "contentMediaType": "application/octet-stream"}}, "file"),
}

// Document returns the OpenAPI document for the registered routes.
func (h *Handler) Document() map[string]any {
	paths := map[string]map[string]any{}
	problem := map[string]any{"description": "Problem", "content": map[string]any{"application/problem+json": map[string]any{"schema": ref("Problem")}}}
	for _, rt := range h.routes {
		o, ok := operations[rt.method+" "+rt.path]
		if !ok {
			continue // TestOpenAPICoversRoutes fails on this
		}
		item := map[string]any{"summary": o.summary, "operationId": strings.NewReplacer("/api/v1/", "", "/", "_", "{", "", "}", "", ".", "_", "-", "_").Replace(strings.ToLower(rt.method) + "_" + rt.path)}
		var params []any
		for _, seg := range strings.Split(rt.path, "/") {
			if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
				params = append(params, map[string]any{"name": strings.Trim(seg, "{}"), "in": "path", "required": true, "schema": str})
			}
		}
		for _, q := range o.params {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": str})
		}
		if o.ifMatch {
			params = append(params, map[string]any{"name": "If-Match", "in": "header", "schema": str,
				"description": "The claim's ETag; a stale one answers 412."})
		}
		if rt.path == "/api/v1/claims" && rt.method == "POST" {
			params = append(params, map[string]any{"name": "Idempotency-Key", "in": "header", "schema": str})
		}
		if len(params) > 0 {
			item["parameters"] = params
		}
		if o.request != "" {
			item["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(o.request)}}}
		}
		ok2 := map[string]any{"description": "Success"}
		if o.response != "" {
			media := "application/json"
			if o.media != "" {
				media = o.media
			}
			ok2["content"] = map[string]any{media: map[string]any{"schema": ref(o.response)}}
		}
		item["responses"] = map[string]any{o.status: ok2, "4XX": problem, "5XX": problem}
		if d, ok := deprecations[rt.method+" "+rt.path]; ok {
			item["deprecated"] = true
			if !d.Sunset.IsZero() {
				item["description"] = "Deprecated; answers until " + d.Sunset.UTC().Format("2006-01-02") + " (Sunset header)."
			}
		}
		if rt.auth {
			item["security"] = []any{map[string]any{"bearer": []any{}}}
		} else {
			item["security"] = []any{}
		}
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = item
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "claims API", "version": "1",
			"description": "Insurance claims processing. Money is a decimal string with an ISO 4217 currency; dates are YYYY-MM-DD; errors are RFC 9457 problem details naming the field and the rule."},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{"schemas": schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
	}
}

var docOnce struct {
	sync.Once
	b []byte
}

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) error {
	docOnce.Do(func() { docOnce.b, _ = json.MarshalIndent(h.Document(), "", "  ") })
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(docOnce.b)
	return err
}
