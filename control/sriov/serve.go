package sriov

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/util/wait"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// endpoint is where a plugin serves and whom it registers with.
type endpoint struct {
	// dir is the kubelet's device plugin directory: its registration
	// socket (kubelet.sock) and the plugins' sockets are in it.
	dir string
	// poll is how often the plugin looks at the directory when file
	// system notifications say nothing (or are unavailable).
	poll time.Duration
	// retry is the first pause after a failed registration; it doubles
	// up to maxRetry.
	retry, maxRetry time.Duration
}

func (e endpoint) kubeletSocket() string {
	return filepath.Join(e.dir, filepath.Base(pluginapi.KubeletSocket))
}

// serve serves the plugin on its socket in the kubelet's device plugin
// directory and registers it, and does both again whenever the kubelet
// restarts: a restarting kubelet deletes every plugin socket and creates
// a new kubelet.sock. It returns when ctx ends; failures are logged and
// retried.
func (p *Plugin) serve(ctx context.Context, e endpoint) {
	retry := e.retry
	for ctx.Err() == nil {
		err := p.serveOnce(ctx, e)
		if err == nil || ctx.Err() != nil {
			retry = e.retry
			continue
		}
		p.log.Warn("device plugin not registered; retrying", "err", err, "in", retry)
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
		retry = min(2*retry, e.maxRetry)
	}
}

// serveOnce waits for the kubelet, serves, registers and returns once the
// kubelet has restarted (nil) or anything failed.
func (p *Plugin) serveOnce(ctx context.Context, e endpoint) error {
	kubeletSock := e.kubeletSocket()
	if err := waitForSocket(ctx, kubeletSock, e.poll); err != nil {
		return err
	}
	kubeletID, err := fileID(kubeletSock)
	if err != nil {
		return err
	}
	sock := filepath.Join(e.dir, p.SocketName())
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	lis, err := (&net.ListenConfig{}).Listen(ctx, "unix", sock)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", sock, err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, p)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	defer func() {
		srv.Stop()
		<-done
	}()
	if err := register(ctx, kubeletSock, p.SocketName(), p.resource); err != nil {
		return err
	}
	p.log.Info("device plugin registered", "socket", sock, "devices", len(p.vfs))
	if err := waitForRestart(ctx, e, sock, kubeletID); err != nil {
		return err
	}
	if ctx.Err() == nil {
		p.log.Info("kubelet restarted; registering again")
	}
	return nil
}

// register tells the kubelet at kubeletSock that resource is served on
// endpoint (a socket name in the same directory).
func register(ctx context.Context, kubeletSock, endpoint, resource string) error {
	conn, err := grpc.NewClient("unix://"+kubeletSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connecting to the kubelet: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     endpoint,
		ResourceName: resource,
		Options:      options(),
	})
	if err != nil {
		return fmt.Errorf("registering %s with the kubelet: %w", resource, err)
	}
	return nil
}

// waitForRestart returns when ctx ends, the plugin's socket is gone or
// kubelet.sock is not the file it registered with. File system
// notifications wake it at once; the poll is the fallback.
func waitForRestart(ctx context.Context, e endpoint, sock string, kubeletID fileIdentity) error {
	kubeletSock := e.kubeletSocket()
	var events chan fsnotify.Event
	if w, err := fsnotify.NewWatcher(); err == nil {
		defer w.Close()
		if w.Add(e.dir) == nil {
			events = w.Events
		}
	}
	tick := time.NewTicker(e.poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			if ev.Name == kubeletSock && ev.Has(fsnotify.Create) {
				return nil
			}
		case <-tick.C:
		}
		if _, err := os.Stat(sock); err != nil {
			return nil
		}
		if id, err := fileID(kubeletSock); err != nil || id != kubeletID {
			return nil
		}
	}
}

// fileIdentity tells one file from another made at the same path later:
// inode numbers alone are reused as soon as a file is unlinked.
type fileIdentity struct {
	ino         uint64
	ctime, nsec int64
}

// fileID identifies the file at path: a new kubelet.sock differs.
func fileID(path string) (fileIdentity, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileIdentity{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdentity{}, fmt.Errorf("%s: no inode", path)
	}
	return fileIdentity{ino: st.Ino, ctime: st.Ctim.Sec, nsec: st.Ctim.Nsec}, nil
}

// waitForSocket returns once something accepts connections on the unix
// socket at path.
func waitForSocket(ctx context.Context, path string, poll time.Duration) error {
	return wait.PollUntilContextCancel(ctx, poll, true, func(ctx context.Context) (bool, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return false, nil
		}
		conn.Close()
		return true, nil
	})
}
