package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// Right after `berth expose`, a Service's URLs are not usable yet: its
// pods may not be ready, and until kube-proxy has programmed the new node
// port (or MetalLB announces the load balancer address) a connection is
// refused or goes unanswered. `berth service` waits, up to --wait, until
// the Service has a ready endpoint and every URL it prints accepts a TCP
// connection, so that `curl "$(berth service web --url)"` works right away.

// dial opens a TCP connection to addr and closes it, within DialTimeout.
func (o *Options) dial(ctx context.Context, addr string) error {
	dial := o.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	ctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// answered reports whether a failed dial still got an answer from the
// address: a refused or reset connection means this host reaches it, and
// only nothing accepts connections on the port (yet). Timeouts, "no route
// to host" and "network is unreachable" mean the address is out of reach.
func answered(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// reachableTries is how many times a silent address is probed before it
// counts as out of reach. One unanswered SYN is not proof: on a loaded
// machine a node can be slow to answer, and the fallback (a port-forward
// kept open until Ctrl-C) would block a script's `--url` for good. Out of
// reach (Docker Desktop, a remote engine) stays silent every time.
const reachableTries = 3

// reachable tells whether this host reaches addr at all; a refusal counts
// as reachable.
func (o *Options) reachable(ctx context.Context, addr string) error {
	var err error
	for range reachableTries {
		if err = o.dial(ctx, addr); err == nil || answered(err) {
			return nil
		}
		// Only silence is retried: "no route" or "unreachable" is a
		// definite answer.
		var ne net.Error
		if ctx.Err() != nil || !(errors.As(err, &ne) && ne.Timeout()) {
			return err
		}
	}
	return err
}

// probeAddress is where to check that this host reaches the cluster's
// network: a node's address at the Service's node port, where it has one
// (a node answers there, if only with a refusal, as soon as it is up, while
// a load balancer address may not be announced yet), else the first target.
func probeAddress(svc *corev1.Service, nodes []corev1.Node, targets []Target) string {
	if np := nodePortTargets(svc, nodes); len(np) > 0 {
		return hostPort(np[0])
	}
	return hostPort(targets[0])
}

func hostPort(t Target) string {
	return net.JoinHostPort(t.IP, strconv.Itoa(int(t.Port)))
}

// readyEndpoints counts the endpoints in svc's EndpointSlices and those
// ready to serve (a missing condition means ready).
func readyEndpoints(ctx context.Context, client kubernetes.Interface, svc *corev1.Service) (ready, total int, err error) {
	list, err := client.DiscoveryV1().EndpointSlices(svc.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc.Name,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("listing EndpointSlices of service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	for _, slice := range list.Items {
		for _, ep := range slice.Endpoints {
			total++
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				ready++
			}
		}
	}
	return ready, total, nil
}

// errNotTried stands for the dial of a target that was not tried yet.
var errNotTried = errors.New("not tried yet")

// waitOutcome is how a wait for a Service's URLs ended.
type waitOutcome int

const (
	// urlsAnswer: every URL accepted a connection.
	urlsAnswer waitOutcome = iota
	// urlsMayNotAnswer: --wait passed first; the URLs are printed with a
	// warning.
	urlsMayNotAnswer
	// forwardInstead: a load balancer address never answered although
	// the nodes do; this host does not reach it, a port-forward will.
	forwardInstead
)

// afterWait decides what to do once --wait has passed, from the last dial
// error of each target (nil: it answered).
func afterWait(targets []Target, lastErr []error) waitOutcome {
	outcome := urlsAnswer
	for i, t := range targets {
		switch {
		case lastErr[i] == nil:
		case t.Via == ViaLoadBalancer && !answered(lastErr[i]):
			return forwardInstead
		default:
			outcome = urlsMayNotAnswer
		}
	}
	return outcome
}

// waitForURLs waits, up to o.Wait, until svc has a ready endpoint and each
// of targets accepts a TCP connection. It says on stderr what it waits
// for once that takes longer than o.NoticeAfter. Only an interrupt or a
// failing API call is an error; running out of time is an outcome.
func (o *Options) waitForURLs(ctx context.Context, svc *corev1.Service, targets []Target) (waitOutcome, error) {
	if o.Wait <= 0 {
		return urlsAnswer, nil
	}
	waitCtx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()
	note := startWaitNote(o.ErrOut, o.NoticeAfter)
	defer note.stop()
	name := svc.Namespace + "/" + svc.Name

	err := wait.PollUntilContextCancel(waitCtx, o.PollInterval, true, func(ctx context.Context) (bool, error) {
		ready, total, err := readyEndpoints(ctx, o.Client, svc)
		if err != nil {
			if ctx.Err() != nil {
				return false, nil
			}
			return false, err
		}
		if total == 0 {
			note.set(fmt.Sprintf("service %s to have endpoints (none yet)", name))
		} else {
			note.set(fmt.Sprintf("service %s to have a ready endpoint (%d of %d ready)", name, ready, total))
		}
		return ready > 0, nil
	})
	endpointsReady := err == nil
	lastErr := make([]error, len(targets))
	for i := range lastErr {
		lastErr[i] = errNotTried
	}
	if endpointsReady {
		// Each URL is polled on its own: kube-proxy programs every
		// node separately, and one slow node must not hide the others.
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(waitCtx)
		for i, t := range targets {
			g.Go(func() error {
				return wait.PollUntilContextCancel(gctx, o.PollInterval, true, func(ctx context.Context) (bool, error) {
					err := o.dial(ctx, hostPort(t))
					if err != nil && ctx.Err() != nil {
						// Cut short by the end of the wait: says
						// nothing about the address.
						return false, nil
					}
					mu.Lock()
					defer mu.Unlock()
					lastErr[i] = err
					if first := firstPending(targets, lastErr); first >= 0 {
						note.set(fmt.Sprintf("%s to accept connections", hostPort(targets[first])))
					}
					return err == nil, nil
				})
			})
		}
		err = g.Wait()
	}
	switch {
	case err == nil:
		return urlsAnswer, nil
	case ctx.Err() != nil:
		return urlsAnswer, ctx.Err()
	case !wait.Interrupted(err):
		return urlsAnswer, err
	case !endpointsReady:
		fmt.Fprintf(o.ErrOut, "warning: service %s has no ready endpoint after %v; printing its URLs anyway\n", name, o.Wait)
		return urlsMayNotAnswer, nil
	}
	outcome := afterWait(targets, lastErr)
	if first := firstPending(targets, lastErr); first >= 0 && outcome == urlsMayNotAnswer {
		fmt.Fprintf(o.ErrOut, "warning: %s does not accept connections after %v (%v); printing the URLs of service %s anyway\n",
			hostPort(targets[first]), o.Wait, lastErr[first], name)
	}
	return outcome, nil
}

// firstPending is the index of the first target whose last dial failed,
// or -1.
func firstPending(targets []Target, lastErr []error) int {
	for i := range targets {
		if lastErr[i] != nil {
			return i
		}
	}
	return -1
}

// waitNote tells on w what a wait is waiting for, once it has taken longer
// than after; shorter waits stay silent. A new line is written only when
// what is waited for changes.
type waitNote struct {
	w     io.Writer
	start time.Time
	after time.Duration
	timer *time.Timer

	mu      sync.Mutex
	what    string
	said    string
	stopped bool
}

func startWaitNote(w io.Writer, after time.Duration) *waitNote {
	n := &waitNote{w: w, start: time.Now(), after: after}
	n.timer = time.AfterFunc(after, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.sayLocked()
	})
	return n
}

func (n *waitNote) set(what string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.what = what
	if time.Since(n.start) >= n.after {
		n.sayLocked()
	}
}

func (n *waitNote) sayLocked() {
	if n.stopped || n.what == "" || n.what == n.said || n.w == nil {
		return
	}
	n.said = n.what
	fmt.Fprintf(n.w, "waiting for %s\n", n.what)
}

func (n *waitNote) stop() {
	n.timer.Stop()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopped = true
}
