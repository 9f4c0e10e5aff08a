// Command demo-shop is the demo upstream service: it answers every request
// with JSON naming the service, environment and version that served it and
// the graymesh headers it received, so a curl shows where a request went.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type reply struct {
	Service string            `json:"service"`
	Env     string            `json:"env"`
	Version string            `json:"version"`
	Path    string            `json:"path"`
	Gray    map[string]string `json:"graymesh_headers"`
}

func main() {
	fs := flag.NewFlagSet("demo-shop", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: demo-shop --listen ADDR --env ENV --version V\n\nA demo upstream that reports who served each request.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "127.0.0.1:9101", "address to serve on")
	service := fs.String("service", "shop", "service name to report")
	env := fs.String("env", "stable", "environment to report")
	version := fs.String("version", "v1", "version to report")
	_ = fs.Parse(os.Args[1:])

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", *service, "env", *env)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		out := reply{Service: *service, Env: *env, Version: *version, Path: r.URL.Path, Gray: map[string]string{}}
		for k, v := range r.Header {
			if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-gray-") {
				out.Gray[lk] = strings.Join(v, ",")
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Served-By", *service+"/"+*env+"/"+*version)
		_ = json.NewEncoder(w).Encode(out)
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("serving", "listen", *listen, "version", *version)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}
