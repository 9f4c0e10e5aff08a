// Package extprocmode holds the ext_proc processing modes graymesh
// configures on Envoy (xds) and asks for per request (extproc): the two
// must agree exactly, since Envoy accepts a mode_override only when it is
// in the filter's allowed_override_modes.
package extprocmode

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
)

// Default is the filter's processing mode: request headers only. Response
// headers are skipped unless a decision hands out a membership token.
func Default() *extprocv3.ProcessingMode {
	return &extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
		ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
		RequestBodyMode:     extprocv3.ProcessingMode_NONE,
		ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
		RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
		ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}
}

// WithResponseHeaders is the one override graymesh sends: Default plus the
// response headers, on the requests where a membership token is set. It is
// a whole mode, not just the changed field: Envoy 1.40 refused an override
// holding response_header_mode alone even when that partial mode was the
// allowed one (e2e TestFreezeKeepsMembersAndKillIsImmediate catches it).
func WithResponseHeaders() *extprocv3.ProcessingMode {
	m := Default()
	m.ResponseHeaderMode = extprocv3.ProcessingMode_SEND
	return m
}
