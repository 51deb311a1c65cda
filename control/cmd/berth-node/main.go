// Command berth-node is PID 1 of every berth node container, and the
// multicall binary for the components it supervises: run as
// "berth-node <component> [args]" (or through a symlink named after the
// component) it becomes that component.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/control/components"
	"github.com/berth-dev/berth/control/loadbalancer"
	"github.com/berth-dev/berth/control/node"
	"github.com/berth-dev/berth/control/sriov/cniplugin"
	"github.com/berth-dev/berth/control/supervisor"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	// A CNI plugin is found and run by its name in /opt/cni/bin, a link
	// to this binary.
	if name == nodeconfig.SRIOVCNIPlugin {
		os.Exit(cniplugin.Main())
	}
	if !components.Known(name) && len(args) > 0 && components.Known(args[0]) {
		name, args = args[0], args[1:]
	}
	if components.Known(name) {
		os.Exit(components.Run(name, args))
	}
	if len(args) > 0 && args[0] == "snapshot" {
		os.Exit(runSnapshot(args[1:]))
	}
	if len(args) > 0 && args[0] == "loadbalancer" {
		os.Exit(runLoadBalancer(args[1:]))
	}
	if len(args) > 0 && args[0] != "init" {
		fmt.Fprintf(os.Stderr, "berth-node: unknown command %q; run with no arguments as a node's PID 1, or with one of %v\n", args[0], components.Names())
		os.Exit(2)
	}

	// The node's own log goes to the container's output (docker logs) and
	// to a file beside the components' logs, where `berth create --trace`
	// reads it with them.
	var out io.Writer = os.Stdout
	if err := os.MkdirAll(supervisor.LogDir, 0o755); err == nil {
		if f, err := os.OpenFile(filepath.Join(supervisor.LogDir, "berth-node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			defer f.Close()
			out = io.MultiWriter(os.Stdout, f)
		}
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	components.StartCPUProfile("berth-node")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := node.Run(ctx, log); err != nil {
		log.Error("node failed", "err", err)
		os.Exit(1)
	}
}

// runLoadBalancer is the API server endpoint of a cluster with several
// control-plane nodes: berth-node loadbalancer --listen :6443 --backends a:6443,b:6443
func runLoadBalancer(args []string) int {
	fs := flag.NewFlagSet("loadbalancer", flag.ContinueOnError)
	listen := fs.String("listen", ":6443", "address to listen on")
	backends := fs.String("backends", "", "comma-separated backend addresses")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	lb := &loadbalancer.LB{Listen: *listen, Backends: strings.Split(*backends, ","), Log: log}
	if err := lb.Run(ctx); err != nil {
		log.Error("load balancer failed", "err", err)
		return 1
	}
	return 0
}
