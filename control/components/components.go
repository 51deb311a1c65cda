// Package components runs one upstream Kubernetes component (or etcd) in
// the current process. berth-node is a multicall binary: the
// supervisor re-executes itself with the component's name as argv[1], and
// the name selects the entry point here. Every component gets a process of
// its own, so their process-global state (flags, feature gates, klog,
// signal handling) never collides.
package components

import (
	"context"
	"fmt"
	"github.com/berth-dev/berth/control/componentconfig"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"

	_ "time/tzdata" // CronJob time zones

	_ "k8s.io/client-go/plugin/pkg/client/auth"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"

	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// commands maps a component name to the constructor of its upstream command.
var commands = map[string]func() *cobra.Command{
	"kube-apiserver":          apiserver.NewAPIServerCommand,
	"kube-controller-manager": controllermanager.NewControllerManagerCommand,
	"kube-scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
	"kubelet":                 func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) },
	"kube-proxy":              proxy.NewProxyCommand,
}

// Names lists every component this binary can run.
func Names() []string {
	names := []string{"etcd"}
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Known reports whether name is a component this binary can run.
func Known(name string) bool {
	if name == "etcd" {
		return true
	}
	_, ok := commands[name]
	return ok
}

// IdleAfter is how long a component runs with Go's default GOGC first.
const IdleAfter = time.Minute

// tuneGC applies componentconfig.IdleGOGCEnv. Go has no setting for "collect lazily while
// starting, keep the heap small when idle": start-up allocates fast
// (GOGC=100 keeps collections, and CPU, down on the create's critical
// path), while an idle local cluster is judged by its memory, where
// GOGC=50 from the start cut the control-plane node by ~75 MiB
// (docs/performance.md).
// This is the one place berth-node can do both, since every component is
// this binary.
func tuneGC() {
	v := os.Getenv(componentconfig.IdleGOGCEnv)
	if v == "" {
		return
	}
	percent, err := strconv.Atoi(v)
	if err != nil || percent <= 0 {
		return
	}
	go func() {
		time.Sleep(IdleAfter)
		debug.SetGCPercent(percent)
		// A lower GOGC only bounds the heap's growth from now on; the
		// pages start-up touched stay resident until returned. One
		// collection that returns them, once, off the critical path.
		debug.FreeOSMemory()
		if h, err := strconv.Atoi(os.Getenv(componentconfig.IdleMemoryLimitEnv)); err == nil && h > 0 {
			runIdleLimit(h)
		}
	}()
}

// Run runs component name with args (not including the name) and returns
// the process exit code.
func Run(name string, args []string) int {
	tuneGC()
	StartCPUProfile(name)
	switch name {
	case "etcd":
		etcdmain.Main(append([]string{"etcd"}, args...))
		return 0
	}
	newCommand, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "berth-node: unknown component %q (known: %v)\n", name, Names())
		return 2
	}
	os.Args = append([]string{name}, args...)
	command := newCommand()
	command.SetArgs(args)
	return cli.Run(command)
}
