package boot

import (
	"strings"
	"testing"
)

// A cgroup v1 hybrid host's view inside a node container with a private
// cgroup namespace (Docker 20.10, as on the CI machines).
const hybridMountinfo = `1300 1299 0:120 / / rw,relatime master:500 - overlay overlay rw,lowerdir=/x
1305 1304 0:125 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs ro,mode=755
1306 1305 0:31 / /sys/fs/cgroup/systemd ro,nosuid,nodev,noexec,relatime master:11 - cgroup cgroup rw,xattr,name=systemd
1307 1305 0:34 / /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:15 - cgroup cgroup rw,memory
1308 1305 0:35 / /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime master:16 - cgroup cgroup rw,cpu,cpuacct
1309 1305 0:36 / /sys/fs/cgroup/unified ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
1310 1300 0:50 / /with\040space rw - cgroup cgroup rw,pids
`

func TestParseCgroupMounts(t *testing.T) {
	mounts, err := ParseCgroupMounts(strings.NewReader(hybridMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	want := []CgroupMount{
		{MountPoint: "/sys/fs/cgroup/systemd", FSType: "cgroup", Options: "xattr,name=systemd", ReadOnly: true},
		{MountPoint: "/sys/fs/cgroup/memory", FSType: "cgroup", Options: "memory", ReadOnly: true},
		{MountPoint: "/sys/fs/cgroup/cpu,cpuacct", FSType: "cgroup", Options: "cpu,cpuacct", ReadOnly: true},
		{MountPoint: "/sys/fs/cgroup/unified", FSType: "cgroup2", ReadOnly: true},
		{MountPoint: "/with space", FSType: "cgroup", Options: "pids"},
	}
	if len(mounts) != len(want) {
		t.Fatalf("got %d mounts, want %d: %+v", len(mounts), len(want), mounts)
	}
	for i := range want {
		if mounts[i] != want[i] {
			t.Errorf("mount %d = %+v, want %+v", i, mounts[i], want[i])
		}
	}
}

func TestSubtreeControl(t *testing.T) {
	got := SubtreeControl("cpuset cpu io memory hugetlb pids rdma misc\n")
	want := "+cpuset +cpu +io +memory +hugetlb +pids +rdma +misc"
	if got != want {
		t.Errorf("SubtreeControl = %q, want %q", got, want)
	}
	if got := SubtreeControl(""); got != "" {
		t.Errorf("SubtreeControl(empty) = %q, want empty", got)
	}
}
