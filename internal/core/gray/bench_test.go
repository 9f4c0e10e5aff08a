package gray

import (
	"strconv"
	"testing"
)

const benchConfig = `
releases:
  - name: shop-v2
    env: gray
    blacklist: [vip-1, vip-2, vip-3]
    whitelist: [alice, bob, carol]
    claims: [{claim: tier, in: [beta]}]
    cidrs: [10.1.0.0/16]
    headers: [{name: x-app-version, prefix: "2.9."}]
    percent: 30
`

func BenchmarkBucket(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Bucket("shop-v2", "user-12345678")
	}
}

// BenchmarkDecide is the decision on an already-resolved identity: what the
// hot path costs once the token cache has the caller.
func BenchmarkDecide(b *testing.B) {
	e := mustEngine(b, benchConfig)
	reqs := map[string]*Facts{
		"whitelist": {Subject: "alice"},
		"percent":   {Subject: "user-12345678", Claims: map[string][]string{"tier": {"free"}}},
		"anonymous": {Headers: map[string]string{"x-app-version": "2.8.1"}},
	}
	for name, req := range reqs {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = e.Decide(req)
			}
		})
	}
}

func BenchmarkDecideManySubjects(b *testing.B) {
	e := mustEngine(b, benchConfig)
	reqs := make([]Facts, 1024)
	for i := range reqs {
		reqs[i].Subject = "user-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = e.Decide(&reqs[i&1023])
	}
}
