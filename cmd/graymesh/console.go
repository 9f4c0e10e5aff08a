package main

import (
	"flag"
	"log/slog"
	"net/http"

	"github.com/graymesh/graymesh/internal/runtime/admin"
	"github.com/graymesh/graymesh/internal/runtime/console"
)

// consoleOptions are serve's --console* flags.
type consoleOptions struct {
	on                          *bool
	jaeger, jaegerUI, traceEdge *string
}

func consoleFlags(fs *flag.FlagSet) consoleOptions {
	return consoleOptions{
		on: fs.Bool("console", true, "serve the web console at /ui/ on the admin server (same token as the admin API; "+
			"without one, a console token kept in the state directory)"),
		jaeger:    fs.String("console-jaeger", "", "Jaeger query API the console's chains page reads, e.g. http://127.0.0.1:16686 (none when empty)"),
		jaegerUI:  fs.String("console-jaeger-ui", "", "a Jaeger UI to link each chain to (none when empty)"),
		traceEdge: fs.String("console-trace-service", "frontend", "the edge service whose traces the chains page reads"),
	}
}

// build returns the daemon's Console option (nil with --console=false).
func (o consoleOptions) build(log *slog.Logger) func(*admin.Service) (http.Handler, error) {
	if !*o.on {
		return nil
	}
	return func(d *admin.Service) (http.Handler, error) {
		return console.New(d, console.Options{Jaeger: *o.jaeger, JaegerUI: *o.jaegerUI, TraceService: *o.traceEdge}, log)
	}
}
