package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/web"
	"github.com/openclaims/claims/internal/web/api"
)

func serve(ctx context.Context, env Env, args []string) error {
	f := newFlags("serve", env)
	addr := f.fs.String("addr", "", "listen address (env CLAIMS_ADDR, default 127.0.0.1:8443)")
	cert := f.fs.String("tls-cert", "", "PEM certificate (env CLAIMS_TLS_CERT); default: self-signed in the data dir")
	key := f.fs.String("tls-key", "", "PEM private key (env CLAIMS_TLS_KEY)")
	clamd := f.fs.String("clamd-address", "", "clamd for virus scanning: unix:/path/clamd.sock or tcp:host:port (env CLAIMS_CLAMD_ADDRESS); default: the development scanner")
	tlsMin := f.fs.String("tls-min", "", "lowest TLS version: 1.3 (default) or 1.2, AEAD suites only (env CLAIMS_TLS_MIN)")
	redirectAddr := f.fs.String("http-redirect-addr", "", "also listen for plain HTTP here, answering only with redirects to HTTPS (env CLAIMS_HTTP_REDIRECT_ADDR)")
	if err := f.parse(env, args); err != nil {
		return err
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	if *f.dataDir != "" {
		cfg.DataDir = *f.dataDir
	}
	if *f.databaseURL != "" {
		cfg.DatabaseURL = *f.databaseURL
	}
	if *addr != "" {
		cfg.Addr = *addr
	}
	if *cert != "" || *key != "" {
		cfg.TLSCert, cfg.TLSKey = *cert, *key
	}
	if *clamd != "" {
		cfg.ClamdAddress = *clamd
	}
	if *tlsMin != "" {
		cfg.TLSMin = *tlsMin
	}
	if *redirectAddr != "" {
		cfg.HTTPRedirectAddr = *redirectAddr
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	a, err := openApp(ctx, env, cfg, true)
	if err != nil {
		return err
	}
	defer a.Close()
	proxies, err := web.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return err
	}

	certFile, keyFile := cfg.TLSCert, cfg.TLSKey
	if certFile == "" {
		certFile, keyFile = filepath.Join(cfg.DataDir, "tls-cert.pem"), filepath.Join(cfg.DataDir, "tls-key.pem")
		if err := ensureSelfSigned(certFile, keyFile); err != nil {
			return err
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	fp := sha256.Sum256(leaf.Raw)
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)

	mux := http.NewServeMux()
	h := api.New(a.flow, a.log, a.tokens.JWKS, func(ctx context.Context) error {
		if err := a.db.Ping(ctx); err != nil {
			return err
		}
		applied, known, err := a.db.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		// A node is ready once the schema has at least the migrations it
		// knows. A newer node may have applied more during a rolling
		// upgrade: migrations are additive (docs/deployment.md), so older
		// nodes keep serving rather than all dropping out at once.
		if applied < known {
			return fmt.Errorf("schema at %d of %d migrations", applied, known)
		}
		return nil
	})
	h.Register(mux)
	// The live channel (docs/live.md) and the edge: rate limits, CORS (edge.go).
	h.SetLive(a.events, api.LiveOptions{Origins: cfg.WSOrigins, MaxPerUser: cfg.WSMaxPerUser, MaxPerIP: cfg.WSMaxPerIP})
	edge, err := newEdge(cfg, a, h)
	if err != nil {
		return err
	}
	// The per-address rate limit runs once the client address is known and
	// before anything costly; the per-user one inside api, once the token
	// is verified (docs/edge.md).
	handler := web.Chain(mux,
		web.RequestIDs, proxies.Middleware, web.AccessLog(a.log), web.Recover(a.log), web.SecurityHeaders,
		edge.cors.Middleware, edge.cop.Handler, edge.guard.Middleware, api.Meta)

	srv := &http.Server{
		Handler:   handler,
		TLSConfig: tlsConfig(cfg.TLSMin, pair),
		// Slow clients: the header deadline also bounds the TLS handshake;
		// ReadTimeout covers the body (uploads of a few dozen MB on a slow
		// link); all configurable (docs/edge.md).
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          nil,
	}
	srv.RegisterOnShutdown(h.CloseLive) // Shutdown doesn't see hijacked WebSockets
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "claims %s listening on https://%s ("+tlsLabel(cfg.TLSMin)+")\n  data: %s (%s)\n  certificate SHA-256 fingerprint: %s\n  SPKI pin (sha256/base64): %s\n",
		Version, ln.Addr(), cfg.DataDir, a.db.Dialect(), colonHex(fp[:]), base64.StdEncoding.EncodeToString(spki[:]))
	fmt.Fprintf(env.Stdout, "  document scanner: %s\n", a.scannerBanner())
	if cfg.TLSMin == "1.2" {
		fmt.Fprintln(env.Stdout, "  WARNING: TLS 1.2 is allowed (--tls-min 1.2); only ECDHE with AEAD suites, but prefer TLS 1.3 only")
	}
	fmt.Fprintf(env.Stdout, "  rate limits: %s; CORS: %s\n", edge.name, edge.corsBanner())
	if edge.sweep != nil {
		sweepCtx, stopSweep := context.WithCancel(ctx)
		defer stopSweep()
		go edge.sweep(sweepCtx)
	}
	if cfg.HTTPRedirectAddr != "" {
		_, httpsPort, _ := net.SplitHostPort(ln.Addr().String())
		rln, err := net.Listen("tcp", cfg.HTTPRedirectAddr)
		if err != nil {
			return fmt.Errorf("http redirect listener: %w", err)
		}
		rsrv := redirectServer(httpsPort) // edge.go
		go rsrv.Serve(rln)
		defer rsrv.Close()
		fmt.Fprintf(env.Stdout, "  plain HTTP on %s redirects to HTTPS\n", rln.Addr())
	}
	workerCtx, stopWorker := context.WithCancel(ctx)
	waitWorker := startDocumentWorker(workerCtx, a)
	defer func() { stopWorker(); waitWorker() }()
	backupCtx, stopBackups := context.WithCancel(ctx)
	waitBackups := startBackupLoop(backupCtx, cfg, a.db, a.log) // backup.go
	defer func() { stopBackups(); waitBackups() }()
	if env.Ready != nil {
		env.Ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	go checkpointLoop(ctx, a, 10*time.Minute)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Graceful shutdown: stop accepting, let in-flight requests finish (each
	// write is one transaction, so nothing is left half-written).
	a.log.Info("shutting down", "grace", cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintln(env.Stdout, "claims stopped")
	return nil
}

func colonHex(b []byte) string {
	s := strings.ToUpper(hex.EncodeToString(b))
	var out []string
	for i := 0; i < len(s); i += 2 {
		out = append(out, s[i:i+2])
	}
	return strings.Join(out, ":")
}

// ensureSelfSigned creates a self-signed ECDSA certificate for localhost on
// first run, so the embedded default serves HTTPS with nothing to set up.
func ensureSelfSigned(certFile, keyFile string) error {
	if _, err := os.Stat(certFile); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "claims (self-signed)"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
