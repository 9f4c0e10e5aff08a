package loadbench

import (
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// workload is the requests of one configuration: one per subject, sent
// round-robin, each with a realistic browser header set, a bearer token
// and cookies, to its own path so every response can be checked against
// the environment that subject must reach.
type workload struct {
	targets []vegeta.Target
	// want maps a target's URL to the environment that must serve it.
	want map[string]string
	// gray is how many targets must reach gray.
	gray int
}

// subjectToken signs an HS256 token for subject as the bench's issuer.
func subjectToken(secret []byte, subject string, now time.Time) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": subject, "iss": "loadbench", "iat": now.Unix(), "exp": now.Add(12 * time.Hour).Unix(),
	})
	t.Header["kid"] = "hs"
	return t.SignedString(secret)
}

// subjects are the callers: user-0 … user-(n-1). The bench config
// whitelists user-1 and user-2 and blacklists user-3; the rest are
// bucketed at 30%.
func subjects(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user-%d", i)
	}
	return out
}

// newWorkload builds c's requests against the listener. The environment
// each must reach is graymesh's own decision (gray.Policy.Decide on the
// same token and cookie), except in E0, where nothing decides and the
// route default serves stable.
func newWorkload(c Config, p *gray.Policy, secret []byte, listener int, n int, now time.Time) (*workload, error) {
	w := &workload{want: map[string]string{}}
	for i, sub := range subjects(n) {
		tok, err := subjectToken(secret, sub, now)
		if err != nil {
			return nil, err
		}
		cookie := fmt.Sprintf("session=s%08x; theme=dark; gm_device=d-%d", i*2654435761, i)
		d := p.Decide(gray.Request{Authorization: "Bearer " + tok, Cookie: cookie, Now: now})
		want := d.Env
		if want == "" || c.noDecision {
			want = config.Stable
		}
		h := http.Header{}
		h.Set("Host", "shop.example.com")
		h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
		h.Set("Accept", "application/json, text/plain, */*")
		h.Set("Accept-Language", "en-US,en;q=0.9,zh-CN;q=0.8")
		h.Set("Accept-Encoding", "gzip, deflate, br")
		h.Set("Traceparent", fmt.Sprintf("00-4bf92f3577b34da6a3ce929d%06x-00f067aa0ba902b7-01", i))
		h.Set("X-Forwarded-Proto", "https")
		h.Set("Cookie", cookie)
		h.Set("Authorization", "Bearer "+tok)
		if c.clientEnv {
			h.Set(wire.HeaderEnv, want)
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/api/cart/%s", listener, sub)
		w.targets = append(w.targets, vegeta.Target{Method: http.MethodGet, URL: url, Header: h})
		w.want[url] = want
		if want != config.Stable {
			w.gray++
		}
	}
	return w, nil
}
