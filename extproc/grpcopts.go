package extproc

import (
	"runtime"

	"google.golang.org/grpc"
)

// ServerOptions tune the gRPC server that serves Envoy's ext_proc calls
// for what Envoy sends it: one short stream per HTTP request, each
// carrying one or two small messages, over a few long-lived connections.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		// grpc-go's default starts a new goroutine for every stream, whose
		// small initial stack then grows (runtime.morestack copies it) on
		// every request, since decoding and answering an ext_proc message
		// runs deeper than that stack. Stream workers are long-lived
		// goroutines that keep their grown stacks from one stream to the
		// next (grpc-go's NumStreamWorkers docs; golang/go issue 18138); a
		// stream that finds every worker busy gets a goroutine of its own
		// as before. One per P: a worker runs a stream to its end.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	}
}
