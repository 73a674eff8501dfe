// Command e2eserver is the containers test's own peer on the compose
// network (e2e/containers_test.go): a site for the monitor to check and a
// webhook receiver for the sink's notifications. Nothing else runs there.
//
//	e2eserver site    GET /ok/... answers 200 "sitewatch-e2e ok"; GET /flaky the same,
//	                  or 503 after POST /state?flaky=down (POST /state?flaky=up restores it)
//	e2eserver hooks   POST /hook records each request; GET /hooks lists them as JSON
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// hook is one webhook request the receiver recorded.
type hook struct {
	IdempotencyKey string          `json:"idempotency_key"`
	Signature      string          `json:"signature"`
	Body           json.RawMessage `json:"body"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: e2eserver site|hooks")
		os.Exit(2)
	}
	mux := http.NewServeMux()
	switch os.Args[1] {
	case "site":
		var down atomic.Bool
		mux.HandleFunc("GET /ok/", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "sitewatch-e2e ok\n")
		})
		mux.HandleFunc("GET /flaky", func(w http.ResponseWriter, _ *http.Request) {
			if down.Load() {
				http.Error(w, "sitewatch-e2e down", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "sitewatch-e2e ok\n")
		})
		mux.HandleFunc("POST /state", func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Query().Get("flaky") {
			case "down":
				down.Store(true)
			case "up":
				down.Store(false)
			default:
				http.Error(w, "flaky: want down or up", http.StatusBadRequest)
			}
		})
	case "hooks":
		var (
			mu    sync.Mutex
			hooks []hook
		)
		mux.HandleFunc("POST /hook", func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil || !json.Valid(body) {
				http.Error(w, "want a JSON body", http.StatusBadRequest)
				return
			}
			mu.Lock()
			hooks = append(hooks, hook{r.Header.Get("Idempotency-Key"), r.Header.Get("X-Sitewatch-Signature"), body})
			mu.Unlock()
		})
		mux.HandleFunc("GET /hooks", func(w http.ResponseWriter, _ *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(hooks)
		})
	default:
		fmt.Fprintf(os.Stderr, "e2eserver: unknown mode %q (want site or hooks)\n", os.Args[1])
		os.Exit(2)
	}
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("e2eserver %s listening on %s", os.Args[1], srv.Addr)
	log.Fatal(srv.ListenAndServe())
}
