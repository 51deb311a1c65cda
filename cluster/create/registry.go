package create

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/berth-dev/berth/cluster/registry"
)

// The local registry's steps (a config with registry set). The registry
// is shared by every cluster that uses it and outlives them: starting it
// has no undo (a failed create leaves it running for the next one);
// connecting it to this cluster's network is undone by disconnecting.
// Every node already has the certs.d files naming it (plan).

// ensureRegistry starts the machine's registry, creating it (and
// building its image) when there is none. It runs before anything of the
// cluster is made, so a registry on another port, or a taken port,
// fails the create early.
func ensureRegistry(ctx context.Context, s *state) error {
	_, err := registry.Ensure(ctx, s.p, s.cfg.RegistryPort(), s.opts.RegistryImage)
	return err
}

// connectRegistry attaches the registry to the cluster's network, after
// the nodes took their static addresses.
func connectRegistry(ctx context.Context, s *state) error {
	return registry.Connect(ctx, s.p, s.network.Name)
}

func disconnectRegistry(ctx context.Context, s *state) error {
	if s.network == nil {
		return nil
	}
	return registry.Disconnect(ctx, s.p, s.network.Name)
}

// Local registry hosting (KEP-1755): the ConfigMap
// kube-public/local-registry-hosting tells tools (Tilt, Skaffold, ...)
// where to push images for this cluster.
const (
	registryHostingNamespace = "kube-public"
	registryHostingName      = "local-registry-hosting"
	registryHostingKey       = "localRegistryHosting.v1"
)

// registryHosting is the KEP-1755 ConfigMap for a registry on port.
func registryHosting(port int) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: registryHostingName, Namespace: registryHostingNamespace},
		Data: map[string]string{registryHostingKey: fmt.Sprintf("host: %q\nhostFromContainerRuntime: %q\n",
			registry.HostAddress(port), registry.InNetworkAddress())},
	}
}

// publishRegistry writes the KEP-1755 ConfigMap (kube-public appears
// shortly after the API server answers).
func publishRegistry(ctx context.Context, s *state) error {
	cm := registryHosting(s.cfg.RegistryPort())
	var last error
	err := s.until(ctx, "the registry's ConfigMap could not be written", 200*time.Millisecond, func(ctx context.Context, c kubernetes.Interface) bool {
		cms := c.CoreV1().ConfigMaps(registryHostingNamespace)
		_, last = cms.Create(ctx, cm, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(last) {
			_, last = cms.Update(ctx, cm, metav1.UpdateOptions{})
		}
		return last == nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (last error: %v)", err, last)
	}
	return err
}
