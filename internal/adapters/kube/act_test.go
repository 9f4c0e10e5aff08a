package kube

import (
	"errors"
	"testing"
)

func TestPatch(t *testing.T) {
	tests := []struct {
		kind     string
		percent  float64
		rollback bool
		want     string
	}{
		{"kill", 0, false, `{"spec":{"change":{"reason":"graymesh release kill","rollback":false},"effective_at":null,"state":"killed"}}`},
		{"freeze", 0, false, `{"spec":{"change":{"reason":"graymesh release freeze","rollback":false},"effective_at":null,"state":"frozen"}}`},
		{"unfreeze", 0, false, `{"spec":{"change":{"reason":"graymesh release unfreeze","rollback":false},"effective_at":null,"state":"active"}}`},
		{"percent", 5, true, `{"spec":{"change":{"reason":"graymesh release percent","rollback":true},"effective_at":null,"percent":5,"schedule":null}}`},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			got, err := Patch(tt.kind, tt.percent, tt.rollback, "")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	if _, err := Patch("reset", 0, false, ""); !errors.Is(err, ErrAction) {
		t.Errorf("reset: got %v, want ErrAction", err)
	}
}
