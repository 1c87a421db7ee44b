// Package files is the claim-document pipeline: it takes an uploaded file as
// a stream, decides what it is from its bytes, refuses what we do not accept,
// strips what could hurt the people who later open it, and stores it
// encrypted under a server-generated id.
//
// It has no database and no HTTP: Ingest returns a Stored description which
// the caller records in its own transaction; blobs that never get a row are
// removed later by Sweep. Storage is behind the Blobs interface (LocalBlobs
// is a directory; an object store can come later).
//
// # What it does
//
//   - Sniffs the type from the first 4 KiB with mimetype. The declared name
//     and any declared Content-Type are never trusted; the name only has to
//     not contradict the bytes. Only the types in Allowed are accepted.
//   - Counts bytes and stops reading as soon as Limits.MaxFileBytes is
//     exceeded; never holds a whole upload in memory (but see images).
//   - Re-encodes every image (JPEG stays JPEG at quality 90; PNG, WebP and
//     TIFF become PNG), which drops EXIF/GPS and other metadata, text chunks,
//     ICC profiles and anything appended after the image data. Dimensions are
//     checked from the header before any pixel is decoded. The EXIF
//     orientation of a JPEG is applied to the pixels before it is dropped.
//   - Encrypts everything it writes with seal's streaming AEAD, bound to the
//     blob id (BlobAAD), so a blob moved or copied to another id fails to
//     open.
//   - Cleans up: a failed Ingest deletes every blob it created.
//
// # What it must not do
//
//   - Write plaintext to disk, even temporarily: images are spooled to an
//     encrypted temporary blob before decoding.
//   - Trust a name: stored names are sanitised display names only; blobs are
//     addressed by random ids and LocalBlobs confines itself with os.Root.
//   - Hand unauthenticated plaintext to anyone: see Pipeline.Open.
//   - Serve anything inline. Callers must send documents with
//     ContentDisposition (attachment), the stored ContentType and
//     "X-Content-Type-Options: nosniff", ideally from a sandboxed origin or
//     with "Content-Security-Policy: sandbox".
//
// # Threat model
//
// Uploaders are untrusted (policyholders, third parties, compromised
// accounts). They may send: active content disguised as a document (HTML,
// SVG, scripts, executables, archives, polyglots); decompression and
// dimension bombs; huge or never-ending streams; names built for path
// traversal or to mislead (bidi overrides, control characters, device names);
// photos that leak location through EXIF. The readers of documents are claim
// handlers whose browsers and desktops must not run that content. Anyone who
// can read or modify the blob store but does not hold the KEKs learns nothing
// but sizes and can only cause detected failures (Verify). Not covered here:
// malware inside PDFs and plain files (use Scan with a real scanner before a
// handler opens a document), and an attacker holding the keys.
package files
