package kube

import "github.com/graymesh/graymesh/internal/runtime/control"

// Fleet is the one port the change pipeline asks of Kubernetes mode: the
// source (the watch, its staleness, held changes coming due), the actor
// (the analysis's patches of a GrayRelease) and the view (the object's
// status and the nodes' reports).
type Fleet struct {
	*Source
	*Actor
	*FleetView
}

var _ control.Fleet = Fleet{}
