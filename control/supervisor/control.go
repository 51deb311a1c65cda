package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// ControlSocket is where a node's supervisor takes requests from other
// processes in the node (berth-node snapshot, run with docker exec).
const ControlSocket = "/run/berth/control.sock"

// MaxHold bounds how long a hold keeps components stopped, in case its
// client hangs without closing its connection.
const MaxHold = 2 * time.Minute

// The control endpoint is HTTP on a unix socket, with one operation:
//
//	POST /hold?component=A&component=B[&grace=DURATION]
//
// stops A and B (last named first; SIGTERM, then SIGKILL after grace,
// by default each component's own stop timeout; grace=0s kills at once), answers 200 with the line "held" once
// they are gone, and starts them again (in the order named) when the
// client closes its connection — whatever the reason: done, killed, or
// interrupted. A hold therefore cannot leave a component stopped: no
// "start" request is needed, so none can be lost. Holds of one component
// nest: it starts again when the last of them ends.
//
// Signals would need a separate stop/start pair per component and a way
// to learn that a stop completed; a connection's life carries both.

// holds counts the open holds per component.
type holds struct {
	mu    sync.Mutex
	count map[string]int
}

// Serve answers control requests on the unix socket at path until ctx
// ends.
func (s *Supervisor) Serve(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", path, err)
	}
	srv := &http.Server{Handler: s.controlHandler(ctx), BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Supervisor) controlHandler(ctx context.Context) http.Handler {
	h := &holds{count: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hold", func(w http.ResponseWriter, r *http.Request) {
		names := r.URL.Query()["component"]
		grace := time.Duration(-1)
		if g := r.URL.Query().Get("grace"); g != "" {
			d, err := time.ParseDuration(g)
			if err != nil {
				http.Error(w, "bad grace: "+err.Error(), http.StatusBadRequest)
				return
			}
			grace = d
		}
		var procs []*Process
		for _, name := range names {
			p := s.lookup(name)
			if p == nil {
				http.Error(w, fmt.Sprintf("no component %q", name), http.StatusNotFound)
				return
			}
			procs = append(procs, p)
		}
		h.mu.Lock()
		for _, p := range slices.Backward(procs) {
			if h.count[p.spec.Name] == 0 {
				s.log.Info("holding component", "component", p.spec.Name)
				if grace < 0 {
					p.Stop()
				} else {
					p.StopWithin(grace)
				}
			}
			h.count[p.spec.Name]++
		}
		h.mu.Unlock()
		defer func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			for _, p := range procs {
				h.count[p.spec.Name]--
				if h.count[p.spec.Name] == 0 {
					s.log.Info("releasing component", "component", p.spec.Name)
					p.Resume()
				}
			}
		}()
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "held")
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case <-r.Context().Done():
		case <-ctx.Done():
		case <-time.After(MaxHold):
			s.log.Warn("a hold outlived its limit; releasing", "components", names, "limit", MaxHold)
		}
	})
	return mux
}

// lookup returns the supervised process named name, or nil.
func (s *Supervisor) lookup(name string) *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.order {
		if p.spec.Name == name {
			return p
		}
	}
	return nil
}

// Hold asks the supervisor listening on socket to stop components (with
// grace between SIGTERM and SIGKILL; a negative grace is each
// component's own) and returns once they are stopped. They start again
// when release is called, or when this process exits.
func Hold(ctx context.Context, socket string, grace time.Duration, components ...string) (release func(), err error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	holdCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	q := url.Values{"component": components}
	if grace >= 0 {
		q.Set("grace", grace.String())
	}
	req, err := http.NewRequestWithContext(holdCtx, http.MethodPost, "http://berth-node/hold?"+q.Encode(), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Do(req)
		done <- result{resp, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		cancel()
		return nil, ctx.Err()
	}
	if res.err != nil {
		cancel()
		return nil, fmt.Errorf("asking the node's supervisor to stop %v: %w", components, res.err)
	}
	line, _ := bufio.NewReader(io.LimitReader(res.resp.Body, 512)).ReadString('\n')
	if res.resp.StatusCode != http.StatusOK || line != "held\n" {
		res.resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("the node's supervisor did not stop %v: %s %q", components, res.resp.Status, strings.TrimSpace(line))
	}
	return func() {
		res.resp.Body.Close()
		cancel()
		tr.CloseIdleConnections()
	}, nil
}
