package console

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/graymesh/graymesh/internal/core/gray"
)

// explainView is the explain box: the form as typed (never the token) and
// the explanation, from the same Policy.Explain as Envoy's decisions,
// `graymesh explain` and POST /v1/explain.
type explainView struct {
	Subject, Claims, Device, IP, Headers, Service string
	Inner                                         bool
	// TokenGiven says a token was pasted; it is not shown again.
	TokenGiven bool
	Result     *gray.Explanation
	Problem    string
}

func (c *Console) explainPage(w http.ResponseWriter, _ *http.Request, s *session) {
	c.render(w, http.StatusOK, "explain", c.newView(s, "explain", "Explain", explainView{}))
}

func (c *Console) explain(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	ev := explainView{
		Subject: strings.TrimSpace(f.Get("subject")), Claims: f.Get("claims"), Device: strings.TrimSpace(f.Get("device")),
		IP: strings.TrimSpace(f.Get("ip")), Headers: f.Get("headers"), Service: strings.TrimSpace(f.Get("service")),
		Inner: f.Get("inner") == "on",
	}
	token := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(f.Get("token")), "Bearer "))
	ev.TokenGiven = token != ""
	ask := gray.Ask{Token: token, Subject: ev.Subject, Device: ev.Device, IP: ev.IP, Service: ev.Service, Inner: ev.Inner}
	var err error
	if ask.Claims, err = pairs(ev.Claims, "="); err == nil {
		var headers map[string][]string
		if headers, err = pairs(ev.Headers, ":"); err == nil && len(headers) > 0 {
			ask.Headers = map[string]string{}
			for k, v := range headers {
				ask.Headers[k] = v[len(v)-1]
			}
		}
	}
	code := http.StatusOK
	if err == nil {
		var ex gray.Explanation
		if ex, err = c.d.Explain(r.Context(), ask); err == nil {
			ev.Result = &ex
		}
	}
	if err != nil {
		ev.Problem, code = err.Error(), http.StatusBadRequest
	}
	c.render(w, code, "explain", c.newView(s, "explain", "Explain", ev))
}

// pairs reads "key<sep>value" lines; a key may repeat.
func pairs(text, sep string) (map[string][]string, error) {
	var out map[string][]string
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, sep)
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("line %d: %q is not name%svalue", i+1, line, sep)
		}
		if out == nil {
			out = map[string][]string{}
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}
