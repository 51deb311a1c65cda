// Package loadbalancer is a small TCP load balancer: the API server
// endpoint of a cluster with several control-plane nodes. It runs as
// `berth-node loadbalancer` in its own container, spreads connections
// over the backends round-robin and skips a backend that does not accept
// a connection, so losing one control-plane node goes unnoticed.
package loadbalancer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// LB proxies connections from Listen to Backends.
type LB struct {
	Listen      string
	Backends    []string
	DialTimeout time.Duration
	Log         *slog.Logger
	next        atomic.Uint64
}

// Run serves until ctx ends.
func (lb *LB) Run(ctx context.Context) error {
	if len(lb.Backends) == 0 {
		return errors.New("no backends")
	}
	if lb.DialTimeout == 0 {
		lb.DialTimeout = time.Second
	}
	l, err := net.Listen("tcp", lb.Listen)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	lb.Log.Info("load balancer listening", "addr", l.Addr().String(), "backends", lb.Backends)
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			lb.Log.Warn("accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go lb.serve(conn)
	}
}

// Dial connects to the next backend that accepts, trying each at most once.
func (lb *LB) Dial() (net.Conn, error) {
	start := lb.next.Add(1)
	var errs []error
	for i := range lb.Backends {
		b := lb.Backends[(int(start)+i)%len(lb.Backends)]
		c, err := net.DialTimeout("tcp", b, lb.DialTimeout)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (lb *LB) serve(client net.Conn) {
	defer client.Close()
	backend, err := lb.Dial()
	if err != nil {
		lb.Log.Warn("no backend answers", "err", err)
		return
	}
	defer backend.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	go pipe(backend, client)
	go pipe(client, backend)
	wg.Wait()
}
