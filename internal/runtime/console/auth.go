package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/graymesh/graymesh/internal/runtime/admin"
)

// Cookie names and lifetimes.
const (
	sessionCookie = "gm_console"
	// loginCookie carries the login form's CSRF token (double submit):
	// a login can only be posted from the console's own form.
	loginCookie = "gm_console_login"
	// sessionTTL is a working day: a session outlives no shift.
	sessionTTL = 12 * time.Hour
	// maxSessions bounds the sessions held; the oldest goes first.
	maxSessions = 256
	// tokenFileName is the console token's file in the state directory.
	tokenFileName = "console-token"
	// tokenBytes is the console token's entropy.
	tokenBytes = 32
)

// auth checks logins and holds the sessions.
type auth struct {
	d *admin.Service
	// consoleToken is the token a login needs when the admin API needs
	// none; "" when the admin token is the console's too.
	consoleToken string
	tokenFile    string

	mu       sync.Mutex
	sessions map[string]*session // by the hash of the cookie's value
}

type session struct {
	csrf    string
	expires time.Time
}

// newAuth picks the login token: the admin token when the admin API has
// one; otherwise a console token read from, or created in, the state
// directory. A browser is the one client of a loopback-only admin API that
// also runs code from everywhere, so the console never goes without a
// secret.
func newAuth(d *admin.Service, log *slog.Logger) (*auth, error) {
	a := &auth{d: d, sessions: map[string]*session{}}
	if d.HasToken() {
		return a, nil
	}
	if d.StateDir() == "" {
		log.Warn("console: no admin token and no state directory, so no console token: the console accepts no login")
		return a, nil
	}
	a.tokenFile = filepath.Join(d.StateDir(), tokenFileName)
	tok, err := readOrCreateToken(a.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("console token: %w", err)
	}
	a.consoleToken = tok
	log.Info("console: log in with the token in the console token file", "file", a.tokenFile)
	return a, nil
}

// readOrCreateToken returns the token in path, creating the file (0600)
// with a fresh token when it does not exist, so a restarted graymesh keeps
// the token an operator already has.
func readOrCreateToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if len(tok) >= 2*tokenBytes {
			return tok, nil
		}
		// Too short to be ours: replace it.
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	tok := randomHex(tokenBytes)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, os.Rename(tmp, path)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// tokenOK reports whether tok opens the console.
func (a *auth) tokenOK(tok string) bool {
	if a.d.HasToken() {
		return a.d.TokenIs(tok)
	}
	return a.consoleToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.consoleToken)) == 1
}

// canLogIn reports whether any token opens the console.
func (a *auth) canLogIn() bool { return a.d.HasToken() || a.consoleToken != "" }

// open starts a session and returns the cookie's value.
func (a *auth) open(now time.Time) (id string, s *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, v := range a.sessions {
		if now.After(v.expires) {
			delete(a.sessions, k)
		}
	}
	if len(a.sessions) >= maxSessions {
		var oldest string
		for k, v := range a.sessions {
			if oldest == "" || v.expires.Before(a.sessions[oldest].expires) {
				oldest = k
			}
		}
		delete(a.sessions, oldest)
	}
	id = randomHex(32)
	s = &session{csrf: randomHex(32), expires: now.Add(sessionTTL)}
	a.sessions[hashID(id)] = s
	return id, s
}

// lookup returns the request's live session, if any.
func (a *auth) lookup(r *http.Request, now time.Time) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[hashID(ck.Value)]
	if !ok || now.After(s.expires) {
		return nil
	}
	return s
}

func (a *auth) close(r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, hashID(ck.Value))
		a.mu.Unlock()
	}
}

// cookie is a console cookie: HttpOnly, SameSite=Strict, only under /ui/,
// Secure when the admin server speaks TLS.
func cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	}
}

// sameOrigin refuses a POST whose Origin (or, without one, Referer) names
// another site. Browsers send Origin on every POST; its absence means a
// client that is not a browser, which the CSRF token still checks.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return true
	}
	u, err := url.Parse(src)
	return err == nil && u.Host == r.Host
}

// hostAllowed refuses, on a loopback admin server, requests whose Host is
// not a loopback name: a page elsewhere that re-binds its own name to
// 127.0.0.1 (DNS rebinding) gets no console.
func (c *Console) hostAllowed(r *http.Request) bool {
	if !loopbackHost(c.d.Config().Server.AdminListen) {
		return true
	}
	return loopbackHost(r.Host)
}

func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// page wraps a GET handler that needs a session: without one, the browser
// goes to the login form.
func (c *Console) page(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		s := c.auth.lookup(r, time.Now())
		if s == nil {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		h(w, r, s)
	}
}

// fragment wraps a live-update GET: 401 without a session, so the page's
// script can say the session ended.
func (c *Console) fragment(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		s := c.auth.lookup(r, time.Now())
		if s == nil {
			http.Error(w, "session ended: log in again", http.StatusUnauthorized)
			return
		}
		h(w, r, s)
	}
}

// action wraps a POST: it needs a session, the session's CSRF token in the
// form, and no foreign Origin.
func (c *Console) action(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		s := c.auth.lookup(r, time.Now())
		if s == nil {
			http.Error(w, "not logged in to the console", http.StatusUnauthorized)
			return
		}
		if !sameOrigin(r) {
			http.Error(w, "refused: the request comes from another site", http.StatusForbidden)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
			http.Error(w, "refused: missing or wrong CSRF token (reload the page and try again)", http.StatusForbidden)
			return
		}
		h(w, r, s)
	}
}

// loginPage shows the login form with a fresh double-submit token.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if c.auth.lookup(r, time.Now()) != nil {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	c.renderLogin(w, r, http.StatusOK, "")
}

func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, code int, problem string) {
	nonce := randomHex(16)
	http.SetCookie(w, cookie(r, loginCookie, nonce, 600))
	c.render(w, code, "login", c.newView(nil, "", "Log in", loginView{
		LoginCSRF: nonce, Problem: problem, CanLogIn: c.auth.canLogIn(),
		AdminToken: c.d.HasToken(), TokenFile: c.auth.tokenFile,
	}))
}

type loginView struct {
	LoginCSRF, Problem string
	CanLogIn           bool
	// AdminToken says the admin token opens the console; otherwise the
	// console token in TokenFile does.
	AdminToken bool
	TokenFile  string
}

// login exchanges the token for a session cookie. The token travels only
// in this POST's body; it is never put in a URL, a page or a log line.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	ck, err := r.Cookie(loginCookie)
	if err != nil || ck.Value == "" || !sameOrigin(r) ||
		subtle.ConstantTimeCompare([]byte(r.PostFormValue("login_csrf")), []byte(ck.Value)) != 1 {
		c.renderLogin(w, r, http.StatusForbidden, "The login form expired or came from elsewhere: try again.")
		return
	}
	if !c.auth.tokenOK(strings.TrimSpace(r.PostFormValue("token"))) {
		c.log.Warn("console: login refused", "remote", r.RemoteAddr)
		c.renderLogin(w, r, http.StatusUnauthorized, "That token is not accepted.")
		return
	}
	id, _ := c.auth.open(time.Now())
	http.SetCookie(w, cookie(r, loginCookie, "", -1))
	http.SetCookie(w, cookie(r, sessionCookie, id, int(sessionTTL/time.Second)))
	c.log.Info("console: logged in", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	c.auth.close(r)
	http.SetCookie(w, cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
