package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GrayRelease is one gray release, exactly as a releases[] item of the
// config file: the object's name is the release's name, the spec holds the
// item's other fields under the file's own names, plus when the change
// takes effect and its declaration (change: rollback, reason).
//
// The API server refuses an update that would move subjects who are gray
// back to stable (the CEL rules on spec, each message naming its rule by
// the ID package gate's refusals use for the same rule) unless
// spec.change.rollback is true or the release is or becomes killed; what
// CEL cannot see (a schedule's percentage now, release order, membership)
// graymesh checks and reports in status.conditions (Accepted=False).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=grel,categories=graymesh
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`,description="state in force on the fleet"
// +kubebuilder:printcolumn:name="Percent",type=number,JSONPath=`.status.percent`,description="percentage in force on the fleet"
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.version`,description="fleet version the nodes serve"
// +kubebuilder:printcolumn:name="Nodes",type=string,JSONPath=`.status.nodes`,description="nodes serving this generation / nodes reporting"
// +kubebuilder:printcolumn:name="Refused",type=integer,JSONPath=`.status.nodesRefused`,description="nodes that refused this generation",priority=1
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GrayRelease struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:validation:XValidation:rule="(has(self.state) && self.state == 'killed') || (has(oldSelf.state) && oldSelf.state == 'killed') || (has(self.change) && has(self.change.rollback) && self.change.rollback) || (has(self.percent) ? self.percent : 0.0) >= (has(oldSelf.percent) ? oldSelf.percent : 0.0)",message="rule percent-lowered: a lower percent moves gray subjects back to stable; set spec.change.rollback: true (and a reason) to allow it"
	// +kubebuilder:validation:XValidation:rule="(has(self.state) && self.state == 'killed') || (has(oldSelf.state) && oldSelf.state == 'killed') || (has(self.change) && has(self.change.rollback) && self.change.rollback) || (has(self.salt) ? self.salt : '') == (has(oldSelf.salt) ? oldSelf.salt : '')",message="rule salt-changed: a new salt re-buckets every subject; set spec.change.rollback: true (and a reason) to allow it"
	// Rule whitelist-removed lets an entry go that the old spec also
	// blacklists: the blacklist wins over the whitelist (package gray's
	// evaluation order), so that subject was never admitted through it and
	// nobody moves (package gate's rule of the same ID says the same). An
	// entry blacklisted in the new spec only needs no clause of its own:
	// adding it to the blacklist is rule blacklist-added's refusal, which
	// would make the pair evicting anyway.

	// +kubebuilder:validation:XValidation:rule="(has(self.state) && self.state == 'killed') || (has(oldSelf.state) && oldSelf.state == 'killed') || (has(self.change) && has(self.change.rollback) && self.change.rollback) || !has(oldSelf.whitelist) || oldSelf.whitelist.all(w, (has(self.whitelist) && w in self.whitelist) || (has(oldSelf.blacklist) && w in oldSelf.blacklist))",message="rule whitelist-removed: removing a whitelist entry (one not blacklisted) moves that subject back to stable; set spec.change.rollback: true (and a reason) to allow it"
	// +kubebuilder:validation:XValidation:rule="(has(self.state) && self.state == 'killed') || (has(oldSelf.state) && oldSelf.state == 'killed') || (has(self.change) && has(self.change.rollback) && self.change.rollback) || !has(self.blacklist) || self.blacklist.all(b, has(oldSelf.blacklist) && b in oldSelf.blacklist)",message="rule blacklist-added: a new blacklist entry moves that subject back to stable; set spec.change.rollback: true (and a reason) to allow it"
	// +kubebuilder:validation:XValidation:rule="(has(self.state) && self.state == 'killed') || (has(oldSelf.state) && oldSelf.state == 'killed') || (has(self.change) && has(self.change.rollback) && self.change.rollback) || self.env == oldSelf.env",message="rule env-changed: moving the release to another environment moves its gray subjects; set spec.change.rollback: true (and a reason) to allow it"
	Spec   GrayReleaseSpec   `json:"spec"`
	Status GrayReleaseStatus `json:"status,omitempty"`
}

// GrayReleaseSpec is a releases[] item of the config file without its
// name (the object's name), with effective_at and change, which the file
// has once for all releases. Field names are the file's, so an item copies
// over unchanged; docs/config.md describes each field.
type GrayReleaseSpec struct {
	// Env is the environment the release admits callers to.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Env string `json:"env"`
	// Salt buckets subjects independently per release (default: the name).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Salt string `json:"salt,omitempty"`
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	Blacklist []string `json:"blacklist,omitempty"`
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	Whitelist []string `json:"whitelist,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Claims []ClaimMatcher `json:"claims,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=64
	CIDRs []string `json:"cidrs,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Headers []HeaderMatcher `json:"headers,omitempty"`
	// Percent of the salted subject hash space admitted.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent float64 `json:"percent,omitempty"`
	// TrafficPercent of anonymous requests sent to env per request.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	TrafficPercent float64 `json:"traffic_percent,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Schedule []Step `json:"schedule,omitempty"`
	// State is active (default), frozen or killed.
	// +optional
	// +kubebuilder:validation:Enum=active;frozen;killed
	State string `json:"state,omitempty"`
	// +optional
	Analysis *Analysis `json:"analysis,omitempty"`
	// EffectiveAt, when set, is the instant this change takes effect on
	// every node; until then the release's previous spec stays in force.
	// +optional
	EffectiveAt *metav1.Time `json:"effective_at,omitempty"`
	// Change declares this change: rollback allows one that moves gray
	// subjects back to stable; reason is recorded.
	// +optional
	Change *Change `json:"change,omitempty"`
}

// Change is the config file's change declaration.
type Change struct {
	// +optional
	Rollback bool `json:"rollback,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=500
	Reason string `json:"reason,omitempty"`
}

// ClaimMatcher admits a verified caller whose claim holds one of in.
type ClaimMatcher struct {
	// +kubebuilder:validation:MinLength=1
	Claim string `json:"claim"`
	// +kubebuilder:validation:MaxItems=256
	In []string `json:"in"`
}

// HeaderMatcher admits a request whose header matches: exactly one of
// exact, prefix and regex.
type HeaderMatcher struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +optional
	Exact string `json:"exact,omitempty"`
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// +optional
	Regex string `json:"regex,omitempty"`
}

// Step is one point of a ramp schedule.
type Step struct {
	At metav1.Time `json:"at"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent float64 `json:"percent"`
}

// Analysis is the config file's analysis block; durations are written as
// in the file ("30s").
type Analysis struct {
	// +optional
	// +kubebuilder:validation:Enum=envoy;prometheus
	Source string `json:"source,omitempty"`
	// PrometheusURL is the Prometheus server source prometheus queries.
	// +optional
	PrometheusURL string `json:"prometheus_url,omitempty"`
	// PrometheusLabels select this fleet's Envoys' series (equality
	// matchers added to every query, e.g. job: envoy).
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	PrometheusLabels map[string]string `json:"prometheus_labels,omitempty"`
	// +optional
	Interval string `json:"interval,omitempty"`
	// +optional
	MinRequests int `json:"min_requests,omitempty"`
	// +optional
	Alpha float64 `json:"alpha,omitempty"`
	// +optional
	Metrics []string `json:"metrics,omitempty"`
	// +optional
	Services []string `json:"services,omitempty"`
	// +optional
	Errors *ErrorAnalysis `json:"errors,omitempty"`
	// +optional
	Latency *LatencyAnalysis `json:"latency,omitempty"`
	// +optional
	OnFail string `json:"on_fail,omitempty"`
	// +optional
	OnCritical string `json:"on_critical,omitempty"`
}

// ErrorAnalysis is the file's analysis.errors.
type ErrorAnalysis struct {
	// +optional
	Tolerance *float64 `json:"tolerance,omitempty"`
	// +optional
	Critical *float64 `json:"critical,omitempty"`
}

// LatencyAnalysis is the file's analysis.latency.
type LatencyAnalysis struct {
	// +optional
	Tolerance *float64 `json:"tolerance,omitempty"`
	// +optional
	MinEffect string `json:"min_effect,omitempty"`
	// +optional
	Critical string `json:"critical,omitempty"`
}

// GrayReleaseStatus is written by one elected graymesh (never by every
// node): whether the fleet accepted the spec, and what it serves.
type GrayReleaseStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Accepted (graymesh's own checks passed; False names the
	// reason and every problem).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// AcceptedGeneration is the last generation graymesh accepted, and
	// AcceptedSpec its spec: what a node starting while the current
	// generation is refused serves instead.
	// +optional
	AcceptedGeneration int64 `json:"acceptedGeneration,omitempty"`
	// +optional
	AcceptedSpec *GrayReleaseSpec `json:"acceptedSpec,omitempty"`
	// State is the state in force: active, frozen or killed.
	// +optional
	State string `json:"state,omitempty"`
	// Percent is the percentage in force (a schedule's current step).
	// +optional
	Percent float64 `json:"percent,omitempty"`
	// Version is the fleet version the reporting nodes serve.
	// +optional
	Version string `json:"version,omitempty"`
	// Nodes is "serving/reporting": nodes serving the accepted generation
	// out of the nodes that reported.
	// +optional
	Nodes string `json:"nodes,omitempty"`
	// NodesAccepted is how many reporting nodes have the current
	// generation in force, and NodesRefused how many refused it (each
	// node checks a change against its own state, so nodes can differ).
	// +optional
	NodesAccepted int `json:"nodesAccepted,omitempty"`
	// +optional
	NodesRefused int `json:"nodesRefused,omitempty"`
	// RefusedBy names the first nodes, by name, that refused the current
	// generation, with the reason: a few, so the status stays small on a
	// large fleet (NodesRefused counts them all).
	// +optional
	// +kubebuilder:validation:MaxItems=5
	RefusedBy []NodeRefusal `json:"refusedBy,omitempty"`
}

// NodeRefusal is one node's refusal of a generation.
type NodeRefusal struct {
	Node string `json:"node"`
	// Reason is graymesh's refusal, shortened.
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
}
