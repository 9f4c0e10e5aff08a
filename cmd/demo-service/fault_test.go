package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFaultSpreadsErrorsEvenly(t *testing.T) {
	f := &fault{}
	if err := f.set(0.05, 0); err != nil {
		t.Fatal(err)
	}
	h := f.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	failed := 0
	for i := 0; i < 200; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code == http.StatusInternalServerError {
			failed++
		}
	}
	if failed != 10 {
		t.Fatalf("%d of 200 failed at 5%%", failed)
	}
	for _, bad := range []struct {
		rate float64
		d    time.Duration
	}{{-0.1, 0}, {1.5, 0}, {0, -time.Second}} {
		if f.set(bad.rate, bad.d) == nil {
			t.Errorf("set(%v, %s) accepted", bad.rate, bad.d)
		}
	}
}

func TestFaultEndpoint(t *testing.T) {
	f := &fault{}
	rec := httptest.NewRecorder()
	f.handle(rec, httptest.NewRequest(http.MethodPost, "/fault?error_rate=0.25&latency=50ms", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"error_rate":0.25`) || !strings.Contains(rec.Body.String(), `"latency":"50ms"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if fail, delay := f.next(); fail || delay != 50*time.Millisecond {
		t.Fatalf("first request: fail %v delay %s", fail, delay)
	}
	rec = httptest.NewRecorder()
	f.handle(rec, httptest.NewRequest(http.MethodPost, "/fault?error_rate=x", nil))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("bad rate: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	f.handle(rec, httptest.NewRequest(http.MethodPost, "/fault", nil)) // clears
	if s := f.settings(); s.ErrorRate != 0 || s.Latency != "0s" {
		t.Fatalf("cleared: %+v", s)
	}
}
