package seal

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

var benchSizes = []int{64, 1 << 10, 16 << 10}

func BenchmarkSeal(b *testing.B) {
	kr := mustRing(b, GenerateKEK("k1"))
	aad := AAD("policyholders", "email", "123456")
	for _, n := range benchSizes {
		pt := randomBytes(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kr.Seal(pt, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	kr := mustRing(b, GenerateKEK("k1"))
	aad := AAD("policyholders", "email", "123456")
	for _, n := range benchSizes {
		s := mustSeal(b, kr, randomBytes(n), aad)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kr.Open(s, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkStream(b *testing.B) {
	kr := mustRing(b, GenerateKEK("k1"))
	aad := AAD("documents", "body", "doc-1")
	const n = 8 << 20
	pt := randomBytes(n)
	ct := streamSeal(b, kr, pt, aad, 32<<10)
	b.Run("write", func(b *testing.B) {
		b.SetBytes(n)
		for b.Loop() {
			w, err := kr.NewWriter(io.Discard, aad)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(w, bytes.NewReader(pt)); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(n)
		for b.Loop() {
			r, err := kr.NewReader(bytes.NewReader(ct), aad)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
