package files

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"

	"github.com/openclaims/claims/internal/claims"
)

// Images are re-encoded as follows (the stored ContentType is the output):
//
//	image/jpeg → image/jpeg, quality 90 (a photo stays a photo; the EXIF
//	             orientation is applied to the pixels first)
//	image/png  → image/png
//	image/webp → image/png (lossless: no second generation loss; WebP
//	             output is not in the standard library)
//	image/tiff → image/png (scans are often bilevel or text: keep them
//	             sharp); only the first page of a TIFF is ever decoded,
//	             so multi-page TIFFs are refused rather than truncated.
//
// Decoding uses the decoder of the sniffed type only, never image.Decode's
// format guessing.

var (
	decodeConfigs = map[string]func(io.Reader) (image.Config, error){
		"image/jpeg": jpeg.DecodeConfig,
		"image/png":  png.DecodeConfig,
		"image/webp": webp.DecodeConfig,
		"image/tiff": tiff.DecodeConfig,
	}
	decoders = map[string]func(io.Reader) (image.Image, error){
		"image/jpeg": jpeg.Decode,
		"image/png":  png.Decode,
		"image/webp": webp.Decode,
		"image/tiff": tiff.Decode,
	}
	typeNames = map[string]string{
		"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP", "image/tiff": "TIFF",
	}
)

func damaged(ct string, cause error) error {
	msg := fmt.Sprintf("The image is damaged or is not a valid %s file.", typeNames[ct])
	return &claims.Error{
		Kind:    claims.Invalid,
		Message: msg,
		Fields:  []claims.FieldError{{Field: "file", Rule: "valid_image", Message: msg}},
		Err:     cause,
	}
}

// readSpool opens the spool blob and runs fn on its decrypted content. An
// error of fn is classified: a failure of the underlying stream (storage,
// authentication, context) is returned as is; anything else is the image's
// fault.
func (p *Pipeline) readSpool(ctx context.Context, id, ct string, fn func(io.Reader) error) error {
	rc, err := p.Open(ctx, id)
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := &trackReader{r: rc}
	if err := fn(tr); err != nil {
		if tr.err != nil && tr.err != io.EOF {
			return fmt.Errorf("files: reading image spool: %w", tr.err)
		}
		var ce *claims.Error
		if errors.As(err, &ce) {
			return err
		}
		return damaged(ct, err)
	}
	return nil
}

// decodeImage checks the spooled image's header, then decodes it. The
// caller holds nothing but the spool id; the raw bytes are never in memory
// as a whole (except that x/image/tiff buffers what it reads, up to the
// file size). On success the caller holds one of the Limits.MaxDecodes
// slots and must call release once it no longer needs the image.
func (p *Pipeline) decodeImage(ctx context.Context, spool, ct string) (img image.Image, release func(), err error) {
	var cfg image.Config
	if err := p.readSpool(ctx, spool, ct, func(r io.Reader) (err error) {
		cfg, err = decodeConfigs[ct](r)
		return err
	}); err != nil {
		return nil, nil, err
	}
	if err := p.checkDims(ct, cfg.Width, cfg.Height); err != nil {
		return nil, nil, err
	}
	orientation := 1
	switch ct {
	case "image/tiff":
		if err := p.readSpool(ctx, spool, ct, checkSinglePageTIFF); err != nil {
			return nil, nil, err
		}
	case "image/jpeg":
		p.readSpool(ctx, spool, ct, func(r io.Reader) error {
			orientation = jpegOrientation(r)
			return nil
		})
	}

	select {
	case p.decodes <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	release = func() { <-p.decodes }
	if err := p.readSpool(ctx, spool, ct, func(r io.Reader) (err error) {
		img, err = decoders[ct](r)
		return err
	}); err != nil {
		release()
		return nil, nil, err
	}
	// Belt and braces: the decoder must have honoured the header we checked.
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		release()
		return nil, nil, damaged(ct, fmt.Errorf("decoded %v, header said %dx%d", b, cfg.Width, cfg.Height))
	}
	return orient(img, orientation), release, nil
}

func (p *Pipeline) checkDims(ct string, w, h int) error {
	if w <= 0 || h <= 0 {
		return damaged(ct, fmt.Errorf("dimensions %dx%d", w, h))
	}
	if w > p.lim.MaxImageSide || h > p.lim.MaxImageSide || int64(w)*int64(h) > int64(p.lim.MaxImagePixels) {
		msg := fmt.Sprintf("The image is %d × %d pixels; the limit is %d pixels per side and %.0f megapixels.",
			w, h, p.lim.MaxImageSide, float64(p.lim.MaxImagePixels)/1e6)
		return &claims.Error{
			Kind:    claims.TooLarge,
			Message: msg,
			Fields:  []claims.FieldError{{Field: "file", Rule: "max_dimensions", Message: msg}},
			Extra:   map[string]any{"max_side": p.lim.MaxImageSide, "max_pixels": p.lim.MaxImagePixels},
		}
	}
	return nil
}

// encodeImage writes img as outType.
func encodeImage(w io.Writer, img image.Image, outType string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var err error
	if outType == "image/jpeg" {
		err = jpeg.Encode(bw, img, &jpeg.Options{Quality: 90})
	} else {
		err = (&png.Encoder{CompressionLevel: png.DefaultCompression}).Encode(bw, img)
	}
	if err != nil {
		return fmt.Errorf("files: encoding image: %w", err)
	}
	return bw.Flush()
}

// checkSinglePageTIFF reads the TIFF header and the first IFD and fails if
// the IFD links to another one (a second page). It reads forward only,
// up to the end of the first IFD.
func checkSinglePageTIFF(r io.Reader) error {
	br := bufio.NewReader(r)
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return err
	}
	var bo binary.ByteOrder
	switch string(hdr[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return errors.New("tiff: bad byte order")
	}
	if bo.Uint16(hdr[2:]) != 42 {
		return errors.New("tiff: not a classic TIFF")
	}
	off := int64(bo.Uint32(hdr[4:]))
	if off < 8 {
		return errors.New("tiff: bad IFD offset")
	}
	if _, err := br.Discard(int(off - 8)); err != nil {
		return err
	}
	var cnt [2]byte
	if _, err := io.ReadFull(br, cnt[:]); err != nil {
		return err
	}
	if _, err := br.Discard(int(bo.Uint16(cnt[:])) * 12); err != nil {
		return err
	}
	var next [4]byte
	if _, err := io.ReadFull(br, next[:]); err != nil {
		return err
	}
	if bo.Uint32(next[:]) != 0 {
		msg := "Multi-page TIFF files are not accepted, because only the first page could be kept; please send the document as a PDF."
		return &claims.Error{
			Kind:    claims.UnsupportedMedia,
			Message: msg,
			Fields:  []claims.FieldError{{Field: "file", Rule: "media_type", Message: msg}},
		}
	}
	return nil
}

// jpegOrientation returns the EXIF orientation (1–8) of a JPEG stream, or 1
// if it has none or anything is odd. It reads markers up to the first SOS.
func jpegOrientation(r io.Reader) int {
	br := bufio.NewReader(r)
	var b [4]byte
	if _, err := io.ReadFull(br, b[:2]); err != nil || b[0] != 0xff || b[1] != 0xd8 {
		return 1
	}
	for range 64 {
		c, err := br.ReadByte()
		if err != nil || c != 0xff {
			return 1
		}
		m, err := br.ReadByte()
		for err == nil && m == 0xff { // fill bytes
			m, err = br.ReadByte()
		}
		if err != nil {
			return 1
		}
		switch {
		case m == 0x01 || m >= 0xd0 && m <= 0xd7: // no length
			continue
		case m == 0xda || m == 0xd9: // SOS, EOI
			return 1
		}
		if _, err := io.ReadFull(br, b[:2]); err != nil {
			return 1
		}
		n := int(binary.BigEndian.Uint16(b[:2])) - 2
		if n < 0 {
			return 1
		}
		if m != 0xe1 {
			if _, err := br.Discard(n); err != nil {
				return 1
			}
			continue
		}
		seg := make([]byte, n)
		if _, err := io.ReadFull(br, seg); err != nil {
			return 1
		}
		if len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			return exifOrientation(seg[6:])
		}
	}
	return 1
}

// exifOrientation finds tag 0x0112 in IFD0 of a TIFF-structured EXIF blob.
func exifOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	off := int(bo.Uint32(t[4:]))
	if off < 8 || off+2 > len(t) {
		return 1
	}
	n := int(bo.Uint16(t[off:]))
	for i := range n {
		e := off + 2 + 12*i
		if e+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[e:]) == 0x0112 && bo.Uint16(t[e+2:]) == 3 && bo.Uint32(t[e+4:]) == 1 {
			if o := int(bo.Uint16(t[e+8:])); o >= 1 && o <= 8 {
				return o
			}
			return 1
		}
	}
	return 1
}

// orient returns img transformed so that EXIF orientation o is upright.
// The result reads pixels from img (no copy).
func orient(img image.Image, o int) image.Image {
	if o <= 1 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if o >= 5 {
		w, h = h, w
	}
	return &oriented{src: img, o: o, bounds: image.Rect(0, 0, w, h)}
}

type oriented struct {
	src    image.Image
	o      int
	bounds image.Rectangle
}

func (im *oriented) ColorModel() color.Model { return im.src.ColorModel() }
func (im *oriented) Bounds() image.Rectangle { return im.bounds }

func (im *oriented) At(x, y int) color.Color {
	sb := im.src.Bounds()
	W, H := sb.Dx(), sb.Dy()
	var sx, sy int
	switch im.o {
	case 2: // mirrored horizontally
		sx, sy = W-1-x, y
	case 3: // rotated 180°
		sx, sy = W-1-x, H-1-y
	case 4: // mirrored vertically
		sx, sy = x, H-1-y
	case 5: // transposed
		sx, sy = y, x
	case 6: // needs 90° clockwise
		sx, sy = y, H-1-x
	case 7: // transversed
		sx, sy = W-1-y, H-1-x
	case 8: // needs 90° counter-clockwise
		sx, sy = W-1-y, x
	default:
		sx, sy = x, y
	}
	return im.src.At(sb.Min.X+sx, sb.Min.Y+sy)
}
