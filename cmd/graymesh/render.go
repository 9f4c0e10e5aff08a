package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/graymesh/graymesh/internal/adapters/istio"
	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/plan"
)

const renderSynopsis = `Usage: graymesh render istio --config FILE [--namespace NS] [--subset-label KEY]

Prints, for each service in FILE, an Istio VirtualService and DestinationRule
(networking.istio.io/v1) that route on graymesh's decision, as the routes
graymesh pushes to its own Envoys do:

  x-gray-env: <env>        → subset <env>, for each environment of the service
  x-gray-env: anything else → subset stable (header kept for later hops)
  no x-gray-env            → subset stable, stamping x-gray-env: stable; with a
                             traffic_percent release, a weighted choice whose
                             branches stamp the environment they chose

Each service is the Kubernetes Service of the same name; each environment is
the subset of its pods labelled KEY=<env>. The endpoints listed under the
config's environments are not used. Apply the output with kubectl apply -f -.`

// render dispatches "graymesh render <target>"; istio is the only target.
func render(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stderr, renderSynopsis)
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "istio" {
		fmt.Fprintln(stderr, renderSynopsis)
		return errUsage
	}
	fs := newFlags("render istio", renderSynopsis, stderr)
	path := fs.String("config", "", "config file (required)")
	namespace := fs.String("namespace", "", "namespace of the services and of the objects printed (default: none, kubectl's current)")
	label := fs.String("subset-label", "graymesh.io/env", "pod label whose value is the pod's environment")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *path == "" || fs.NArg() != 0 {
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
	out, err := istio.Render(p, istio.Options{Source: filepath.Base(*path), Namespace: *namespace, SubsetLabel: *label})
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}
