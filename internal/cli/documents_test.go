package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/cli"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
)

// Claim documents end to end, through the real HTTPS server, on both
// databases, scanned by the real clamd of scripts/test-services (whose only
// signature is EICAR).

// testClamd returns the clamd address of the test services, skipping the
// test without one (failing under CI=true, where it must be there).
func testClamd(t *testing.T) string {
	t.Helper()
	a := os.Getenv("CLAIMS_TEST_CLAMD")
	if a == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CLAIMS_TEST_CLAMD is not set; CI must run clamd (see .ci/run and scripts/test-services)")
		}
		t.Skip("clamd not available: CLAIMS_TEST_CLAMD not set (scripts/test-services start prints it)")
	}
	return a
}

// docEICAR is the EICAR test string, split so this file is not flagged.
var docEICAR = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)

// docPDF returns a valid one-page PDF showing text, padded with a comment
// of pad bytes (so that it spans several 64 KiB encryption segments).
func docPDF(text string, pad int) []byte {
	content := fmt.Sprintf("BT /F1 24 Tf 72 720 Td (%s) Tj ET", text)
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	for i := 0; i < pad; i += 64 {
		fmt.Fprintf(&b, "%% padding line %048d\n", i)
	}
	offs := make([]int, len(objs))
	for i, o := range objs {
		offs[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

func docImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / max(w-1, 1)), uint8(y * 255 / max(h-1, 1)), uint8((x*7919 + y*104729) % 251), 255})
		}
	}
	return img
}

func docPNGChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	binary.Write(&b, binary.BigEndian, crc.Sum32())
	return b.Bytes()
}

// docPNGWithText is a PNG with a tEXt chunk right after IHDR.
func docPNGWithText(t *testing.T, key, value string) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, docImage(24, 16)); err != nil {
		t.Fatal(err)
	}
	p := b.Bytes()
	return slices.Concat(p[:33], docPNGChunk("tEXt", []byte(key+"\x00"+value)), p[33:])
}

// docJPEGWithGPS is a JPEG with an APP1 EXIF segment holding a GPS IFD
// (latitude 52° 31' 12.34" N) and an ImageDescription marker.
func docJPEGWithGPS(t *testing.T, marker string) []byte {
	var j bytes.Buffer
	if err := jpeg.Encode(&j, docImage(32, 24), &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	var x bytes.Buffer
	x.WriteString("II")
	binary.Write(&x, le, uint16(42))
	binary.Write(&x, le, uint32(8))
	markerOff := 8 + 2 + 2*12 + 4
	gpsOff := markerOff + len(marker) + 1
	if gpsOff%2 == 1 {
		gpsOff++
	}
	entry := func(tag, typ uint16, count, value uint32) {
		binary.Write(&x, le, tag)
		binary.Write(&x, le, typ)
		binary.Write(&x, le, count)
		binary.Write(&x, le, value)
	}
	binary.Write(&x, le, uint16(2))
	entry(0x010e, 2, uint32(len(marker)+1), uint32(markerOff)) // ImageDescription
	entry(0x8825, 4, 1, uint32(gpsOff))                        // GPSInfo
	binary.Write(&x, le, uint32(0))
	x.WriteString(marker + "\x00")
	for x.Len() < gpsOff {
		x.WriteByte(0)
	}
	latOff := gpsOff + 2 + 2*12 + 4
	binary.Write(&x, le, uint16(2))
	entry(0x0001, 2, 2, uint32('N'))
	entry(0x0002, 5, 3, uint32(latOff))
	binary.Write(&x, le, uint32(0))
	for _, v := range []uint32{52, 1, 31, 1, 1234, 100} {
		binary.Write(&x, le, v)
	}
	body := slices.Concat([]byte("Exif\x00\x00"), x.Bytes())
	seg := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(body)+2))
	jb := j.Bytes()
	return slices.Concat(jb[:2], seg, body, jb[2:])
}

// chunkWriter passes every write on in pieces of at most n bytes.
type chunkWriter struct {
	w io.Writer
	n int
}

func (c chunkWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		k := min(c.n, len(p)-done)
		m, err := c.w.Write(p[done : done+k])
		done += m
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// upload posts one file as multipart/form-data (part "file", declared type
// partType). With chunk > 0 the body is streamed through a pipe, chunk
// bytes per write and without a Content-Length.
func (s *server) upload(token, claimID, filename, partType string, content []byte, chunk int) resp {
	s.t.Helper()
	var body io.Reader
	var ctype string
	write := func(w io.Writer) (string, error) {
		mw := multipart.NewWriter(w)
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+strings.NewReplacer(`"`, `\"`, "\\", "\\\\").Replace(filename)+`"`)
		h.Set("Content-Type", partType)
		pw, err := mw.CreatePart(h)
		if err != nil {
			return "", err
		}
		if _, err := pw.Write(content); err != nil {
			return "", err
		}
		return mw.FormDataContentType(), mw.Close()
	}
	if chunk > 0 {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(io.Discard)
		boundary := mw.Boundary()
		ctype = "multipart/form-data; boundary=" + boundary
		go func() {
			cw := chunkWriter{w: pw, n: chunk}
			m := multipart.NewWriter(cw)
			m.SetBoundary(boundary)
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="file"; filename="`+filename+`"`)
			h.Set("Content-Type", partType)
			part, err := m.CreatePart(h)
			if err == nil {
				_, err = part.Write(content)
			}
			if err == nil {
				err = m.Close()
			}
			pw.CloseWithError(err)
		}()
		body = pr
	} else {
		var b bytes.Buffer
		var err error
		if ctype, err = write(&b); err != nil {
			s.t.Fatal(err)
		}
		body = &b
	}
	req, _ := http.NewRequest("POST", s.base+"/api/v1/claims/"+claimID+"/documents", body)
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("upload %s: %v", filename, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// waitStatus polls a document's metadata until its status is want.
func (s *server) waitStatus(token, claimID, docID, want string) resp {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := s.expect(s.do("GET", "/api/v1/claims/"+claimID+"/documents/"+docID, token, nil), 200)
		if r.str("status") == want {
			return r
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("document %s stays %s, want %s", docID, r.str("status"), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// download fetches a document's content; err is a failure reading the body.
func (s *server) download(token, claimID, docID string) (*http.Response, []byte, error) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/api/v1/claims/"+claimID+"/documents/"+docID+"/content", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

// rawUpload sends a multipart upload of total file bytes over its own TLS
// connection (declaring the length, or chunked), stops writing as soon as
// the server answers, and reports the status and how many body bytes had
// been sent when the answer came.
func (s *server) rawUpload(token, claimID string, total int64, declare bool) (status int, sent int64) {
	s.t.Helper()
	u, _ := url.Parse(s.base)
	cfg := s.client.Transport.(*http.Transport).TLSClientConfig.Clone()
	conn, err := tls.Dial("tcp", u.Host, cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	const boundary = "docs-test-boundary-0123456789"
	head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
	tail := "\r\n--" + boundary + "--\r\n"
	length := int64(len(head)) + total + int64(len(tail))
	var hdr strings.Builder
	fmt.Fprintf(&hdr, "POST /api/v1/claims/%s/documents HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=%s\r\n",
		claimID, u.Host, token, boundary)
	if declare {
		fmt.Fprintf(&hdr, "Content-Length: %d\r\n\r\n", length)
	} else {
		hdr.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	}
	if _, err := io.WriteString(conn, hdr.String()); err != nil {
		s.t.Fatal(err)
	}
	var written atomic.Int64
	got := make(chan int, 1)
	var sentAtAnswer atomic.Int64
	go func() {
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			got <- 0
			return
		}
		sentAtAnswer.Store(written.Load())
		res.Body.Close()
		got <- res.StatusCode
	}()
	send := func(p []byte) error {
		if !declare {
			if _, err := fmt.Fprintf(conn, "%x\r\n", len(p)); err != nil {
				return err
			}
		}
		if _, err := conn.Write(p); err != nil {
			return err
		}
		written.Add(int64(len(p)))
		if !declare {
			_, err := io.WriteString(conn, "\r\n")
			return err
		}
		return nil
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	first := append([]byte(head+"%PDF-1.4\n"), chunk[:len(chunk)-len(head)-9]...)
	err = send(first)
	left := total - int64(len(first)-len(head))
	for err == nil && left > 0 {
		select {
		case st := <-got:
			return st, sentAtAnswer.Load()
		default:
		}
		p := chunk[:min(int64(len(chunk)), left)]
		err = send(p)
		left -= int64(len(p))
	}
	if err == nil {
		if err = send([]byte(tail)); err == nil && !declare {
			_, err = io.WriteString(conn, "0\r\n\r\n")
		}
	}
	select {
	case st := <-got:
		return st, sentAtAnswer.Load()
	case <-time.After(30 * time.Second):
		s.t.Fatalf("no answer to the upload (write error: %v)", err)
	}
	return 0, 0
}

// blobFiles lists the blob files under the data dir.
func blobFiles(t *testing.T, dataDir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	matches, _ := filepath.Glob(filepath.Join(dataDir, "documents", "??", "*"))
	for _, m := range matches {
		if !strings.HasPrefix(filepath.Base(m), ".") {
			out[m] = true
		}
	}
	return out
}

// docFixture is a server with two customers, each with a submitted claim,
// a processor and an admin.
type docFixture struct {
	s                       *server
	env                     map[string]string
	alice, bob, proc, admin string
	aliceClaim, bobClaim    string
	aliceClaim2             string
}

func newDocFixture(t *testing.T, d store.Dialect, extra map[string]string) *docFixture {
	env := newEnv(t, d)
	for k, v := range extra {
		env[k] = v
	}
	mustRun(t, env, pw+"\n", "user", "create", "--email", "admin@example.com", "--role", "admin", "--password-stdin")
	mustRun(t, env, pw+"\n", "user", "create", "--email", "proc@example.com", "--role", "claims_processor", "--password-stdin")
	s := startServer(t, env)
	for _, email := range []string{"alice@example.com", "bob@example.com"} {
		s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": pw, "fullName": "Test " + email}), 202)
		s.verifyEmail(email)
	}
	f := &docFixture{s: s, env: env, admin: s.adminSession("admin@example.com")}
	for _, p := range []struct{ number, email string }{{"DOC-A", "alice@example.com"}, {"DOC-B", "bob@example.com"}} {
		s.expect(s.do("POST", "/api/v1/policies", f.admin, map[string]any{
			"number": p.number, "productLine": "auto", "effectiveDate": "2026-01-01", "expiryDate": "2026-12-31",
			"currency": "USD", "coverageLimit": "5000.00", "deductible": "100.00", "premium": "600.00",
			"holderEmail": p.email}), 201)
	}
	f.alice, f.bob, f.proc = s.login("alice@example.com", pw), s.login("bob@example.com", pw), s.login("proc@example.com", pw)
	file := func(tok, pol, date string) string {
		return s.expect(s.do("POST", "/api/v1/claims", tok, map[string]any{"policyNumber": pol, "type": "collision",
			"incidentDate": date, "description": "Hail damage", "currency": "USD", "submit": true,
			"lines": []map[string]string{{"category": "vehicle", "description": "Roof", "amount": "900.00"}}}), 201).str("id")
	}
	f.aliceClaim = file(f.alice, "DOC-A", "2026-02-01")
	f.aliceClaim2 = file(f.alice, "DOC-A", "2026-02-10")
	f.bobClaim = file(f.bob, "DOC-B", "2026-02-01")
	return f
}

func TestDocuments(t *testing.T) {
	clamd := testClamd(t)
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		f := newDocFixture(t, d, map[string]string{"CLAIMS_CLAMD_ADDRESS": clamd})
		s := f.s

		// A real PDF sent as application/octet-stream: accepted, pending
		// until clamd says clean, then downloadable byte for byte.
		pdf := docPDF("Repair invoice 2026-0042", 200<<10)
		up := s.expect(s.upload(f.alice, f.aliceClaim, "Repair invoice.pdf", "application/octet-stream", pdf, 0), 201)
		docID := up.str("id")
		if up.str("status") != "pending_scan" || up.str("contentType") != "application/pdf" {
			t.Fatalf("upload: %s", up.raw)
		}
		if loc := up.header.Get("Location"); loc != "/api/v1/claims/"+f.aliceClaim+"/documents/"+docID {
			t.Errorf("Location %q", loc)
		}
		s.waitStatus(f.alice, f.aliceClaim, docID, "clean")
		res, got, err := s.download(f.alice, f.aliceClaim, docID)
		if err != nil || res.StatusCode != 200 || !bytes.Equal(got, pdf) {
			t.Fatalf("download: err %v status %v, %d bytes (want %d identical)", err, res.StatusCode, len(got), len(pdf))
		}
		for h, want := range map[string]string{
			"Content-Type": "application/pdf", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
			"Content-Disposition": `attachment; filename="Repair invoice.pdf"; filename*=UTF-8''Repair%20invoice.pdf`,
		} {
			if g := res.Header.Get(h); g != want {
				t.Errorf("%s: %q, want %q", h, g, want)
			}
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox") {
			t.Errorf("Content-Security-Policy %q lacks sandbox", csp)
		}
		// The processor may read the claim (intake queue), so may download.
		if res, _, err := s.download(f.proc, f.aliceClaim, docID); err != nil || res.StatusCode != 200 {
			t.Errorf("processor download: %v %v", err, res)
		}

		// Every download is in the audit log: who, which document, which claim.
		trail := s.expect(s.do("GET", "/api/v1/audit?action=document.downloaded&object="+f.aliceClaim, f.admin, nil), 200).items()
		if len(trail) != 2 {
			t.Fatalf("%d download entries, want 2: %v", len(trail), trail)
		}
		det, _ := trail[0]["details"].(map[string]any)
		if det["document"] != docID || det["claim"] != f.aliceClaim || trail[0]["actorId"] == "" {
			t.Errorf("download audit entry: %v", trail[0])
		}
		upl := s.expect(s.do("GET", "/api/v1/audit?action=document.uploaded&object="+f.aliceClaim, f.admin, nil), 200).items()
		if len(upl) != 1 || strings.Contains(fmt.Sprint(upl[0]), "Repair invoice") {
			t.Errorf("upload audit entry (must exist, without the file name): %v", upl)
		}

		// The same file again on the same claim: 409 naming the first.
		dup := s.expect(s.upload(f.alice, f.aliceClaim, "again.pdf", "application/pdf", pdf, 0), 409)
		if !strings.Contains(dup.str("detail"), docID) {
			t.Errorf("duplicate does not name %s: %s", docID, dup.raw)
		}
		// The same file on another policyholder's claim: accepted, and both
		// claims are flagged; the same holder's other claim is not a signal.
		s.expect(s.upload(f.alice, f.aliceClaim2, "copy.pdf", "application/pdf", pdf, 0), 201)
		if fl := fmt.Sprint(s.expect(s.do("GET", "/api/v1/claims/"+f.aliceClaim, f.alice, nil), 200).body["flags"]); strings.Contains(fl, "shared_document") {
			t.Errorf("same holder's claims flagged: %s", fl)
		}
		s.expect(s.upload(f.bob, f.bobClaim, "mine.pdf", "application/pdf", pdf, 0), 201)
		for _, c := range []struct{ tok, id string }{{f.alice, f.aliceClaim}, {f.alice, f.aliceClaim2}, {f.bob, f.bobClaim}} {
			fl := fmt.Sprint(s.expect(s.do("GET", "/api/v1/claims/"+c.id, c.tok, nil), 200).body["flags"])
			if !strings.Contains(fl, "shared_document") {
				t.Errorf("claim %s flags %s, want shared_document", c.id, fl)
			}
		}
		if n := len(s.expect(s.do("GET", "/api/v1/audit?action=claim.flagged", f.admin, nil), 200).items()); n < 2 {
			t.Errorf("%d claim.flagged audit entries, want one per flagged claim", n)
		}

		// EICAR, plain; inside a PDF named claim.pdf; and sent in 10-byte
		// chunks: clamd catches each, the documents are quarantined and
		// can't be downloaded.
		eicarPDF := slices.Concat(docPDF("nothing to see", 0)[:9], []byte("% "), docEICAR, []byte("\n"), docPDF("nothing to see", 0)[9:])
		for _, c := range []struct {
			name    string
			content []byte
			chunk   int
		}{{"eicar.txt", docEICAR, 0}, {"claim.pdf", eicarPDF, 0}, {"chunked.txt", slices.Concat([]byte("note\n"), docEICAR, []byte("\n")), 10}} {
			up := s.expect(s.upload(f.alice, f.aliceClaim, c.name, "application/octet-stream", c.content, c.chunk), 201)
			id := up.str("id")
			q := s.waitStatus(f.alice, f.aliceClaim, id, "quarantined")
			if !strings.Contains(q.str("scanSignature"), "Eicar") && !strings.Contains(q.str("scanSignature"), "EICAR") {
				t.Errorf("%s: signature %q", c.name, q.str("scanSignature"))
			}
			res, _, _ := s.download(f.alice, f.aliceClaim, id)
			if res == nil || res.StatusCode != 409 {
				t.Errorf("%s: download of a quarantined document: %v", c.name, res)
			}
		}
		if n := len(s.expect(s.do("GET", "/api/v1/audit?action=security.malware_detected", f.admin, nil), 200).items()); n != 3 {
			t.Errorf("%d security events, want 3", n)
		}
		if n := len(s.expect(s.do("GET", "/api/v1/audit?action=document.quarantined&object="+f.aliceClaim, f.admin, nil), 200).items()); n != 3 {
			t.Errorf("%d quarantine notes on the claim, want 3", n)
		}
		// The bare EICAR text named claim.pdf never reaches the scanner: its
		// bytes contradict its name.
		s.expect(s.upload(f.alice, f.aliceClaim, "claim.pdf", "application/pdf", docEICAR, 0), 415)

		// HTML named invoice.pdf: 415 naming the allowed types.
		html := s.expect(s.upload(f.alice, f.aliceClaim, "invoice.pdf", "application/pdf", []byte("<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"), 0), 415)
		if !strings.Contains(html.str("detail"), "PDF, JPEG, PNG, WebP, TIFF and plain text") || !strings.Contains(string(html.raw), `"allowed"`) {
			t.Errorf("415 without the allowed types: %s", html.raw)
		}

		// Images come back re-encoded, without text chunks or GPS EXIF.
		pngDoc := s.expect(s.upload(f.alice, f.aliceClaim, "photo.png", "image/png", docPNGWithText(t, "Comment", "secret-home-address"), 0), 201).str("id")
		jpgDoc := s.expect(s.upload(f.alice, f.aliceClaim, "dashcam.jpg", "image/jpeg", docJPEGWithGPS(t, "marker-gps-camera"), 0), 201).str("id")
		for _, id := range []string{pngDoc, jpgDoc} {
			s.waitStatus(f.alice, f.aliceClaim, id, "clean")
			res, b, err := s.download(f.alice, f.aliceClaim, id)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("image download: %v %v", err, res)
			}
			for _, bad := range []string{"tEXt", "secret-home-address", "Exif", "marker-gps-camera"} {
				if bytes.Contains(b, []byte(bad)) {
					t.Errorf("image %s still holds %q", id, bad)
				}
			}
			if _, _, err := image.Decode(bytes.NewReader(b)); err != nil {
				t.Errorf("image %s does not decode: %v", id, err)
			}
		}

		// Hostile names are neutralised in the metadata and the download name.
		for _, c := range []struct{ name, want string }{
			{"../../../etc/passwd.txt", "passwd.txt"},
			{`..\..\windows\system32\notes.txt`, "notes.txt"},
			{"report\u202Etxt.pdf", "reporttxt.pdf"},
		} {
			content := []byte("plain notes for " + c.want + "\n")
			if strings.HasSuffix(c.want, ".pdf") {
				content = docPDF(c.want, 0)
			}
			up := s.expect(s.upload(f.alice, f.aliceClaim, c.name, "text/plain", content, 0), 201)
			if got := up.str("filename"); got != c.want {
				t.Errorf("name %q stored as %q, want %q", c.name, got, c.want)
			}
		}
		list := s.expect(s.do("GET", "/api/v1/claims/"+f.aliceClaim+"/documents", f.alice, nil), 200).items()
		for _, d := range list {
			n, _ := d["filename"].(string)
			if strings.ContainsAny(n, "/\\\u202E\x00") || strings.Contains(n, "..") {
				t.Errorf("listed name %q not neutralised", n)
			}
		}

		// Another customer: every document route answers 404, the same for
		// a foreign claim, a foreign document and a missing one.
		missing := "0123456789abcdef0123456789abcdef"
		var details []string
		for _, c := range []struct{ method, path string }{
			{"GET", "/api/v1/claims/" + f.aliceClaim + "/documents"},
			{"GET", "/api/v1/claims/" + f.aliceClaim + "/documents/" + docID},
			{"GET", "/api/v1/claims/" + f.aliceClaim + "/documents/" + docID + "/content"},
			{"GET", "/api/v1/claims/" + f.bobClaim + "/documents/" + docID},
			{"GET", "/api/v1/claims/" + f.bobClaim + "/documents/" + docID + "/content"},
			{"GET", "/api/v1/claims/" + f.bobClaim + "/documents/" + missing},
			{"GET", "/api/v1/claims/" + missing + "/documents/" + docID + "/content"},
		} {
			r := s.expect(s.do(c.method, c.path, f.bob, nil), 404)
			if strings.Contains(c.path, "/documents/") {
				details = append(details, r.str("detail"))
			}
		}
		for _, d := range details[1:] {
			if d != details[0] {
				t.Errorf("404 details differ: %q", details)
			}
		}
		s.expect(s.upload(f.bob, f.aliceClaim, "x.txt", "text/plain", []byte("hello"), 0), 404)
		s.expect(s.upload(f.bob, missing, "x.txt", "text/plain", []byte("hello"), 0), 404)

		// A truncated ciphertext: the download fails visibly (connection
		// aborted mid-body), never a 200 with fewer bytes that looks whole.
		before := blobFiles(t, s.dataDir)
		big := docPDF("to be truncated", 300<<10)
		tr := s.expect(s.upload(f.alice, f.aliceClaim2, "long.pdf", "application/pdf", big, 0), 201).str("id")
		s.waitStatus(f.alice, f.aliceClaim2, tr, "clean")
		var blob string
		for p := range blobFiles(t, s.dataDir) {
			if !before[p] {
				blob = p
			}
		}
		if blob == "" {
			t.Fatal("blob of the new document not found")
		}
		fi, _ := os.Stat(blob)
		if err := os.Truncate(blob, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
		res, got, err = s.download(f.alice, f.aliceClaim2, tr)
		if err == nil && res != nil && res.StatusCode == 200 {
			t.Fatalf("truncated blob downloaded as a success: %d of %d bytes", len(got), len(big))
		}
		if bytes.Equal(got, big) {
			t.Fatal("truncated blob served whole?")
		}
		t.Logf("truncated blob: status %v, %d bytes, err %v", statusOf(res), len(got), err)

		if out := mustRun(t, f.env, "", "audit", "verify"); !strings.Contains(out, "intact") {
			t.Errorf("audit verify: %s", out)
		}
	})
}

func statusOf(r *http.Response) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}

// TestDocumentLimits: limits are answered before the body is read.
func TestDocumentLimits(t *testing.T) {
	f := newDocFixture(t, store.SQLite, map[string]string{"CLAIMS_MAX_CLAIM_DOCUMENTS": "3"})
	s := f.s
	// 60 MB with a declared length: refused at once, before the body.
	st, sent := s.rawUpload(f.alice, f.aliceClaim, 60<<20, true)
	if st != 413 || sent > 8<<20 {
		t.Errorf("declared 60 MB: status %d after %d bytes sent", st, sent)
	}
	t.Logf("declared 60 MB: %d after %d body bytes", st, sent)
	// 60 MB chunked (no length): refused once past the 25 MiB limit.
	st, sent = s.rawUpload(f.alice, f.aliceClaim, 60<<20, false)
	if st != 413 || sent >= 60<<20 {
		t.Errorf("chunked 60 MB: status %d after %d bytes sent", st, sent)
	}
	t.Logf("chunked 60 MB: %d after %d body bytes", st, sent)
	if n := len(blobFiles(t, s.dataDir)); n != 0 {
		t.Errorf("%d blobs left behind by refused uploads", n)
	}
	// Per-claim count: the fourth document is refused with 409, before
	// its body is read (a 30 MB body would be 413 otherwise).
	for i := range 3 {
		s.expect(s.upload(f.alice, f.aliceClaim, fmt.Sprintf("n%d.txt", i), "text/plain", fmt.Appendf(nil, "note %d\n", i), 0), 201)
	}
	full := s.expect(s.upload(f.alice, f.aliceClaim, "n3.txt", "text/plain", []byte("one too many\n"), 0), 409)
	if !strings.Contains(full.str("detail"), "maximum of 3 documents") {
		t.Errorf("full claim: %s", full.raw)
	}
	if st, _ := s.rawUpload(f.alice, f.aliceClaim, 20<<20, false); st != 409 {
		t.Errorf("full claim, big body: %d", st)
	}
	// A withdrawn claim takes no more documents from its holder.
	s.expect(s.do("POST", "/api/v1/claims/"+f.aliceClaim2+"/withdraw", f.alice, map[string]string{"reason": "settled privately"}), 200)
	s.expect(s.upload(f.alice, f.aliceClaim2, "late.txt", "text/plain", []byte("late\n"), 0), 409)
	// Not multipart: 415.
	s.expect(s.do("POST", "/api/v1/claims/"+f.bobClaim+"/documents", f.bob, map[string]string{"file": "x"}), 415)
}

// TestDocumentsClamdDown: with clamd unreachable nothing is ever "clean by
// default": the document stays pending_scan and can't be downloaded.
func TestDocumentsClamdDown(t *testing.T) {
	f := newDocFixture(t, store.SQLite, map[string]string{"CLAIMS_CLAMD_ADDRESS": "unix:" + filepath.Join(t.TempDir(), "no-clamd.sock")})
	s := f.s
	id := s.expect(s.upload(f.alice, f.aliceClaim, "invoice.pdf", "application/pdf", docPDF("waiting", 0), 0), 201).str("id")
	time.Sleep(4 * time.Second) // the upload's own scan and one worker pass
	r := s.expect(s.do("GET", "/api/v1/claims/"+f.aliceClaim+"/documents/"+id, f.alice, nil), 200)
	if r.str("status") != "pending_scan" {
		t.Fatalf("status %s with clamd down", r.str("status"))
	}
	res, _, _ := s.download(f.alice, f.aliceClaim, id)
	if statusOf(res) != 409 {
		t.Errorf("download with clamd down: %d", statusOf(res))
	}
}

// pdfStream is an endless PDF-like stream: a PDF header, then filler.
type pdfStream struct {
	left int64
	head []byte
}

func (p *pdfStream) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	if len(p.head) > 0 {
		n = copy(b, p.head)
		p.head = p.head[n:]
	}
	for n < len(b) && int64(n) < p.left {
		b[n] = "0123456789 abcdef\n"[(int(p.left)+n)%18]
		n++
	}
	n = int(min(int64(n), p.left))
	p.left -= int64(n)
	return n, nil
}

// TestDocumentUploadMemory measures the server's memory while a 200 MB
// upload streams through it (the server runs in this process; the client
// streams from a generator, so what grows is the server's).
func TestDocumentUploadMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MB upload")
	}
	f := newDocFixture(t, store.SQLite, map[string]string{"CLAIMS_MAX_UPLOAD_BYTES": fmt.Sprint(256 << 20),
		"CLAIMS_MAX_CLAIM_BYTES": fmt.Sprint(512 << 20), "CLAIMS_CLAMD_ADDRESS": "unix:/nonexistent/clamd.sock"})
	s := f.s
	const size = 200 << 20
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peakHeap, peakSys atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peakHeap.Load() {
				peakHeap.Store(m.HeapInuse)
			}
			if m.Sys > peakSys.Load() {
				peakSys.Store(m.Sys)
			}
		}
	})
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("file", "big.pdf")
		if err == nil {
			_, err = io.Copy(part, &pdfStream{left: size, head: []byte("%PDF-1.4\n")})
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest("POST", s.base+"/api/v1/claims/"+f.aliceClaim+"/documents", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+f.alice)
	client := &http.Client{Timeout: 5 * time.Minute, Transport: s.client.Transport}
	start := time.Now()
	res, err := client.Do(req)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("200 MB upload: %d %s", res.StatusCode, body)
	}
	heapGrowth := int64(peakHeap.Load()) - int64(before.HeapInuse)
	sysGrowth := int64(peakSys.Load()) - int64(before.Sys)
	t.Logf("200 MB upload in %v (%.0f MB/s): peak HeapInuse growth %.1f MiB, Sys growth %.1f MiB",
		elapsed.Round(time.Millisecond), float64(size)/1e6/elapsed.Seconds(), float64(heapGrowth)/(1<<20), float64(sysGrowth)/(1<<20))
	if heapGrowth > 32<<20 {
		t.Errorf("heap grew by %.1f MiB during a 200 MB upload; the goal is under 32 MiB", float64(heapGrowth)/(1<<20))
	}
}

// BenchmarkUpload measures upload throughput through the HTTPS stack: TLS,
// multipart parsing, type sniffing, hashing, encryption and the durable
// blob write plus the database transaction. Scanning is left out (clamd
// points nowhere, so the background scan fails at once); see
// BenchmarkDocumentScan in package workflow for it.
func BenchmarkUpload(b *testing.B) {
	for _, size := range []int{1 << 20, 8 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			env := map[string]string{"CLAIMS_DATA_DIR": b.TempDir(), "CLAIMS_BCRYPT_COST": "10", "CLAIMS_LOG_LEVEL": "error",
				"CLAIMS_ADDR": "127.0.0.1:0", "CLAIMS_MAX_CLAIM_DOCUMENTS": "1000000", "CLAIMS_MAX_CLAIM_BYTES": fmt.Sprint(int64(1) << 50),
				"CLAIMS_CLAMD_ADDRESS": "unix:/nonexistent/clamd.sock"}
			runCLI := func(stdin string, args ...string) {
				var out bytes.Buffer
				if err := cli.Run(context.Background(), cli.Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &out,
					Getenv: func(k string) string { return env[k] }}, args); err != nil {
					b.Fatalf("%v: %v\n%s", args, err, out.String())
				}
			}
			runCLI(pw+"\n", "user", "create", "--email", "proc@example.com", "--role", "claims_processor", "--password-stdin")
			runCLI("", "import", "auto-claims", "--quiet", "../importer/testdata/auto_lf_c39.csv")
			ctx, cancel := context.WithCancel(context.Background())
			ready, done := make(chan string, 1), make(chan error, 1)
			go func() {
				done <- cli.Run(ctx, cli.Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard,
					Getenv: func(k string) string { return env[k] }, Ready: func(a string) { ready <- a }}, []string{"serve"})
			}()
			addr := <-ready
			defer func() { cancel(); <-done }()
			pem, _ := os.ReadFile(filepath.Join(env["CLAIMS_DATA_DIR"], "tls-cert.pem"))
			pool := x509CertPool(pem)
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
			call := func(method, path, token, ctype string, body io.Reader) (int, map[string]any) {
				req, _ := http.NewRequest(method, "https://"+addr+path, body)
				if ctype != "" {
					req.Header.Set("Content-Type", ctype)
				}
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				defer res.Body.Close()
				var m map[string]any
				json.NewDecoder(res.Body).Decode(&m)
				return res.StatusCode, m
			}
			_, login := call("POST", "/api/v1/auth/login", "", "application/json", strings.NewReader(`{"email":"proc@example.com","password":"`+pw+`"}`))
			tok, _ := login["access_token"].(string)
			_, list := call("GET", "/api/v1/claims?limit=1", tok, "", nil)
			claimID := list["items"].([]any)[0].(map[string]any)["id"].(string)
			content := docPDF("benchmark", size)
			content = content[:size]
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				copy(content[9:], fmt.Sprintf("%% %016d\n", i)) // every upload differs
				var buf bytes.Buffer
				mw := multipart.NewWriter(&buf)
				part, _ := mw.CreateFormFile("file", "bench.pdf")
				part.Write(content)
				mw.Close()
				if st, m := call("POST", "/api/v1/claims/"+claimID+"/documents", tok, mw.FormDataContentType(), &buf); st != 201 {
					b.Fatalf("upload %d: %d %v", i, st, m)
				}
			}
		})
	}
}

func x509CertPool(pem []byte) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}
