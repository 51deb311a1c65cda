package sriov

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/berth-dev/berth/control/sriov/internal/podresourcestest"
)

func TestPodResources(t *testing.T) {
	fake := podresourcestest.Start(t, t.TempDir())
	fake.SetPod("default", "a",
		podresourcestest.Device{Container: "app", Resource: "berth.dev/ens1f0", IDs: []string{"0000:3b:02.1", "0000:3b:02.0"}},
		podresourcestest.Device{Container: "app", Resource: "nvidia.com/gpu", IDs: []string{"GPU-1"}},
		podresourcestest.Device{Container: "sidecar", Resource: "berth.dev/ens2f0", IDs: []string{"0000:5e:02.0"}},
	)
	fake.SetPod("default", "b")
	fake.SetPod("other", "c", podresourcestest.Device{Container: "app", Resource: "berth.dev/ens1f0", IDs: []string{"0000:3b:02.2"}})
	ctx := context.Background()
	mine := map[string]bool{"berth.dev/ens1f0": true, "berth.dev/ens2f0": true}

	got, err := PodDevices(ctx, fake.Socket, "default", "a", mine)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"berth.dev/ens1f0": {"0000:3b:02.1", "0000:3b:02.0"}, "berth.dev/ens2f0": {"0000:5e:02.0"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PodDevices(a) = %v, want %v", got, want)
	}
	if got, err := PodDevices(ctx, fake.Socket, "default", "b", mine); err != nil || len(got) != 0 {
		t.Errorf("PodDevices(b) = %v, %v; want none", got, err)
	}
	if _, err := PodDevices(ctx, fake.Socket, "default", "nosuchpod", mine); err == nil {
		t.Error("an unknown pod had devices")
	}
	all, err := AllocatedDevices(ctx, fake.Socket, map[string]bool{"berth.dev/ens1f0": true})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]bool{"0000:3b:02.0": true, "0000:3b:02.1": true, "0000:3b:02.2": true}; !reflect.DeepEqual(all, want) {
		t.Errorf("AllocatedDevices = %v, want %v", all, want)
	}
	if _, err := PodDevices(ctx, filepath.Join(t.TempDir(), "gone.sock"), "default", "a", mine); err == nil {
		t.Error("no error without a kubelet")
	}
}
