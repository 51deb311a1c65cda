package loadbalancer

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

func echoServer(t *testing.T, reply string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(reply))
			c.Close()
		}
	}()
	return l.Addr().String()
}

func TestSkipsDeadBackends(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	alive := echoServer(t, "alive")
	lb := &LB{Listen: "127.0.0.1:0", Backends: []string{deadAddr, alive}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for i := 0; i < 4; i++ {
		c, err := lb.Dial()
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		got, _ := io.ReadAll(c)
		c.Close()
		if string(got) != "alive" {
			t.Fatalf("dial %d reached %q", i, got)
		}
	}
	lb2 := &LB{Backends: []string{deadAddr}, DialTimeout: 200 * time.Millisecond, Log: lb.Log}
	if _, err := lb2.Dial(); err == nil {
		t.Error("dialing only dead backends succeeded")
	}
}

func TestProxies(t *testing.T) {
	backend := echoServer(t, "through")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lb := &LB{Listen: addr, Backends: []string{backend}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go func() { _ = lb.Run(ctx) }()
	var c net.Conn
	var err error
	for i := 0; i < 50; i++ {
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	if string(got) != "through" {
		t.Errorf("proxied %q", got)
	}
}
