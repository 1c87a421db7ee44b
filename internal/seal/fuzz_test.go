package seal

import (
	"bytes"
	"io"
	"testing"
)

// FuzzOpen checks that no input makes Open, UnwrapDEK, DEK.Open, KEKIDOf,
// Rewrap or the stream reader panic or return anything but ErrOpen.
func FuzzOpen(f *testing.F) {
	k1 := GenerateKEK("k1")
	kr := mustRing(f, k1)
	aad := AAD("t", "c", "1")
	dek, wrapped, err := kr.NewDEK(aad)
	if err != nil {
		f.Fatal(err)
	}
	ds, _ := dek.Seal([]byte("subject value"), aad)
	f.Add(mustSeal(f, kr, []byte("field value"), aad))
	f.Add(mustSeal(f, kr, nil, aad))
	f.Add(wrapped)
	f.Add(ds)
	f.Add(streamSeal(f, kr, nil, aad, 1))
	f.Add(streamSeal(f, kr, []byte("short document"), aad, 1))
	f.Add([]byte{})
	f.Add([]byte{fmtStream, 2, 'k', '1', 0, 60})

	f.Fuzz(func(t *testing.T, data []byte) {
		if pt, err := kr.Open(data, aad); err == nil {
			// Only a genuine value can open; re-seal cannot be forged, so the
			// input must be one of the seeds (or a mutation that kept it).
			if _, err := kr.Rewrap(data, aad); err != nil {
				t.Fatalf("opened but cannot rewrap: %v (%d bytes)", err, len(pt))
			}
		} else if err != ErrOpen {
			t.Fatalf("Open err = %v", err)
		}
		if _, err := kr.Rewrap(data, nil); err != ErrOpen {
			t.Fatalf("Rewrap with wrong aad: %v", err)
		}
		if _, err := kr.UnwrapDEK(data, aad); err != nil && err != ErrOpen {
			t.Fatalf("UnwrapDEK err = %v", err)
		}
		if _, err := kr.RewrapDEK(data, aad); err != nil && err != ErrOpen {
			t.Fatalf("RewrapDEK err = %v", err)
		}
		if _, err := dek.Open(data, aad); err != nil && err != ErrOpen {
			t.Fatalf("DEK.Open err = %v", err)
		}
		KEKIDOf(data)
		r, err := kr.NewReader(bytes.NewReader(data), aad)
		if err != nil {
			if err != ErrOpen {
				t.Fatalf("NewReader err = %v", err)
			}
			return
		}
		if _, err := io.ReadAll(r); err != nil && err != ErrOpen {
			t.Fatalf("stream read err = %v", err)
		}
		_ = kr.RewrapStream(io.Discard, bytes.NewReader(data), aad)
	})
}
