package loadbench

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
	"github.com/graymesh/graymesh/xds"
)

// processor is who answers Envoy's ext_proc calls in a configuration.
type processor int

const (
	procNone processor = iota
	procNoop
	procGraymesh
)

func (p processor) String() string {
	switch p {
	case procNoop:
		return "noop"
	case procGraymesh:
		return "graymesh"
	}
	return "none"
}

// Config is one configuration of Envoy's filter chain. Every configuration
// gets the same listener, routes and clusters (built by graymesh's own xds
// package from one graymesh config); only the HTTP filters before the
// router change, and B0 also drops the early x-gray-* strip, since there
// the client sends x-gray-env itself.
type Config struct {
	Name string
	// What the configuration is, for the report.
	What string
	proc processor
	// clientEnv: the client sends x-gray-env (B0).
	clientEnv bool
	// noDecision: nothing sets x-gray-env, every request is stable (E0).
	noDecision bool
	// cacheSize is graymesh's jwt.cache_size.
	cacheSize int
	// filters returns the HTTP filters that precede the router.
	filters func(b *builder) ([]*hcmv3.HttpFilter, error)
}

// productionCacheSize is C1's token cache, as in the README's config.
const productionCacheSize = 10000

// Configs are every configuration the harness runs, in report order.
func Configs() []Config {
	extProcAsPushed := func(b *builder) ([]*hcmv3.HttpFilter, error) { return []*hcmv3.HttpFilter{b.extProc}, nil }
	return []Config{
		{
			Name: "B0", What: "Envoy alone: router only, no x-gray-* strip; the client sends x-gray-env itself (the physical limit)",
			clientEnv: true,
			filters:   func(*builder) ([]*hcmv3.HttpFilter, error) { return nil, nil },
		},
		{
			Name: "E0", What: "no-op ext_proc server (CONTINUE, empty HeadersResponse) behind C1's ext_proc filter settings: the gRPC floor; routes everything to stable",
			proc: procNoop, noDecision: true,
			filters: extProcAsPushed,
		},
		{
			Name: "L1", What: "in-proxy alternative: jwt_authn (HS256, jwt_cache 10000, payload to metadata) + Lua doing graymesh's blacklist, whitelist and salted xxHash64 bucketing",
			filters: func(b *builder) ([]*hcmv3.HttpFilter, error) { return b.luaFilters() },
		},
		{
			Name: "C1", What: "graymesh serve, production settings: the ext_proc filter exactly as graymesh pushes it (failure_mode_allow, message_timeout 50ms, request_attributes source.address, allow_mode_override), token cache 10000",
			proc: procGraymesh, cacheSize: productionCacheSize,
			filters: extProcAsPushed,
		},
		{
			Name: "C1-fwd", What: "C1 + forward_rules: Envoy forwards only the headers graymesh reads at the edge (authorization, cookie, the membership header)",
			proc: procGraymesh, cacheSize: productionCacheSize,
			filters: func(b *builder) ([]*hcmv3.HttpFilter, error) {
				return b.extProcWith(func(ep *extprocv3.ExternalProcessor) { ep.ForwardRules = b.forwardRules() })
			},
		},
		{
			Name: "C1-noattr", What: "C1 without request_attributes (no source.address; the bench config has no CIDR rule)",
			proc: procGraymesh, cacheSize: productionCacheSize,
			filters: func(b *builder) ([]*hcmv3.HttpFilter, error) {
				return b.extProcWith(func(ep *extprocv3.ExternalProcessor) { ep.RequestAttributes = nil })
			},
		},
		{
			Name: "C1-nocache", What: "C1 with jwt.cache_size 0: every request's HS256 token is verified",
			proc: procGraymesh, cacheSize: 0,
			filters: extProcAsPushed,
		},
	}
}

// builder turns one graymesh config into an Envoy bootstrap per
// configuration.
type builder struct {
	cfg    *config.Config
	secret []byte
	// extProc and router are the filters graymesh's xds package builds.
	extProc, router *hcmv3.HttpFilter
}

// bootstrap renders Envoy's static bootstrap for c: the listener, routes
// and clusters of xds.Build (routes inlined instead of RDS over ADS),
// with c's filter chain. extProcAddr is where the ext_proc cluster points.
func bootstrap(c Config, cfg *config.Config, secret []byte, extProcAddr string, adminPort int) ([]byte, error) {
	cp := *cfg
	cp.Mesh.ExtProcAddress = extProcAddr
	pl, err := plan.Build(&cp)
	if err != nil {
		return nil, err
	}
	res, err := xds.Build(pl)
	if err != nil {
		return nil, err
	}
	if len(res.Listeners) != 1 || len(res.Routes) != 1 {
		return nil, fmt.Errorf("expected one listener and one route configuration, got %d and %d", len(res.Listeners), len(res.Routes))
	}
	l := res.Listeners[0]
	f := l.GetFilterChains()[0].GetFilters()[0]
	hcm := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		return nil, err
	}
	hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: res.Routes[0]}
	b := &builder{cfg: &cp, secret: secret}
	for _, hf := range hcm.HttpFilters {
		switch hf.GetName() {
		case wire.ExtProcFilterName:
			b.extProc = hf
		case "envoy.filters.http.router":
			b.router = hf
		}
	}
	if b.extProc == nil || b.router == nil {
		return nil, fmt.Errorf("xds.Build's listener has no ext_proc or router filter")
	}
	filters, err := c.filters(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	hcm.HttpFilters = append(filters, b.router)
	if c.clientEnv {
		hcm.EarlyHeaderMutationExtensions = nil
	}
	hcmAny, err := anypb.New(hcm)
	if err != nil {
		return nil, err
	}
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny}
	boot := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: "loadbench-" + c.Name, Cluster: "loadbench"},
		Admin: &bootstrapv3.Admin{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(adminPort)},
		}}}},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Listeners: res.Listeners, Clusters: res.Clusters},
	}
	if err := boot.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	return protojson.MarshalOptions{Indent: "  "}.Marshal(boot)
}

// extProcWith is graymesh's ext_proc filter with one setting changed.
func (b *builder) extProcWith(change func(*extprocv3.ExternalProcessor)) ([]*hcmv3.HttpFilter, error) {
	ep := &extprocv3.ExternalProcessor{}
	if err := b.extProc.GetTypedConfig().UnmarshalTo(ep); err != nil {
		return nil, err
	}
	change(ep)
	a, err := anypb.New(ep)
	if err != nil {
		return nil, err
	}
	hf := proto.Clone(b.extProc).(*hcmv3.HttpFilter)
	hf.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}
	return []*hcmv3.HttpFilter{hf}, nil
}

// forwardRules lists what graymesh reads from a request at the edge: the
// token (header or cookie), device and membership cookies, the membership
// header and any header a release matches on. (The edge writes the lane;
// it never reads one.)
func (b *builder) forwardRules() *extprocv3.HeaderForwardingRules {
	names := []string{"authorization", "cookie", b.cfg.Membership.Header}
	for _, r := range b.cfg.Releases {
		for _, h := range r.Headers {
			names = append(names, h.Name)
		}
	}
	var patterns []*matcherv3.StringMatcher
	for _, n := range names {
		patterns = append(patterns, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: n}})
	}
	return &extprocv3.HeaderForwardingRules{AllowedHeaders: &matcherv3.ListStringMatcher{Patterns: patterns}}
}

// luaFilters are L1's filters: jwt_authn verifies the same HS256 tokens
// graymesh does and puts the payload in dynamic metadata; a missing or
// failed token continues anonymous, as in graymesh; the Lua filter decides.
func (b *builder) luaFilters() ([]*hcmv3.HttpFilter, error) {
	jwt := b.cfg.Identity.JWT
	if len(jwt.Keys) != 1 || jwt.Keys[0].Algorithm != "HS256" {
		return nil, fmt.Errorf("L1 mirrors one HS256 key")
	}
	jwks := fmt.Sprintf(`{"keys":[{"kty":"oct","alg":"HS256","kid":%q,"k":%q}]}`, jwt.Keys[0].ID, base64.RawURLEncoding.EncodeToString(b.secret))
	authn := &jwtauthnv3.JwtAuthentication{
		Providers: map[string]*jwtauthnv3.JwtProvider{"graymesh": {
			Issuer: jwt.Issuer,
			JwksSourceSpecifier: &jwtauthnv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: jwks},
			}},
			// graymesh leaves the token on the request; so does L1.
			Forward:           true,
			PayloadInMetadata: "jwt",
			JwtCacheConfig:    &jwtauthnv3.JwtCacheConfig{JwtCacheSize: uint32(productionCacheSize)},
		}},
		Rules: []*jwtauthnv3.RequirementRule{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtauthnv3.RequirementRule_Requires{Requires: &jwtauthnv3.JwtRequirement{
				RequiresType: &jwtauthnv3.JwtRequirement_RequiresAny{RequiresAny: &jwtauthnv3.JwtRequirementOrList{
					Requirements: []*jwtauthnv3.JwtRequirement{
						{RequiresType: &jwtauthnv3.JwtRequirement_ProviderName{ProviderName: "graymesh"}},
						{RequiresType: &jwtauthnv3.JwtRequirement_AllowMissingOrFailed{AllowMissingOrFailed: &emptypb.Empty{}}},
					},
				}},
			}},
		}},
	}
	src, err := luaFilterSource(b.cfg)
	if err != nil {
		return nil, err
	}
	lua := &luav3.Lua{DefaultSourceCode: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: src}}}
	authnAny, err := anypb.New(authn)
	if err != nil {
		return nil, err
	}
	luaAny, err := anypb.New(lua)
	if err != nil {
		return nil, err
	}
	return []*hcmv3.HttpFilter{
		{Name: "envoy.filters.http.jwt_authn", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: authnAny}},
		{Name: "envoy.filters.http.lua", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: luaAny}},
	}, nil
}

// graymeshConfig is the bench's graymesh config: one release with a
// blacklist, a whitelist and a 30% salted percentage over verified HS256
// subjects, one service with stable and gray.
const graymeshConfig = `# loadbench: rendered per run; see bench/loadbench/configs.go.
server:
  extproc_listen: %s
  xds_listen: %s
  admin_listen: %s
mesh:
  listener_port: %d
  message_timeout: %s
identity:
  device_cookie: gm_device
  jwt:
    algorithms: [HS256]
    issuer: loadbench
    cache_size: %d
    keys:
      - {kid: hs, alg: HS256, secret_file: hs.secret}
releases:
  - name: shop-v2
    env: gray
    salt: shop-v2-loadbench
    whitelist: [user-1, user-2]
    blacklist: [user-3]
    percent: 30
services:
  - name: shop
    domains: ["*"]
    environments:
      stable: [%s]
      gray: [%s]
`

// ports are the loopback addresses of one harness.
type ports struct {
	listener, envoyAdmin             int
	extproc, xds, admin, pprof, noop string
	stable, gray                     string
}

// graymeshYAML renders the bench config; messageTimeout 0 keeps
// graymesh's production default (50 ms).
func (p ports) graymeshYAML(cacheSize int, messageTimeout time.Duration) []byte {
	if messageTimeout == 0 {
		messageTimeout = config.DefaultMessageTimeout
	}
	return fmt.Appendf(nil, graymeshConfig, p.extproc, p.xds, p.admin, p.listener, messageTimeout, cacheSize, p.stable, p.gray)
}

// freePorts returns n unused loopback ports in 12000–19999, below the
// kernel's ephemeral range: a port handed out for :0 could be taken by an
// outgoing connection before the child process binds it.
func freePorts(n int) ([]int, error) {
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for tries := 0; len(out) < n && tries < 1000; tries++ {
		port := 12000 + rand.IntN(8000)
		l, err := net.Listen("tcp", loopback(port))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		out = append(out, port)
	}
	if len(out) < n {
		return nil, fmt.Errorf("only %d of %d free loopback ports in 12000–19999", len(out), n)
	}
	return out, nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
