package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// TestAPIJSONConvention: every type the API answers with (found from the
// API interface, so a new operation is covered without editing this
// test), and gray.Ask, the body clients send, is marshalled with every
// field filled in; each object key must be lower snake case and each
// duration a string. Map keys are data (release names) and are not
// checked.
func TestAPIJSONConvention(t *testing.T) {
	types := []reflect.Type{reflect.TypeFor[gray.Ask]()}
	api := reflect.TypeFor[API]()
	for i := range api.NumMethod() {
		m := api.Method(i).Type
		if m.NumOut() == 2 {
			types = append(types, m.Out(0))
		}
	}
	for _, typ := range types {
		t.Run(typ.String(), func(t *testing.T) {
			v := reflect.New(typ).Elem()
			fill(v, 0)
			b, err := json.Marshal(v.Interface())
			if err != nil {
				t.Fatal(err)
			}
			var doc any
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			for _, p := range conventionProblems(typ.String(), doc, typ) {
				t.Error(p)
			}
		})
	}
}

// TestAPIJSONConventionCatchesGoNames: the checker itself finds a Go
// field name and a duration written as a number.
func TestAPIJSONConventionCatchesGoNames(t *testing.T) {
	type bad struct {
		GoName  string
		Timeout time.Duration `json:"timeout"`
		Good    string        `json:"good_name"`
	}
	v := reflect.New(reflect.TypeFor[bad]()).Elem()
	fill(v, 0)
	b, _ := json.Marshal(v.Interface())
	var doc any
	_ = json.Unmarshal(b, &doc)
	got := strings.Join(conventionProblems("bad", doc, v.Type()), "\n")
	if !strings.Contains(got, "bad.GoName") || !strings.Contains(got, "bad.timeout") || strings.Contains(got, "good_name") {
		t.Fatalf("problems found:\n%s", got)
	}
}

// TestAnalysisAnswerOverHTTP: GET /v1/releases/{name}/analysis shows the
// settings under their file's names with durations as strings, and the
// HTTP client reads them back.
func TestAnalysisAnswerOverHTTP(t *testing.T) {
	r := newRig(t)
	srv := httptest.NewServer(r.svc.Handler(nil))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + "/v1/releases/shop-v2/analysis")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw struct {
		Settings map[string]any `json:"settings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if raw.Settings["interval"] != "1s" || raw.Settings["min_requests"] != 50.0 || raw.Settings["on_fail"] != "freeze" {
		t.Fatalf("settings answered as %v", raw.Settings)
	}
	c, err := NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Analysis(context.Background(), "shop-v2", 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Settings.Interval.Duration != time.Second || st.Settings.MinRequests != 50 {
		t.Fatalf("client read the settings as %+v", st.Settings)
	}
}

var (
	snakeCase    = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	durationType = reflect.TypeFor[time.Duration]()
	configDur    = reflect.TypeFor[config.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
)

// conventionProblems walks the decoded JSON doc alongside the Go type typ
// it was marshalled from.
func conventionProblems(path string, doc any, typ reflect.Type) []string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if doc == nil {
		return nil
	}
	if typ == durationType || typ == configDur {
		if _, ok := doc.(string); !ok {
			return []string{fmt.Sprintf("%s: duration written as %v, want a string like \"30s\"", path, doc)}
		}
		return nil
	}
	var out []string
	switch typ.Kind() {
	case reflect.Struct:
		if typ == timeType {
			return nil
		}
		fields := jsonFields(typ)
		obj, _ := doc.(map[string]any)
		for k, v := range obj {
			if !snakeCase.MatchString(k) {
				out = append(out, fmt.Sprintf("%s.%s: not lower snake case", path, k))
			}
			if ft, ok := fields[k]; ok {
				out = append(out, conventionProblems(path+"."+k, v, ft)...)
			}
		}
	case reflect.Map:
		obj, _ := doc.(map[string]any)
		for k, v := range obj {
			out = append(out, conventionProblems(fmt.Sprintf("%s[%q]", path, k), v, typ.Elem())...)
		}
	case reflect.Slice, reflect.Array:
		arr, _ := doc.([]any)
		for i, v := range arr {
			out = append(out, conventionProblems(fmt.Sprintf("%s[%d]", path, i), v, typ.Elem())...)
		}
	}
	return out
}

// jsonFields maps the keys encoding/json writes for struct type typ to
// their types, the fields of embedded structs included.
func jsonFields(typ reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			maps.Copy(out, jsonFields(ft))
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// fill sets every field of v, recursively, to a value that is not zero.
func fill(v reflect.Value, depth int) {
	if depth > 8 || !v.CanSet() {
		return
	}
	switch {
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)))
		return
	case v.Type() == durationType:
		v.SetInt(int64(30 * time.Second))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), depth+1)
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString("shop-v2")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(3)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(3)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	}
}
