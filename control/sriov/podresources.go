package sriov

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// PodResourcesSocket is the kubelet's PodResources API: which devices it
// allocated to which pod.
const PodResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// podResourcesTimeout bounds every call to the PodResources API: the
// kubelet answers from memory.
const podResourcesTimeout = 2 * time.Second

// withPodResources calls fn with a PodResources client on socket.
func withPodResources(ctx context.Context, socket string, fn func(context.Context, podresourcesapi.PodResourcesListerClient) error) error {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connecting to the kubelet's PodResources API: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, podResourcesTimeout)
	defer cancel()
	return fn(ctx, podresourcesapi.NewPodResourcesListerClient(conn))
}

// addDevices adds the device IDs of pod's containers to out, per resource
// name, keeping only the resources want has (all when want is nil).
func addDevices(out map[string][]string, pod *podresourcesapi.PodResources, want map[string]bool) {
	seen := map[string]bool{}
	for _, c := range pod.GetContainers() {
		for _, d := range c.GetDevices() {
			if want != nil && !want[d.GetResourceName()] {
				continue
			}
			for _, id := range d.GetDeviceIds() {
				key := d.GetResourceName() + "\x00" + id
				if !seen[key] {
					seen[key] = true
					out[d.GetResourceName()] = append(out[d.GetResourceName()], id)
				}
			}
		}
	}
}

// AllocatedDevices returns the IDs of the devices of resources the
// kubelet at socket has allocated to any pod.
func AllocatedDevices(ctx context.Context, socket string, resources map[string]bool) (map[string]bool, error) {
	byResource := map[string][]string{}
	err := withPodResources(ctx, socket, func(ctx context.Context, c podresourcesapi.PodResourcesListerClient) error {
		resp, err := c.List(ctx, &podresourcesapi.ListPodResourcesRequest{})
		if err != nil {
			return fmt.Errorf("listing pods in the kubelet's PodResources API: %w", err)
		}
		for _, pod := range resp.GetPodResources() {
			addDevices(byResource, pod, resources)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, ids := range byResource {
		for _, id := range ids {
			out[id] = true
		}
	}
	return out, nil
}

// PodDevices returns the IDs of the devices of resources (all when nil)
// the kubelet at socket allocated to the pod namespace/name, per resource
// name, in the order the kubelet lists them.
func PodDevices(ctx context.Context, socket, namespace, name string, resources map[string]bool) (map[string][]string, error) {
	out := map[string][]string{}
	err := withPodResources(ctx, socket, func(ctx context.Context, c podresourcesapi.PodResourcesListerClient) error {
		resp, err := c.Get(ctx, &podresourcesapi.GetPodResourcesRequest{PodNamespace: namespace, PodName: name})
		if err != nil {
			return fmt.Errorf("asking the kubelet's PodResources API about pod %s/%s: %w", namespace, name, err)
		}
		addDevices(out, resp.GetPodResources(), resources)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
