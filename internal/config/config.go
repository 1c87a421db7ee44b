// Package config reads the server's configuration from CLAIMS_* environment
// variables (secrets may come from CLAIMS_X_FILE), with command-line flags
// for per-invocation overrides applied by package cli. Load reports every
// problem at once. Only cli calls it; other packages receive plain values.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the effective configuration.
type Config struct {
	DataDir           string        // CLAIMS_DATA_DIR, default ./data
	Addr              string        // CLAIMS_ADDR, default 127.0.0.1:8443
	DatabaseURL       string        // CLAIMS_DATABASE_URL(_FILE); empty = SQLite in DataDir
	KeysDir           string        // CLAIMS_KEYS_DIR, default <data-dir>/keys
	TLSCert           string        // CLAIMS_TLS_CERT
	TLSKey            string        // CLAIMS_TLS_KEY
	BcryptCost        int           // CLAIMS_BCRYPT_COST, default 12
	LogLevel          string        // CLAIMS_LOG_LEVEL: debug, info, warn, error
	LogFormat         string        // CLAIMS_LOG_FORMAT: text or json
	TrustedProxies    string        // CLAIMS_TRUSTED_PROXIES: comma-separated CIDRs
	AllowInsecureKeys bool          // CLAIMS_ALLOW_INSECURE_KEY_FILES: development only
	ShutdownGrace     time.Duration // CLAIMS_SHUTDOWN_GRACE, default 20s

	// Live claim updates over WebSockets (docs/live.md).
	WSOrigins    []string // CLAIMS_WS_ORIGINS: comma-separated exact origins (https://app.example.com) allowed besides the server's own
	WSMaxPerUser int      // CLAIMS_WS_MAX_PER_USER: open sockets per user, default 5
	WSMaxPerIP   int      // CLAIMS_WS_MAX_PER_IP: open sockets per client address, default 50

	// Sign-in protection (README, Authentication).
	LoginLockAfter    int           // CLAIMS_LOGIN_LOCK_AFTER: failures on one email before it locks, default 10
	LoginLockFor      time.Duration // CLAIMS_LOGIN_LOCK_FOR, default 15m
	LoginIPDelayAfter int           // CLAIMS_LOGIN_IP_DELAY_AFTER: failures from one address before delays, default 20

	// API edge (docs/edge.md).
	RateLimits        map[string]string // CLAIMS_RATE_{AUTH,UPLOAD,READ,WRITE}_{IP,USER}: "N/duration" or "off" (keys "auth_ip", ...); unset = ratelimit.Defaults; CLAIMS_RATE_LIMITS=off turns the unset ones off
	RateBackend       string            // CLAIMS_RATE_BACKEND: auto (database on PostgreSQL, memory on SQLite), memory or database
	CORSOrigins       []string          // CLAIMS_CORS_ORIGINS: comma-separated exact origins; empty = CORS off
	TLSMin            string            // CLAIMS_TLS_MIN: "1.3" (default) or "1.2"
	HTTPRedirectAddr  string            // CLAIMS_HTTP_REDIRECT_ADDR: a plain-HTTP listener that only redirects to HTTPS
	ReadHeaderTimeout time.Duration     // CLAIMS_READ_HEADER_TIMEOUT, default 10s (bounds the TLS handshake and the headers)
	ReadTimeout       time.Duration     // CLAIMS_READ_TIMEOUT, default 2m (the whole request, body included)
	WriteTimeout      time.Duration     // CLAIMS_WRITE_TIMEOUT, default 2m
	IdleTimeout       time.Duration     // CLAIMS_IDLE_TIMEOUT, default 2m (keep-alive between requests)
	MaxHeaderBytes    int               // CLAIMS_MAX_HEADER_BYTES, default 64 KiB

	// Claim documents (docs/documents.md).
	ClamdAddress      string   // CLAIMS_CLAMD_ADDRESS: "unix:/path/clamd.sock" or "tcp:host:port"; empty = development scanner
	MaxUploadBytes    int64    // CLAIMS_MAX_UPLOAD_BYTES, per file, default 25 MiB
	MaxClaimDocuments int      // CLAIMS_MAX_CLAIM_DOCUMENTS, default 20
	MaxClaimBytes     int64    // CLAIMS_MAX_CLAIM_BYTES, default 200 MiB
	ScanBlocklist     []string // CLAIMS_SCAN_BLOCKLIST: comma-separated hex SHA-256 (development scanner)
	BlobURL           string   // CLAIMS_BLOB_URL: empty = <data-dir>/documents; s3://bucket/prefix?endpoint=host:port&region=...&tls=true
	S3AccessKey       string   // CLAIMS_S3_ACCESS_KEY(_FILE), for an s3:// BlobURL
	S3SecretKey       string   // CLAIMS_S3_SECRET_KEY(_FILE), for an s3:// BlobURL

	// Data protection (docs/data-protection.md).
	KEKs             string        // CLAIMS_KEKS(_FILE): "kek:<id>:<key>,..." (first = primary); overrides the KEK files
	VaultAddr        string        // CLAIMS_KMS_VAULT_ADDR: Vault/OpenBao transit protects the KEKs when set
	VaultTokenFile   string        // CLAIMS_KMS_VAULT_TOKEN_FILE
	VaultKey         string        // CLAIMS_KMS_VAULT_KEY: transit key name, default "claims"
	VaultMount       string        // CLAIMS_KMS_VAULT_MOUNT: transit mount path, default "transit"
	BackupDir        string        // CLAIMS_BACKUP_DIR: where scheduled backups go
	BackupRecipients []string      // CLAIMS_BACKUP_RECIPIENTS (comma-separated age public keys) or CLAIMS_BACKUP_RECIPIENTS_FILE
	BackupInterval   time.Duration // CLAIMS_BACKUP_INTERVAL: 0 = no scheduled backups
	BackupKeep       int           // CLAIMS_BACKUP_KEEP: scheduled backups kept, default 7
	RetentionYears   int           // CLAIMS_RETENTION_YEARS: financial records kept (pseudonymised) after erasure, default 10
}

// Default returns the embedded-default configuration.
func Default() Config {
	return Config{DataDir: "data", Addr: "127.0.0.1:8443", BcryptCost: 12, LogLevel: "info", LogFormat: "text",
		ShutdownGrace:  20 * time.Second,
		MaxUploadBytes: 25 << 20, MaxClaimDocuments: 20, MaxClaimBytes: 200 << 20,
		VaultKey: "claims", VaultMount: "transit", BackupKeep: 7, RetentionYears: 10}
}

// Load returns Default overridden by the environment.
func Load(getenv func(string) string) (Config, error) {
	c := Default()
	var errs []error
	str := func(key string, dst *string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	str("CLAIMS_DATA_DIR", &c.DataDir)
	str("CLAIMS_ADDR", &c.Addr)
	str("CLAIMS_KEYS_DIR", &c.KeysDir)
	str("CLAIMS_TLS_CERT", &c.TLSCert)
	str("CLAIMS_TLS_KEY", &c.TLSKey)
	str("CLAIMS_LOG_LEVEL", &c.LogLevel)
	str("CLAIMS_LOG_FORMAT", &c.LogFormat)
	str("CLAIMS_TRUSTED_PROXIES", &c.TrustedProxies)
	errs = append(errs, loadLive(getenv, &c)...)
	if v := getenv("CLAIMS_BCRYPT_COST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("CLAIMS_BCRYPT_COST: %w", err))
		}
		c.BcryptCost = n
	}
	if v := getenv("CLAIMS_SHUTDOWN_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("CLAIMS_SHUTDOWN_GRACE: %w", err))
		}
		c.ShutdownGrace = d
	}
	if v := getenv("CLAIMS_ALLOW_INSECURE_KEY_FILES"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("CLAIMS_ALLOW_INSECURE_KEY_FILES: %w", err))
		}
		c.AllowInsecureKeys = b
	}
	str("CLAIMS_CLAMD_ADDRESS", &c.ClamdAddress)
	str("CLAIMS_BLOB_URL", &c.BlobURL)
	for key, dst := range map[string]*string{"CLAIMS_S3_ACCESS_KEY": &c.S3AccessKey, "CLAIMS_S3_SECRET_KEY": &c.S3SecretKey} {
		v, err := secret(getenv, key)
		if err != nil {
			errs = append(errs, err)
		}
		*dst = v
	}
	for _, v := range []struct {
		key string
		dst *int64
	}{{"CLAIMS_MAX_UPLOAD_BYTES", &c.MaxUploadBytes}, {"CLAIMS_MAX_CLAIM_BYTES", &c.MaxClaimBytes}} {
		if s := getenv(v.key); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", v.key, err))
			}
			*v.dst = n
		}
	}
	if v := getenv("CLAIMS_MAX_CLAIM_DOCUMENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("CLAIMS_MAX_CLAIM_DOCUMENTS: %w", err))
		}
		c.MaxClaimDocuments = n
	}
	if v := getenv("CLAIMS_SCAN_BLOCKLIST"); v != "" {
		for _, h := range strings.Split(v, ",") {
			if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
				c.ScanBlocklist = append(c.ScanBlocklist, h)
			}
		}
	}
	for _, v := range []struct {
		key string
		dst *int
	}{{"CLAIMS_LOGIN_LOCK_AFTER", &c.LoginLockAfter}, {"CLAIMS_LOGIN_IP_DELAY_AFTER", &c.LoginIPDelayAfter}} {
		if s := getenv(v.key); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("%s: want a positive integer", v.key))
			}
			*v.dst = n
		}
	}
	if v := getenv("CLAIMS_LOGIN_LOCK_FOR"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("CLAIMS_LOGIN_LOCK_FOR: %w", err))
		}
		c.LoginLockFor = d
	}
	errs = append(errs, loadEdge(getenv, &c)...)
	var err error
	if c.DatabaseURL, err = secret(getenv, "CLAIMS_DATABASE_URL"); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, loadDataProtection(getenv, &c)...)
	return c, errors.Join(errs...)
}

// Validate checks the values after flags were applied.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir must not be empty"))
	}
	if c.KeysDir == "" {
		c.KeysDir = filepath.Join(c.DataDir, "keys")
	}
	if c.BcryptCost < 10 || c.BcryptCost > 16 {
		errs = append(errs, fmt.Errorf("bcrypt cost %d: must be between 10 and 16 (12 recommended)", c.BcryptCost))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("set both --tls-cert and --tls-key, or neither"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel))
	}
	if a := c.ClamdAddress; a != "" && !strings.HasPrefix(a, "unix:/") && !strings.HasPrefix(a, "tcp:") {
		errs = append(errs, fmt.Errorf("clamd address %q: want unix:/path/clamd.sock or tcp:host:port", a))
	}
	if c.BlobURL != "" {
		// The rest of the URL is checked by files.ParseS3URL when the store opens.
		if !strings.HasPrefix(c.BlobURL, "s3://") {
			errs = append(errs, errors.New("CLAIMS_BLOB_URL: want s3://bucket/prefix?endpoint=host:port (unset: documents in the data dir)"))
		}
		if c.S3AccessKey == "" || c.S3SecretKey == "" {
			errs = append(errs, errors.New("CLAIMS_BLOB_URL needs CLAIMS_S3_ACCESS_KEY and CLAIMS_S3_SECRET_KEY (or _FILE)"))
		}
	} else if c.S3AccessKey != "" || c.S3SecretKey != "" {
		errs = append(errs, errors.New("CLAIMS_S3_ACCESS_KEY and CLAIMS_S3_SECRET_KEY are set but CLAIMS_BLOB_URL is not: documents would stay in the data dir"))
	}
	if c.MaxUploadBytes <= 0 || c.MaxClaimBytes <= 0 || c.MaxClaimDocuments <= 0 {
		errs = append(errs, errors.New("CLAIMS_MAX_UPLOAD_BYTES, CLAIMS_MAX_CLAIM_BYTES and CLAIMS_MAX_CLAIM_DOCUMENTS must be positive"))
	}
	for _, h := range c.ScanBlocklist {
		if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			errs = append(errs, fmt.Errorf("scan blocklist entry %q: want a hex SHA-256 (64 digits)", h))
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log format %q: want text or json", c.LogFormat))
	}
	errs = append(errs, c.validateEdge()...)
	return errors.Join(errs...)
}

// loadEdge reads the API edge settings: rate limits, CORS, TLS, timeouts.
func loadEdge(getenv func(string) string, c *Config) []error {
	var errs []error
	all := getenv("CLAIMS_RATE_LIMITS") // "off": every class off unless set on its own (tests, external limiter)
	if all != "" && all != "off" && all != "on" {
		errs = append(errs, errors.New("CLAIMS_RATE_LIMITS: want on or off"))
	}
	for _, class := range []string{"AUTH", "UPLOAD", "READ", "WRITE"} {
		for _, who := range []string{"IP", "USER"} {
			v := getenv("CLAIMS_RATE_" + class + "_" + who)
			if v == "" && all == "off" {
				v = "off"
			}
			if v != "" {
				if c.RateLimits == nil {
					c.RateLimits = map[string]string{}
				}
				c.RateLimits[strings.ToLower(class+"_"+who)] = v
			}
		}
	}
	for key, dst := range map[string]*string{"CLAIMS_RATE_BACKEND": &c.RateBackend, "CLAIMS_TLS_MIN": &c.TLSMin,
		"CLAIMS_HTTP_REDIRECT_ADDR": &c.HTTPRedirectAddr} {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	for _, o := range strings.Split(getenv("CLAIMS_CORS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	for key, dst := range map[string]*time.Duration{"CLAIMS_READ_HEADER_TIMEOUT": &c.ReadHeaderTimeout,
		"CLAIMS_READ_TIMEOUT": &c.ReadTimeout, "CLAIMS_WRITE_TIMEOUT": &c.WriteTimeout, "CLAIMS_IDLE_TIMEOUT": &c.IdleTimeout} {
		if v := getenv(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s: want a positive duration such as 10s", key))
			}
			*dst = d
		}
	}
	if v := getenv("CLAIMS_MAX_HEADER_BYTES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 4096 || n > 1<<20 {
			errs = append(errs, errors.New("CLAIMS_MAX_HEADER_BYTES: want a number of bytes between 4096 and 1048576"))
		}
		c.MaxHeaderBytes = n
	}
	return errs
}

// validateEdge fills the edge defaults left unset and checks the choices.
func (c *Config) validateEdge() []error {
	var errs []error
	for _, d := range []struct {
		dst *time.Duration
		def time.Duration
	}{{&c.ReadHeaderTimeout, 10 * time.Second}, {&c.ReadTimeout, 2 * time.Minute}, {&c.WriteTimeout, 2 * time.Minute},
		{&c.IdleTimeout, 2 * time.Minute}} {
		if *d.dst <= 0 {
			*d.dst = d.def
		}
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	switch c.TLSMin {
	case "":
		c.TLSMin = "1.3"
	case "1.3", "1.2":
	default:
		errs = append(errs, fmt.Errorf("TLS minimum %q: want 1.3 (default) or 1.2", c.TLSMin))
	}
	switch c.RateBackend {
	case "":
		c.RateBackend = "auto"
	case "auto", "memory", "database":
	default:
		errs = append(errs, fmt.Errorf("CLAIMS_RATE_BACKEND %q: want auto, memory or database", c.RateBackend))
	}
	return errs
}

// loadLive reads the WebSocket settings. Origins must be exact
// scheme://host[:port] values: no wildcards, no paths.
func loadLive(getenv func(string) string, c *Config) []error {
	var errs []error
	c.WSMaxPerUser, c.WSMaxPerIP = 5, 50
	for _, o := range strings.Split(getenv("CLAIMS_WS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		scheme, host, ok := strings.Cut(o, "://")
		if !ok || (scheme != "https" && scheme != "http") || host == "" || strings.ContainsAny(host, "/*?#@ ") {
			errs = append(errs, fmt.Errorf("CLAIMS_WS_ORIGINS: %q is not an origin such as https://app.example.com", o))
			continue
		}
		c.WSOrigins = append(c.WSOrigins, strings.ToLower(o))
	}
	for key, dst := range map[string]*int{"CLAIMS_WS_MAX_PER_USER": &c.WSMaxPerUser, "CLAIMS_WS_MAX_PER_IP": &c.WSMaxPerIP} {
		if v := getenv(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("%s: want a positive integer", key))
			}
			*dst = n
		}
	}
	return errs
}

// DatabaseTarget is what store.Open takes: the PostgreSQL URL, or the
// SQLite file in the data dir.
func (c Config) DatabaseTarget() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return filepath.Join(c.DataDir, "claims.db")
}

// Redacted returns the configuration for printing, with secrets masked.
func (c Config) Redacted() string {
	db := "sqlite:" + c.DatabaseTarget()
	if c.DatabaseURL != "" {
		db = redactURL(c.DatabaseURL)
	}
	docs := filepath.Join(c.DataDir, "documents")
	if c.BlobURL != "" {
		docs = redactURL(c.BlobURL)
	}
	return fmt.Sprintf("data_dir=%s\naddr=%s\ndatabase=%s\nkeys_dir=%s\ntls_cert=%s\nbcrypt_cost=%d\nlog=%s/%s\ntrusted_proxies=%s\ndocuments=%s\n",
		c.DataDir, c.Addr, db, c.KeysDir, c.TLSCert, c.BcryptCost, c.LogLevel, c.LogFormat, c.TrustedProxies, docs)
}

func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return "[redacted]"
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		creds := rest[:at]
		user, _, _ := strings.Cut(creds, ":")
		rest = user + ":[redacted]" + rest[at:]
	}
	if q := strings.Index(rest, "?"); q >= 0 && strings.Contains(rest[q:], "password") {
		rest = rest[:q] + "?[redacted]"
	}
	return scheme + "://" + rest
}

// secret reads key from the environment, or from the file named by
// key_FILE (how Docker and Kubernetes secrets arrive). Both is an error.
func secret(getenv func(string) string, key string) (string, error) {
	v, file := getenv(key), getenv(key+"_FILE")
	switch {
	case v != "" && file != "":
		return "", fmt.Errorf("set %s or %s_FILE, not both", key, key)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %w", key, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return v, nil
}

// loadDataProtection reads the key-source, backup and retention settings.
func loadDataProtection(getenv func(string) string, c *Config) []error {
	var errs []error
	var err error
	if c.KEKs, err = secret(getenv, "CLAIMS_KEKS"); err != nil {
		errs = append(errs, err)
	}
	for key, dst := range map[string]*string{"CLAIMS_KMS_VAULT_ADDR": &c.VaultAddr, "CLAIMS_KMS_VAULT_TOKEN_FILE": &c.VaultTokenFile,
		"CLAIMS_KMS_VAULT_KEY": &c.VaultKey, "CLAIMS_KMS_VAULT_MOUNT": &c.VaultMount, "CLAIMS_BACKUP_DIR": &c.BackupDir} {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	recips, file := getenv("CLAIMS_BACKUP_RECIPIENTS"), getenv("CLAIMS_BACKUP_RECIPIENTS_FILE")
	if recips != "" && file != "" {
		errs = append(errs, errors.New("set CLAIMS_BACKUP_RECIPIENTS or CLAIMS_BACKUP_RECIPIENTS_FILE, not both"))
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("CLAIMS_BACKUP_RECIPIENTS_FILE: %w", err))
		}
		recips = strings.ReplaceAll(string(b), "\n", ",")
	}
	for _, r := range strings.Split(recips, ",") {
		if r = strings.TrimSpace(r); r != "" && !strings.HasPrefix(r, "#") {
			c.BackupRecipients = append(c.BackupRecipients, r)
		}
	}
	if v := getenv("CLAIMS_BACKUP_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("CLAIMS_BACKUP_INTERVAL: want a duration such as 24h"))
		}
		c.BackupInterval = d
	}
	for key, dst := range map[string]*int{"CLAIMS_BACKUP_KEEP": &c.BackupKeep, "CLAIMS_RETENTION_YEARS": &c.RetentionYears} {
		if v := getenv(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("%s: want a positive integer", key))
			}
			*dst = n
		}
	}
	if c.BackupInterval > 0 && (c.BackupDir == "" || len(c.BackupRecipients) == 0) {
		errs = append(errs, errors.New("CLAIMS_BACKUP_INTERVAL needs CLAIMS_BACKUP_DIR and CLAIMS_BACKUP_RECIPIENTS (or _FILE)"))
	}
	if c.VaultAddr != "" && c.VaultTokenFile == "" {
		errs = append(errs, errors.New("CLAIMS_KMS_VAULT_ADDR needs CLAIMS_KMS_VAULT_TOKEN_FILE"))
	}
	if c.VaultAddr != "" && c.KEKs != "" {
		errs = append(errs, errors.New("set CLAIMS_KEKS or CLAIMS_KMS_VAULT_ADDR, not both"))
	}
	return errs
}
