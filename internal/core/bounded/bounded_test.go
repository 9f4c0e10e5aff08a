package bounded

import "testing"

// TestPutNeverGrowsPastMax: a full map evicts one entry per new key, and
// a key already present is replaced without evicting another.
func TestPutNeverGrowsPastMax(t *testing.T) {
	m := map[int]string{}
	for i := range 10 {
		Put(m, 3, i, "v")
		if len(m) > 3 {
			t.Fatalf("%d entries after %d puts, want at most 3", len(m), i+1)
		}
	}
	var kept int
	for k := range m {
		kept = k
	}
	Put(m, 3, kept, "new")
	if len(m) != 3 || m[kept] != "new" {
		t.Fatalf("replacing %d: %v", kept, m)
	}
}
