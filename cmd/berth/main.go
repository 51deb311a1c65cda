// Command berth creates local Kubernetes clusters in Docker and drives
// the workloads on them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-dev/berth/cmd/berth/commands"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := commands.Execute(ctx, commands.StdStreams())
	stop()
	os.Exit(code)
}
