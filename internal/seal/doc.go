// Package seal protects personal, medical and financial data at rest.
//
// It provides a keyring of key-encryption keys (KEKs), envelope encryption for
// single database fields, per-data-subject keys for crypto-shredding, blind
// indexes for exact-match lookups on encrypted columns, a streaming AEAD for
// documents, and loading of key files from a keys directory.
//
// Nothing here is new cryptography. Every construction is a composition of
// standard-library primitives: AES-256-GCM (crypto/aes, crypto/cipher),
// HMAC-SHA256 (crypto/hmac, crypto/sha256), HKDF-SHA256 (crypto/hkdf) and
// crypto/rand. The design follows well-known patterns: envelope encryption as
// in cloud KMS products, and for documents the "STREAM" online-AE construction
// of Hoang, Reyhanitabar, Rogaway and Vizár as used by Tink's streaming AEAD.
//
// # Keys
//
//   - KEK: 32 random bytes plus a short id ("k1", "k2", ...). Ids match
//     [A-Za-z0-9_-]{1,32}. Text form: "kek:<id>:<base64url key, unpadded>".
//   - KeyRing: one primary KEK, which wraps every new DEK, plus any number of
//     older KEKs, which are only used to unwrap. A KeyRing is immutable and
//     safe for concurrent use.
//   - DEK (data-encryption key): 32 random bytes. Field values and documents
//     get a fresh DEK each; data subjects (policyholders) get one long-lived
//     DEK each, stored wrapped in the database. Deleting a subject's wrapped
//     DEK makes everything sealed under it unrecoverable (crypto-shredding).
//   - IndexKey: 32 random bytes, independent of every KEK, used only for blind
//     indexes. Text form: "index:<base64url key, unpadded>". It is not rotated
//     with the KEKs, so KEK rotation never breaks lookups.
//
// Key types never print their bytes: String, GoString, slog's LogValue and
// MarshalJSON all give "seal.KEK(<id>)", "seal.DEK" or "seal.IndexKey". Key
// bytes and AEADs (whose AES key schedules contain the key) are held only
// inside closures, so even reflection-based printing of a struct that embeds
// a key in an unexported field (fmt with %+v or a bad verb, spew-style
// dumpers) shows at most a function address. The
// types contain a zero-size func field, so they cannot be compared with ==
// (which would not be constant-time). MarshalText is the only way to export a
// key and is meant for writing key files.
//
// # Associated data
//
// Every operation takes associated data (AAD) that names where the value
// lives. Use AAD(table, column, rowID), which yields "table.column:rowID";
// table and column must be identifiers ([A-Za-z0-9_-]+), so the encoding is
// unambiguous. A value copied to another row or column fails to open.
//
// All AEAD calls prepend a fixed label and the format byte to the caller's
// AAD, so the two layers (wrapping and body) and the different formats are
// domain-separated from each other:
//
//	wrap AAD = "claims/seal wrap\x00" | format | kidLen | kid | aad
//	body AAD = "claims/seal body\x00" | format | aad
//
// # Field format (format byte 0x01)
//
// KeyRing.Seal draws a fresh DEK, wraps it under the primary KEK with
// AES-256-GCM (random 96-bit nonce), and seals the plaintext under the DEK
// with AES-256-GCM (random 96-bit nonce). Integers are big-endian.
//
//	+------+--------+---------------+-----------+-----------------------------+-----------------------------+
//	| 0x01 | kidLen | kid           | wLen (2)  | wrapped DEK (wLen = 60)     | body                        |
//	| 1 B  | 1 B    | 1..32 B ASCII | uint16 BE | nonce 12 | DEK 32 | tag 16  | nonce 12 | ciphertext | tag 16 |
//	+------+--------+---------------+-----------+-----------------------------+-----------------------------+
//	\_________________________ header _________________________________________/
//
// Overhead is 94 bytes for a two-character KEK id. KeyRing.Rewrap replaces
// only the header (it unwraps the DEK and wraps it again under the current
// primary KEK); the body bytes are copied unchanged, which is why the body
// AAD does not include the KEK id.
//
// # Wrapped subject DEK (format byte 0x02) and DEK-sealed values (0x03)
//
// KeyRing.NewDEK returns a DEK and its wrapped form, which is the field header
// alone:
//
//	+------+--------+-----+-----------+------------------------------+
//	| 0x02 | kidLen | kid | wLen (60) | nonce 12 | DEK 32 | tag 16   |
//	+------+--------+-----+-----------+------------------------------+
//
// DEK.Seal output (AES-256-GCM, random 96-bit nonce; body AAD uses format
// 0x03, so a field body can never be passed off as a subject value):
//
//	+------+----------+------------+--------+
//	| 0x03 | nonce 12 | ciphertext | tag 16 |
//	+------+----------+------------+--------+
//
// A DEK must not seal more than 2^32 values (random-nonce bound); one
// policyholder never comes close.
//
// # Stream format (format byte 0x04)
//
// KeyRing.NewWriter draws a fresh DEK and a random 7-byte nonce prefix, writes
// a header, and then cuts the plaintext into 64 KiB segments, each sealed
// with AES-256-GCM under the DEK:
//
//	header:
//	+------+--------+-----+-----------+-------------------------------+------------------+
//	| 0x04 | kidLen | kid | wLen (60) | nonce 12 | DEK 32 | tag 16    | nonce prefix 7 B |
//	+------+--------+-----+-----------+-------------------------------+------------------+
//
//	segments:
//	+----------------------------+----------------------------+-----+---------------------------------+
//	| seg 0: 65536 B ct + 16 tag | seg 1: 65536 B ct + 16 tag | ... | final seg: 0..65536 B ct + 16   |
//	+----------------------------+----------------------------+-----+---------------------------------+
//
//	segment nonce (12 B) = prefix (7 B) | segment index (uint32 BE) | final flag (0x00 or 0x01)
//	segment AAD          = "claims/seal body\x00" | 0x04 | aad
//
// Every non-final segment holds exactly 64 KiB of plaintext; the final segment
// holds 0 to 64 KiB, so an empty document is one final segment of just a tag.
// Because the index and the final flag are in the nonce, reordering, swapping
// or duplicating segments, dropping a tail (even at a segment boundary) and
// appending data all make a segment fail authentication. The reader reads
// one byte ahead to learn whether a segment is the last one, so it needs
// no length field. It decrypts and authenticates a whole segment before
// returning any of its plaintext, and reports ErrOpen if the stream ends
// without a valid final segment.
//
// A stream is limited to 2^32 segments (256 TiB). Callers must still treat
// data read before a later ErrOpen as untrusted: write it to a temporary
// location and only use it once Read has returned io.EOF.
//
// # Blind indexes
//
//	subkey = HKDF-SHA256(secret = index key, salt = none, info = "claims/seal blind-index v1\x00" | domain, 32 B)
//	index  = HMAC-SHA256(subkey, value)   (32 bytes)
//
// Different domains ("email", "national_id", ...) give unrelated outputs.
// Normalise values (case, whitespace) before indexing. A blind index of a
// low-entropy value (a birth date, a short policy number) can be brute-forced
// by anyone holding the index key, and equal values have equal indexes.
//
// # Key files
//
// LoadOrCreate reads a keys directory:
//
//	keys/            mode 0700
//	  kek-k1.key     mode 0600, "kek:k1:<base64url>\n"
//	  kek-k2.key     mode 0600
//	  index.key      mode 0600, "index:<base64url>\n"
//	  primary        mode 0600, "k2\n" (optional if there is only one KEK)
//
// It refuses a directory or key file that group or others may read or write
// unless allowInsecure is set. New key files are written to a temporary file,
// synced, and hard-linked into place so an existing key is never overwritten.
//
// # Errors
//
// Open, DEK.Open, UnwrapDEK and stream reads return only ErrOpen for bad input
// (wrong key, wrong AAD, tampering, truncation, unknown KEK id, malformed
// bytes), so callers cannot build a decryption oracle from error details.
package seal
