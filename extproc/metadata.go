package extproc

import (
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// setCallerMetadata adds, when Envoy streams its access log to graymesh
// for analysis, the keyed hash of the caller this edge decided for as
// dynamic metadata: the access-log entry then says who was served, without
// a header reaching the service. Anonymous callers are keyed by their
// device id; a caller with neither is not counted.
func setCallerMetadata(resp *extprocsvcv3.ProcessingResponse, p *gray.Policy, o *gray.Outcome) {
	if p.Plan == nil || !p.Plan.Mesh.AccessLog {
		return
	}
	key := o.Caller.Subject
	if key == "" && o.Caller.DeviceID != "" {
		key = "device:" + o.Caller.DeviceID
	}
	if key == "" {
		return
	}
	addMetadata(resp, wire.MetadataCaller, p.SubjectHash(key))
}

// addMetadata sets key in graymesh's dynamic metadata namespace of resp,
// keeping what is already there (the trace reason, the caller).
func addMetadata(resp *extprocsvcv3.ProcessingResponse, key, value string) {
	if resp.DynamicMetadata == nil {
		resp.DynamicMetadata = &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	ns := resp.DynamicMetadata.Fields[wire.MetadataNamespace].GetStructValue()
	if ns == nil {
		ns = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		resp.DynamicMetadata.Fields[wire.MetadataNamespace] = structpb.NewStructValue(ns)
	}
	ns.Fields[key] = structpb.NewStringValue(value)
}
