package files

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxFilenameRunes is the length limit of SanitizeFilename.
const MaxFilenameRunes = 120

const fallbackName = "document"

// SanitizeFilename turns an uploaded file name into a display name that is
// safe to show and to offer as a download name. It
//
//   - normalises to NFC;
//   - keeps only the last path element (both / and \ separate);
//   - removes NUL and every control (Cc) and format (Cf) character, which
//     includes the bidi controls U+202A–U+202E, U+2066–U+2069, U+200E,
//     U+200F and U+061C, zero-width characters and the BOM;
//   - replaces characters Windows forbids in names (< > : " | ? *) with "_";
//   - collapses runs of whitespace into one space and runs of dots into one
//     dot (so no ".." survives), and trims leading dots and spaces and
//     trailing dots and spaces;
//   - prefixes Windows device names (CON, NUL, COM1, ...) with "_";
//   - shortens the name to MaxFilenameRunes runes, keeping the extension;
//   - falls back to "document" if nothing is left.
//
// The result is for display only; storage never uses it.
func SanitizeFilename(name string) string {
	if !utf8.ValidString(name) {
		name = strings.ToValidUTF8(name, "_")
	}
	name = norm.NFC.String(name)
	// Last non-empty path element.
	parts := strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' })
	if len(parts) == 0 {
		return fallbackName
	}
	name = parts[len(parts)-1]

	var b strings.Builder
	space := false
	for _, r := range name {
		switch {
		case unicode.IsSpace(r): // before Cc: tab and newline become spaces
			space = true
			continue
		case r == utf8.RuneError, unicode.Is(unicode.Cc, r), unicode.Is(unicode.Cf, r),
			unicode.Is(unicode.Co, r), unicode.Is(unicode.Cs, r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if strings.ContainsRune(`<>:"|?*`, r) {
			r = '_'
		}
		b.WriteRune(r)
	}
	name = b.String()
	for strings.Contains(name, "..") {
		name = strings.ReplaceAll(name, "..", ".")
	}
	name = strings.Trim(name, " .")
	if name == "" {
		return fallbackName
	}
	stem, ext := splitExt(name)
	if isDeviceName(stem) {
		stem = "_" + stem
	}
	return joinLimited(stem, ext)
}

// splitExt splits name at its extension: a final "." followed by 1 to 10
// ASCII letters and digits with at least one letter. "Scan 12.03.2026" has
// no extension. ext includes the dot and keeps its case.
func splitExt(name string) (stem, ext string) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || len(name)-i-1 > 10 || i == len(name)-1 {
		return name, ""
	}
	letter := false
	for _, c := range []byte(name[i+1:]) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			letter = true
		case '0' <= c && c <= '9':
		default:
			return name, ""
		}
	}
	if !letter {
		return name, ""
	}
	return name[:i], name[i:]
}

// joinLimited returns stem+ext shortened to MaxFilenameRunes runes by
// cutting the stem.
func joinLimited(stem, ext string) string {
	stem = strings.TrimRight(stem, " .")
	if n := MaxFilenameRunes - utf8.RuneCountInString(ext); utf8.RuneCountInString(stem) > n {
		r := []rune(stem)
		stem = strings.TrimRight(string(r[:n]), " .")
	}
	if stem == "" {
		stem = fallbackName
	}
	return stem + ext
}

func isDeviceName(stem string) bool {
	s := strings.ToUpper(strings.TrimSpace(stem))
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = s[:i]
	}
	switch s {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(s) == 4 && (strings.HasPrefix(s, "COM") || strings.HasPrefix(s, "LPT")) && s[3] >= '0' && s[3] <= '9' {
		return true
	}
	return false
}

// ContentDisposition returns a Content-Disposition header value that makes
// browsers download the document under name (sanitised again here):
//
//	attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded UTF-8>
//
// as RFC 6266 recommends. The fallback drops accents (é → e) and replaces
// other non-ASCII characters, quotes, backslashes and "%" with "_"; the
// extended parameter is RFC 5987/8187 encoding of the full name.
func ContentDisposition(name string) string {
	name = SanitizeFilename(name)
	var fb strings.Builder
	for _, r := range norm.NFD.String(name) {
		switch {
		case unicode.Is(unicode.Mn, r):
			// combining mark left by NFD: drop it
		case r == '"' || r == '\\' || r == '%':
			fb.WriteByte('_')
		case r >= 0x20 && r < 0x7f:
			fb.WriteRune(r)
		default:
			fb.WriteByte('_')
		}
	}
	fallback := fb.String()
	if stem, ext := splitExt(fallback); strings.Trim(stem, "_ .") == "" {
		fallback = fallbackName + ext
	}
	var enc strings.Builder
	const hexdig = "0123456789ABCDEF"
	for _, c := range []byte(name) {
		if isAttrChar(c) {
			enc.WriteByte(c)
		} else {
			enc.WriteByte('%')
			enc.WriteByte(hexdig[c>>4])
			enc.WriteByte(hexdig[c&15])
		}
	}
	return `attachment; filename="` + fallback + `"; filename*=UTF-8''` + enc.String()
}

// isAttrChar reports whether c is an attr-char of RFC 8187 (RFC 5987).
func isAttrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}
