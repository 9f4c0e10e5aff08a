package control

import "time"

// FleetRelease is one release's fleet status.
type FleetRelease struct {
	Release string `json:"release"`
	// Generation is the object's current generation; AcceptedGeneration
	// the last one graymesh accepted.
	Generation         int64 `json:"generation"`
	AcceptedGeneration int64 `json:"accepted_generation"`
	// Accepted is the Accepted condition's status (True, False, "" before
	// any), with its reason and message.
	Accepted        string `json:"accepted"`
	AcceptedReason  string `json:"accepted_reason,omitempty"`
	AcceptedMessage string `json:"accepted_message,omitempty"`
	// State, Percent and Version are in force on the fleet (the status).
	State   string  `json:"state"`
	Percent float64 `json:"percent"`
	Version string  `json:"version"`
	// Nodes is "serving/reporting" (status.nodes); NodesAccepted and
	// NodesRefused count the nodes on the current generation.
	Nodes         string `json:"nodes"`
	NodesAccepted int    `json:"nodes_accepted"`
	NodesRefused  int    `json:"nodes_refused"`
	// NodeList is every reporting node (up to a bound, then NodesMore
	// counts the rest), by name.
	NodeList  []FleetNode `json:"node_list"`
	NodesMore int         `json:"nodes_more,omitempty"`
	// ReadAt is when the node reports were read.
	ReadAt time.Time `json:"read_at"`
}

// FleetNode is what one node reports for the release.
type FleetNode struct {
	Name string `json:"name"`
	// Generation is the generation the node has in force (0: none).
	Generation int64  `json:"generation"`
	Version    string `json:"version"`
	// RefusedGeneration and Refused are the generation the node refused
	// and why (none: 0 and "").
	RefusedGeneration int64  `json:"refused_generation,omitempty"`
	Refused           string `json:"refused,omitempty"`
}

// Current reports a node serving generation gen.
func (n FleetNode) Current(gen int64) bool { return n.Generation == gen }
