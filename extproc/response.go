package extproc

import (
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// Response builds the request-headers answer: remove every graymesh header
// the client sent and the stress marker (the lane carries what it
// decided), set the outcome's, and clear the route cache so the router
// matches on them. Values go in raw_value only (a value-only header
// is applied empty, both set is a 500).
func Response(o *gray.Outcome, in *corev3.HeaderMap) *extprocsvcv3.ProcessingResponse {
	headers := o.RequestHeaders()
	set := make([]*corev3.HeaderValueOption, 0, len(headers))
	for _, h := range headers {
		set = append(set, headerOption(h, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
	}
	var remove []string
	if o.RemovesLane() {
		remove = append(remove, wire.HeaderLane)
	}
	for _, h := range in.GetHeaders() {
		k := h.GetKey()
		if k == wire.HeaderStressMarker && !slices.Contains(remove, k) {
			remove = append(remove, k)
			continue
		}
		if !strings.HasPrefix(k, wire.HeaderPrefix) || slices.Contains(remove, k) {
			continue
		}
		if !slices.ContainsFunc(headers, func(s gray.Header) bool { return s.Name == k }) {
			remove = append(remove, k)
		}
	}
	return &extprocsvcv3.ProcessingResponse{
		Response: &extprocsvcv3.ProcessingResponse_RequestHeaders{
			RequestHeaders: &extprocsvcv3.HeadersResponse{
				Response: &extprocsvcv3.CommonResponse{
					HeaderMutation: &extprocsvcv3.HeaderMutation{SetHeaders: set, RemoveHeaders: remove},
					// Without this the route chosen before ext_proc ran,
					// on the client's headers, stays in force.
					ClearRouteCache: true,
				},
			},
		},
	}
}

// responseHeadersResponse sets headers (a membership token, when the
// decision handed one out) on the response.
func responseHeadersResponse(headers []gray.Header) *extprocsvcv3.ProcessingResponse {
	hr := &extprocsvcv3.HeadersResponse{}
	if len(headers) > 0 {
		var set []*corev3.HeaderValueOption
		for _, h := range headers {
			action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			if h.Name == "set-cookie" {
				// The service may set cookies of its own.
				action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			}
			set = append(set, headerOption(h, action))
		}
		hr.Response = &extprocsvcv3.CommonResponse{HeaderMutation: &extprocsvcv3.HeaderMutation{SetHeaders: set}}
	}
	return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: hr}}
}

func headerOption(h gray.Header, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: h.Name, RawValue: []byte(h.Value)}, AppendAction: action}
}
