package xds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

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

	"github.com/graymesh/graymesh/config"
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
func BuildAll(cfg *config.Config) (map[string]*Resources, error) {
	res, err := Build(cfg)
	if err != nil {
		return nil, err
	}
	out := map[string]*Resources{defaultGroup: res}
	for _, svc := range cfg.Sidecars() {
		r, err := BuildSidecar(cfg, svc)
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
}

// Server serves the current snapshot over ADS.
type Server struct {
	cache    cachev3.SnapshotCache
	groups   *nodeGroups
	log      *slog.Logger
	Stats    Stats
	mu       sync.Mutex
	versions map[string]string
	xds      xdsserver.Server
}

// New returns a server with no snapshot; call Update before Envoy connects
// or Envoy waits for one.
func New(ctx context.Context, log *slog.Logger) *Server {
	s := &Server{log: log.With("component", "xds"), groups: &nodeGroups{}, versions: map[string]string{}}
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
	return s.versions[defaultGroup]
}

// Update builds resources for the default group and every sidecar from cfg
// and makes them the snapshots Envoys receive. Nothing is set unless every
// group builds, validates and is consistent, so a bad config leaves all
// snapshots in force. A group whose content did not change keeps its
// version and is not re-pushed.
func (s *Server) Update(cfg *config.Config) error {
	groups, err := BuildAll(cfg)
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
	for _, svc := range cfg.Sidecars() {
		sidecars[svc.Name] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for group, snap := range snaps {
		version := snap.GetVersion(resource.ListenerType)
		if s.versions[group] == version {
			continue
		}
		if err := s.cache.SetSnapshot(context.Background(), group, snap); err != nil {
			return err
		}
		s.versions[group] = version
		s.log.Info("snapshot set", "group", group, "version", version, "config_version", cfg.Version)
	}
	for group := range s.versions {
		if _, still := snaps[group]; !still {
			s.cache.ClearSnapshot(group)
			delete(s.versions, group)
		}
	}
	s.groups.sidecars.Store(&sidecars)
	return nil
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
			switch {
			case req.GetErrorDetail() != nil:
				s.Stats.NACKs.Add(1)
				s.log.Error("envoy rejected config (NACK)", "stream", id, "node", req.GetNode().GetId(),
					"type", req.GetTypeUrl(), "version", req.GetVersionInfo(), "error", req.GetErrorDetail().GetMessage())
			case req.GetVersionInfo() != "" && req.GetResponseNonce() != "":
				s.Stats.ACKs.Add(1)
				s.log.Debug("envoy acked", "stream", id, "node", req.GetNode().GetId(), "type", req.GetTypeUrl(), "version", req.GetVersionInfo())
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
			s.log.Info("envoy disconnected", "stream", id, "node", node.GetId())
		},
	}
}
