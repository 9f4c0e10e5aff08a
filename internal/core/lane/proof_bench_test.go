package lane

import (
	"crypto/ed25519"
	"testing"
	"time"
)

// BenchmarkSignProof is what handing a first-seen caller its proof costs
// graymesh; BenchmarkEd25519Sign the signature alone, for scale.
func BenchmarkSignProof(b *testing.B) {
	s := signer(b, meshKey)
	p := Proof{Token: "abcdefghijklmnopqrstuv", Env: "gray", Release: "shop-v2", Version: "7-0a1b2c3d", CallerHash: "c0ffee0a1b2c", Expires: now.Add(5 * time.Minute)}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.SignProof(p)
	}
}

func BenchmarkEd25519Sign(b *testing.B) {
	s := signer(b, meshKey)
	msg := []byte("eyJhbGciOiJFZERTQSJ9.eyJ0IjoiYWJjZGVmZ2hpamtsbW5vcHFyc3R1diIsImQiOiI3LTBhMWIyYzNkL2dyYXkvc2hvcC12MiIsImgiOiJjMGZmZWUwYTFiMmMiLCJpc3MiOiJncCIsImV4cCI6MTc2MzcyNjkwMH0")
	b.ReportAllocs()
	for b.Loop() {
		_ = ed25519.Sign(s.private, msg)
	}
}
