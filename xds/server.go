package xds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	xdsserver "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/graymesh/graymesh/internal/core/plan"
)

// defaultGroup is the snapshot for every Envoy that is not a configured
// sidecar, whatever its node id.
const defaultGroup = "default"

// nodeGroups maps an Envoy to its snapshot: a sidecar's bootstrap sets
// node.cluster to its service's name; every other Envoy shares the default
// group.
type nodeGroups struct {
	sidecars atomic.Pointer[map[string]bool]
}

func (g *nodeGroups) ID(n *corev3.Node) string {
	if m := g.sidecars.Load(); m != nil && (*m)[n.GetCluster()] {
		return sidecarGroup(n.GetCluster())
	}
	return defaultGroup
}

func sidecarGroup(service string) string { return "sidecar/" + service }

// BuildAll builds the resources of every group: the default group and one
// per sidecar, keyed by group name.
func BuildAll(p *plan.Plan) (map[string]*Resources, error) {
	res, err := Build(p)
	if err != nil {
		return nil, err
	}
	out := map[string]*Resources{defaultGroup: res}
	for _, svc := range p.Sidecars() {
		r, err := BuildSidecar(p, svc)
		if err != nil {
			return nil, fmt.Errorf("sidecar %s: %w", svc.Name, err)
		}
		out[sidecarGroup(svc.Name)] = r
	}
	return out, nil
}

// Stats counts what the xDS server did.
type Stats struct {
	Pushes, ACKs, NACKs atomic.Int64
	// Restores counts snapshots put back after Envoy rejected a newer one.
	Restores atomic.Int64
}

// Server serves the current snapshot over ADS.
type Server struct {
	cache  cachev3.SnapshotCache
	groups *nodeGroups
	log    *slog.Logger
	Stats  Stats
	xds    xdsserver.Server

	mu sync.Mutex
	// current is each group's snapshot being served; good is the last one
	// an Envoy of the group accepted; rejected holds versions an Envoy
	// refused, never offered again.
	current  map[string]*cachev3.Snapshot
	good     map[string]*cachev3.Snapshot
	rejected map[string]string
	// acks holds, per group and type, the last version an Envoy accepted.
	acks map[string]map[string]string
	// streams maps a stream to its node's group (the node is only sent on
	// a stream's first request).
	streams sync.Map
	// plan is the plan in force, as Update was given it: the one Turn
	// signs anew. kick wakes RunTurns when it changes.
	plan *plan.Plan
	kick chan struct{}
}

// New returns a server with no snapshot; call Update before Envoy connects
// or Envoy waits for one.
func New(ctx context.Context, log *slog.Logger) *Server {
	s := &Server{
		log: log.With("component", "xds"), groups: &nodeGroups{},
		current: map[string]*cachev3.Snapshot{}, good: map[string]*cachev3.Snapshot{}, rejected: map[string]string{},
		acks: map[string]map[string]string{}, kick: make(chan struct{}, 1),
	}
	s.cache = cachev3.NewSnapshotCache(true, s.groups, nil)
	// Ordered ADS sends clusters before the routes that name them, so a
	// new route never points at a cluster Envoy has not seen (503 NC).
	s.xds = xdsserver.NewServer(ctx, s.cache, s.callbacks(), serverv3.WithOrderedADS())
	return s
}

// Register adds the ADS and per-type discovery services to g.
func (s *Server) Register(g *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
}

// Version is the default group's snapshot version ("" before the first
// Update).
func (s *Server) Version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return version(s.current[defaultGroup])
}

func version(snap *cachev3.Snapshot) string {
	if snap == nil {
		return ""
	}
	return snap.GetVersion(resource.ListenerType)
}

// Update builds resources for the default group and every sidecar from p
// and makes them the snapshots Envoys receive. Nothing is set unless every
// group builds, validates and is consistent, so a bad config leaves all
// snapshots in force. A group whose content did not change keeps its
// version and is not re-pushed.
//
// The lanes of Envoy's own split (plan.Service.Anonymous) are signed for
// the current window; RunTurns signs them anew as windows turn.
func (s *Server) Update(p *plan.Plan) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.render(p, time.Now()); err != nil {
		return err
	}
	s.plan = p
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// render makes p, its lanes signed for the window of now, the snapshots
// Envoys receive. s.mu is held.
func (s *Server) render(p *plan.Plan, now time.Time) error {
	groups, err := BuildAll(p.Signed(now))
	if err != nil {
		return err
	}
	snaps := map[string]*cachev3.Snapshot{}
	sidecars := map[string]bool{}
	for group, res := range groups {
		if snaps[group], err = res.Snapshot(); err != nil {
			return fmt.Errorf("%s: %w", group, err)
		}
	}
	for _, svc := range p.Sidecars() {
		sidecars[svc.Name] = true
	}
	for group, snap := range snaps {
		v := version(snap)
		if version(s.current[group]) == v {
			continue
		}
		if s.rejected[group] == v {
			s.log.Warn("not offering a snapshot Envoy already rejected", "group", group, "version", v)
			continue
		}
		if err := s.cache.SetSnapshot(context.Background(), group, snap); err != nil {
			return err
		}
		s.current[group] = snap
		s.log.Info("snapshot set", "group", group, "version", v, "config_version", p.Version)
	}
	for group := range s.current {
		if _, still := snaps[group]; !still {
			s.cache.ClearSnapshot(group)
			delete(s.current, group)
			delete(s.good, group)
		}
	}
	s.groups.sidecars.Store(&sidecars)
	return nil
}

// Turn signs the lanes of the plan in force for the window that starts
// at now and pushes the groups that changed (the edges that split
// anonymous traffic themselves). It renders only the plan in force, under
// the lock Update holds, so a turn can never put back a plan a newer one
// replaced (a kill, a freeze).
func (s *Server) Turn(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plan == nil || !s.plan.SplitsNatively() {
		return nil
	}
	return s.render(s.plan, now)
}

// nextTurn is when the lane window after now's starts, when the plan in
// force splits anonymous traffic in Envoy (false otherwise).
func (s *Server) nextTurn(now time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.plan
	if p == nil || p.Lane == nil || p.Lane.Window < time.Second || !p.SplitsNatively() {
		return time.Time{}, false
	}
	w := int64(p.Lane.Window / time.Second)
	return time.Unix((now.Unix()/w+1)*w, 0), true
}

// RunTurns pushes the next window's lanes as each lane window starts,
// while the plan in force splits anonymous traffic in Envoy, until ctx is
// done. A lane lives a TTL from its window's start, twice the window, so a
// late push leaves Envoy a window's time on the lanes it has.
func (s *Server) RunTurns(ctx context.Context) {
	for {
		var tick <-chan time.Time
		next, ok := s.nextTurn(time.Now())
		var t *time.Timer
		if ok {
			t = time.NewTimer(time.Until(next))
			tick = t.C
		}
		select {
		case <-ctx.Done():
		case <-s.kick:
		case now := <-tick:
			// Signed for the window starting at next (a timer never
			// fires early, and a few microseconds late must not sign
			// for the window before), or for now's when the timer
			// was held up past it.
			if now.Before(next) {
				now = next
			}
			if err := s.Turn(now); err != nil {
				s.log.Error("signing the next lane window", "error", err)
			}
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// Snapshot validates the resources and wraps them in a consistent snapshot
// whose version is a hash of their content, so a restarted graymesh never
// offers different content under a version Envoy already has.
func (r *Resources) Snapshot() (*cachev3.Snapshot, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("generated resource is invalid: %w", err)
	}
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, m := range r.all() {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		h.Write(b)
	}
	version := hex.EncodeToString(h.Sum(nil)[:8])
	byType := map[resource.Type][]types.Resource{}
	for _, c := range r.Clusters {
		byType[resource.ClusterType] = append(byType[resource.ClusterType], c)
	}
	for _, rc := range r.Routes {
		byType[resource.RouteType] = append(byType[resource.RouteType], rc)
	}
	for _, l := range r.Listeners {
		byType[resource.ListenerType] = append(byType[resource.ListenerType], l)
	}
	for _, e := range r.Extensions {
		byType[resource.ExtensionConfigType] = append(byType[resource.ExtensionConfigType], e)
	}
	snap, err := cachev3.NewSnapshot(version, byType)
	if err != nil {
		return nil, err
	}
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("snapshot inconsistent: %w", err)
	}
	return snap, nil
}

func (s *Server) callbacks() xdsserver.CallbackFuncs {
	return xdsserver.CallbackFuncs{
		StreamRequestFunc: func(id int64, req *discoverygrpc.DiscoveryRequest) error {
			if req.GetNode() != nil {
				s.streams.Store(id, s.groups.ID(req.GetNode()))
			}
			group, _ := s.streams.Load(id)
			g, _ := group.(string)
			switch {
			case req.GetErrorDetail() != nil:
				s.Stats.NACKs.Add(1)
				s.log.Error("envoy rejected config (NACK)", "stream", id, "group", g,
					"type", req.GetTypeUrl(), "kept_version", req.GetVersionInfo(), "error", req.GetErrorDetail().GetMessage())
				// Off the stream goroutine: SetSnapshot answers open watches.
				go s.restore(g)
			case req.GetVersionInfo() != "" && req.GetResponseNonce() != "":
				s.Stats.ACKs.Add(1)
				s.acked(g, req.GetTypeUrl(), req.GetVersionInfo())
				s.log.Debug("envoy acked", "stream", id, "group", g, "type", req.GetTypeUrl(), "version", req.GetVersionInfo())
			}
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, req *discoverygrpc.DiscoveryRequest, resp *discoverygrpc.DiscoveryResponse) {
			s.Stats.Pushes.Add(1)
			s.log.Debug("pushed", "stream", id, "type", resp.GetTypeUrl(), "version", resp.GetVersionInfo())
		},
		StreamOpenFunc: func(_ context.Context, id int64, typ string) error {
			s.log.Info("envoy connected", "stream", id)
			return nil
		},
		StreamClosedFunc: func(id int64, node *corev3.Node) {
			s.streams.Delete(id)
			s.log.Info("envoy disconnected", "stream", id, "node", node.GetId())
		},
	}
}

// snapshotTypes are the resource types a snapshot may carry; every
// snapshot has clusters, routes and listeners.
var snapshotTypes = []string{resource.ClusterType, resource.RouteType, resource.ListenerType, resource.ExtensionConfigType}

// acked records that an Envoy of group accepted version of typeURL. A
// snapshot is good once every one of its types was accepted at its
// version: Envoy may accept the clusters of a snapshot and reject its
// listener.
func (s *Server) acked(group, typeURL, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acks[group] == nil {
		s.acks[group] = map[string]string{}
	}
	s.acks[group][typeURL] = v
	cur := s.current[group]
	if cur == nil || version(cur) != v {
		return
	}
	for _, t := range snapshotTypes {
		if len(cur.GetResources(t)) > 0 && s.acks[group][t] != v {
			return
		}
	}
	s.good[group] = cur
}

// restore puts a group's last accepted snapshot back after an Envoy
// rejected the current one. Without this the snapshot cache would offer the
// rejected snapshot again on every request (go-control-plane #962); Envoy
// keeps serving its last good config meanwhile, and now graymesh offers
// exactly that.
func (s *Server) restore(group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, good := s.current[group], s.good[group]
	if cur == nil || good == nil || version(cur) == version(good) {
		return
	}
	s.rejected[group] = version(cur)
	if err := s.cache.SetSnapshot(context.Background(), group, good); err != nil {
		s.log.Error("restoring the last good snapshot", "group", group, "error", err)
		return
	}
	s.current[group] = good
	s.Stats.Restores.Add(1)
	s.log.Warn("restored the last snapshot Envoy accepted", "group", group, "rejected", s.rejected[group], "restored", version(good))
}
