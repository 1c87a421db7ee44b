package api

import (
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/files"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/web"
)

// Claim documents: see docs/documents.md.

type documentDTO struct {
	ID            string `json:"id"`
	ClaimID       string `json:"claimId"`
	Filename      string `json:"filename"`
	ContentType   string `json:"contentType"`
	Size          int64  `json:"size"`
	SHA256        string `json:"sha256"`
	Status        string `json:"status"`
	ScanSignature string `json:"scanSignature,omitempty"`
	UploadedBy    string `json:"uploadedBy"`
	CreatedAt     string `json:"createdAt"`
	ScannedAt     string `json:"scannedAt,omitempty"`
	ContentURL    string `json:"contentUrl"`
}

func toDocument(d store.Document) documentDTO {
	return documentDTO{ID: string(d.ID), ClaimID: string(d.ClaimID), Filename: d.Filename, ContentType: d.ContentType,
		Size: d.Size, SHA256: d.SHA256, Status: string(d.Status), ScanSignature: d.ScanSignature,
		UploadedBy: string(d.UploadedBy), CreatedAt: stamp(d.CreatedAt), ScannedAt: stamp(d.ScannedAt),
		ContentURL: "/api/v1/claims/" + string(d.ClaimID) + "/documents/" + string(d.ID) + "/content"}
}

func docID(r *http.Request) claims.ID { return claims.ID(r.PathValue("docId")) }

// uploadReader turns errors reading the request body into problems: over
// the request limit is 413, anything else (a client that went away, broken
// multipart) is 400.
type uploadReader struct{ r io.Reader }

func (u uploadReader) Read(b []byte) (int, error) {
	n, err := u.r.Read(b)
	if err != nil && err != io.EOF {
		err = bodyError(err)
	}
	return n, err
}

func bodyError(err error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return claims.Errorf(claims.TooLarge, "The request is larger than the upload limit.")
	}
	if _, ok := errors.AsType[*claims.Error](err); ok {
		return err
	}
	return claims.Wrap(claims.Invalid, err, "The upload could not be read: the request ended early or is not valid multipart/form-data.")
}

func (h *Handler) uploadDocument(w http.ResponseWriter, r *http.Request) error {
	lim := h.flow.DocumentLimits()
	// Limits that need no body come first: a declared length over the
	// per-request limit is refused before a byte of it is read.
	if r.ContentLength > lim.MaxRequestBytes() {
		return &claims.Error{Kind: claims.TooLarge,
			Message: "The request is larger than the upload limit of " + strconv.FormatInt(lim.MaxFileBytes>>20, 10) + " MiB per file.",
			Fields:  []claims.FieldError{{Field: "file", Rule: "max_size", Message: "The file is too large."}}}
	}
	ct, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" || params["boundary"] == "" {
		return &claims.Error{Kind: claims.UnsupportedMedia, Message: "Send the document as multipart/form-data, in a part named \"file\"."}
	}
	// A body without a declared length (chunked) is cut off at the same
	// limit as it streams.
	r.Body = http.MaxBytesReader(w, r.Body, lim.MaxRequestBytes())
	src := func() (io.Reader, string, error) {
		mr := multipart.NewReader(uploadReader{r.Body}, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				return nil, "", claims.InvalidField("file", "required", "The request has no part named \"file\".")
			}
			if err != nil {
				return nil, "", bodyError(err)
			}
			if part.FormName() == "file" {
				// part.FileName() already drops any directory; the
				// pipeline sanitises the rest.
				return uploadReader{part}, part.FileName(), nil
			}
			// Other parts are skipped; they count against the request limit.
			if _, err := io.Copy(io.Discard, part); err != nil {
				return nil, "", bodyError(err)
			}
		}
	}
	d, err := h.flow.UploadDocument(r.Context(), principal(r), pathID(r), src)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/claims/"+string(d.ClaimID)+"/documents/"+string(d.ID))
	return web.WriteJSON(w, http.StatusCreated, toDocument(d))
}

func (h *Handler) listDocuments(w http.ResponseWriter, r *http.Request) error {
	list, err := h.flow.Documents(r.Context(), principal(r), pathID(r))
	if err != nil {
		return err
	}
	out := listDTO[documentDTO]{Items: []documentDTO{}}
	for _, d := range list {
		out.Items = append(out.Items, toDocument(d))
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) getDocument(w http.ResponseWriter, r *http.Request) error {
	d, err := h.flow.Document(r.Context(), principal(r), pathID(r), docID(r))
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, toDocument(d))
}

// documentContent streams a clean document. The content is authenticated
// segment by segment while it streams; if a later segment fails (a
// truncated or tampered blob) after the headers went out, the connection is
// aborted, so the client sees a broken download and never a shorter
// document that looks complete.
func (h *Handler) documentContent(w http.ResponseWriter, r *http.Request) error {
	d, rc, err := h.flow.OpenDocument(r.Context(), principal(r), pathID(r), docID(r))
	if err != nil {
		return err
	}
	defer rc.Close()
	buf := make([]byte, 64<<10)
	fill := func() (int, error) {
		n := 0
		for n < len(buf) {
			m, err := rc.Read(buf[n:])
			n += m
			if err != nil {
				return n, err
			}
		}
		return n, nil
	}
	// The first chunk is read before any header is sent: a blob that fails
	// at once still gets a proper problem response.
	n, rerr := fill()
	if rerr != nil && rerr != io.EOF {
		h.log.ErrorContext(r.Context(), "document failed to decrypt", "document", d.ID, "claim", d.ClaimID, "err", rerr)
		return rerr
	}
	hd := w.Header()
	ct := d.ContentType
	if ct == "text/plain" {
		ct += "; charset=utf-8" // never leave the charset to the browser's guess
	}
	hd.Set("Content-Type", ct)
	hd.Set("Content-Disposition", files.ContentDisposition(d.Filename))
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "sandbox; default-src 'none'; frame-ancestors 'none'")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.FormatInt(d.Size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	var sent int64
	for {
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return nil // the client went away; nothing more to say
			}
			sent += int64(n)
		}
		if rerr == io.EOF {
			if sent != d.Size {
				h.log.ErrorContext(r.Context(), "document shorter or longer than recorded; aborting the download",
					"document", d.ID, "claim", d.ClaimID, "sent", sent, "size", d.Size)
				panic(http.ErrAbortHandler)
			}
			return nil
		}
		if rerr != nil {
			h.log.ErrorContext(r.Context(), "document failed to decrypt mid-stream; aborting the download",
				"document", d.ID, "claim", d.ClaimID, "err", rerr)
			panic(http.ErrAbortHandler)
		}
		n, rerr = fill()
	}
}
