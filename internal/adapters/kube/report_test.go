package kube

import "testing"

func TestReportDelaySpreadsTheFleetsWrites(t *testing.T) {
	if d := reportDelay(0); d != reportDelayMin {
		t.Errorf("shortest wait = %s, want %s", d, reportDelayMin)
	}
	if d := reportDelay(0.999); d <= reportDelayMin+reportSpread*9/10 || d >= reportDelayMin+reportSpread {
		t.Errorf("longest wait = %s, want just under %s", d, reportDelayMin+reportSpread)
	}
}
