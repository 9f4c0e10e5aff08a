package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/graymesh/graymesh/internal/adapters/gatewayapi"
	"github.com/graymesh/graymesh/internal/adapters/istio"
	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/plan"
)

const renderSynopsis = `Usage: graymesh render istio --config FILE [--namespace NS] [--subset-label KEY]
       graymesh render gateway-api --config FILE [--namespace NS] [--port N]
                                   [--gateway NAME [--gateway-namespace NS] [--extproc-service NAME.NS:PORT | --backends]]

Prints objects that route on graymesh's decision, as the routes graymesh
pushes to its own Envoys do:

  x-gray-env: <env>        → that environment, for each environment of the service
  x-gray-env: anything else → stable (header kept for later hops)
  no x-gray-env            → stable, stamping x-gray-env: stable; with a
                             traffic_percent release, a weighted choice whose
                             branches stamp the environment they chose

istio: for each service in FILE, a VirtualService and DestinationRule
(networking.istio.io/v1); each service is the Kubernetes Service of the same
name, each environment the subset of its pods labelled KEY=<env>.

gateway-api: for each service, an HTTPRoute (gateway.networking.k8s.io/v1)
whose parent is the Service itself (the mesh profile, GAMMA) and, with
--gateway, one attached to that Gateway; each environment is the Service
SERVICE-ENV (shop-stable, shop-gray) on --port. With --gateway, for Envoy
Gateway: an EnvoyExtensionPolicy that makes the Gateway ask graymesh
(ext_proc, failing open within mesh.message_timeout), a ClientTrafficPolicy
that removes client-sent graymesh headers, and a ReferenceGrant when
graymesh's Service is in another namespace. Inner hops trust the header:
no lane is verified there (docs/kubernetes.md).

With --backends (and --gateway), every backend is an Envoy Gateway Backend
written from the config's endpoints (each environment's, and
mesh.extproc_address for graymesh) instead of a Service, and no mesh route
is printed: for Envoy Gateway without Kubernetes (standalone, resources
from files) or endpoints outside the cluster. Without it the endpoints
listed under the config's environments are not used. Apply the output with
kubectl apply -f -, or put it among Envoy Gateway's resource files.`

// render dispatches "graymesh render <target>".
func render(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stderr, renderSynopsis)
		return flag.ErrHelp
	}
	if len(args) == 0 || (args[0] != "istio" && args[0] != "gateway-api") {
		fmt.Fprintln(stderr, renderSynopsis)
		return errUsage
	}
	target := args[0]
	fs := newFlags("render "+target, renderSynopsis, stderr)
	path := fs.String("config", "", "config file (required)")
	namespace := fs.String("namespace", "", "namespace of the services and of the objects printed (default: none, kubectl's current)")
	label := fs.String("subset-label", "graymesh.io/env", "istio: pod label whose value is the pod's environment")
	port := fs.Int("port", 80, "gateway-api: port of every service and environment Service")
	gateway := fs.String("gateway", "", "gateway-api: Gateway to attach north-south routes and graymesh's policies to (none when empty)")
	gatewayNS := fs.String("gateway-namespace", "", "gateway-api: the Gateway's namespace (default: --namespace)")
	extproc := fs.String("extproc-service", "", "gateway-api: graymesh's Service the Gateway calls, NAME.NAMESPACE:PORT (default: from mesh.extproc_address)")
	backends := fs.Bool("backends", false, "gateway-api: Envoy Gateway Backends from the config's endpoints instead of Services (needs --gateway; no mesh routes)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *path == "" || fs.NArg() != 0 || target == "istio" && (*gateway != "" || *extproc != "" || *backends) || *backends && *extproc != "" {
		fs.Usage()
		return errUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	p, err := plan.Build(cfg)
	if err != nil {
		return err
	}
	var out []byte
	if target == "istio" {
		out, err = istio.Render(p, istio.Options{Source: filepath.Base(*path), Namespace: *namespace, SubsetLabel: *label})
	} else {
		o := gatewayapi.Options{Source: filepath.Base(*path), Namespace: *namespace, Port: int32(*port), Gateway: *gateway, GatewayNamespace: *gatewayNS, Backends: *backends}
		o.ExtProc, _ = gatewayapi.ExtProcRef(p.Mesh.ExtProc)
		if *extproc != "" {
			if o.ExtProc, err = parseServiceRef(*extproc); err != nil {
				return err
			}
		}
		out, err = gatewayapi.Render(p, o)
	}
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// parseServiceRef reads NAME.NAMESPACE:PORT.
func parseServiceRef(s string) (gatewayapi.ServiceRef, error) {
	host, portText, err := net.SplitHostPort(s)
	name, ns, ok := strings.Cut(host, ".")
	port, perr := strconv.ParseUint(portText, 10, 16)
	if err != nil || !ok || name == "" || ns == "" || perr != nil || port == 0 {
		return gatewayapi.ServiceRef{}, fmt.Errorf("--extproc-service %q: want NAME.NAMESPACE:PORT", s)
	}
	return gatewayapi.ServiceRef{Name: name, Namespace: ns, Port: int32(port)}, nil
}
