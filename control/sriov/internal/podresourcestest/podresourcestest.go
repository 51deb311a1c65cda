// Package podresourcestest is a fake kubelet PodResources API on a unix
// socket, for the tests of the device plugin and the CNI plugin.
package podresourcestest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// Server answers List and Get from Pods.
type Server struct {
	podresourcesapi.UnimplementedPodResourcesListerServer
	// Socket is the path the server listens on.
	Socket string

	mu   sync.Mutex
	pods []*podresourcesapi.PodResources
}

// Start serves an empty fake in dir until the test ends.
func Start(t *testing.T, dir string) *Server {
	t.Helper()
	s := &Server{Socket: filepath.Join(dir, "kubelet.sock")}
	lis, err := net.Listen("unix", s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	podresourcesapi.RegisterPodResourcesListerServer(srv, s)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return s
}

// Device is one container device of a pod.
type Device struct {
	Container, Resource string
	IDs                 []string
}

// SetPod makes namespace/name a pod with devs.
func (s *Server) SetPod(namespace, name string, devs ...Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pod := &podresourcesapi.PodResources{Namespace: namespace, Name: name}
	byContainer := map[string]*podresourcesapi.ContainerResources{}
	for _, d := range devs {
		c := byContainer[d.Container]
		if c == nil {
			c = &podresourcesapi.ContainerResources{Name: d.Container}
			byContainer[d.Container] = c
			pod.Containers = append(pod.Containers, c)
		}
		c.Devices = append(c.Devices, &podresourcesapi.ContainerDevices{ResourceName: d.Resource, DeviceIds: d.IDs})
	}
	for i, p := range s.pods {
		if p.Namespace == namespace && p.Name == name {
			s.pods[i] = pod
			return
		}
	}
	s.pods = append(s.pods, pod)
}

// List returns every pod.
func (s *Server) List(context.Context, *podresourcesapi.ListPodResourcesRequest) (*podresourcesapi.ListPodResourcesResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &podresourcesapi.ListPodResourcesResponse{PodResources: s.pods}, nil
}

// Get returns one pod, or the kubelet's error for an unknown one.
func (s *Server) Get(_ context.Context, req *podresourcesapi.GetPodResourcesRequest) (*podresourcesapi.GetPodResourcesResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pods {
		if p.Namespace == req.PodNamespace && p.Name == req.PodName {
			return &podresourcesapi.GetPodResourcesResponse{PodResources: p}, nil
		}
	}
	return nil, fmt.Errorf("pod %s in namespace %s not found", req.PodName, req.PodNamespace)
}
