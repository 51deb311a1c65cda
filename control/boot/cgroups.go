// Package boot prepares a node container before any component starts:
// mount propagation, /dev/kmsg, kernel parameters and cgroups.
package boot

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// CgroupMount is one cgroup hierarchy as /proc/self/mountinfo shows it.
type CgroupMount struct {
	MountPoint string
	// FSType is "cgroup" (v1) or "cgroup2".
	FSType string
	// Options are the v1 hierarchy's identifying options, such as
	// "memory", "cpu,cpuacct" or "name=systemd" (empty for cgroup2).
	Options  string
	ReadOnly bool
}

// cgroupFilter keeps the cgroup mounts of a mount table.
var cgroupFilter = mountinfo.FSTypeFilter("cgroup", "cgroup2")

// ParseCgroupMounts returns the cgroup mounts listed in a mountinfo file.
func ParseCgroupMounts(r io.Reader) ([]CgroupMount, error) {
	infos, err := mountinfo.GetMountsFromReader(r, cgroupFilter)
	if err != nil {
		return nil, err
	}
	return cgroupMounts(infos), nil
}

func cgroupMounts(infos []*mountinfo.Info) []CgroupMount {
	var mounts []CgroupMount
	for _, info := range infos {
		m := CgroupMount{MountPoint: info.Mountpoint, FSType: info.FSType}
		for _, o := range strings.Split(info.Options, ",") {
			if o == "ro" {
				m.ReadOnly = true
			}
		}
		if info.FSType == "cgroup" {
			// A v1 hierarchy is identified by its superblock options,
			// less the read-write flag.
			var keep []string
			for _, o := range strings.Split(info.VFSOptions, ",") {
				if o == "rw" || o == "ro" || o == "" {
					continue
				}
				keep = append(keep, o)
			}
			m.Options = strings.Join(keep, ",")
		}
		mounts = append(mounts, m)
	}
	return mounts
}

// CgroupVersion reports 2 on a unified (v2-only) host, 1 otherwise.
func CgroupVersion(root string) int {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return 2
	}
	return 1
}

// SetupCgroups confines everything the node runs to the node container's
// own cgroup subtree and makes that subtree writable, so the kubelet can
// create /kubepods there. The container must run with a private cgroup
// namespace, so that its own cgroup is the root it sees.
func SetupCgroups() (int, error) {
	infos, err := mountinfo.GetMounts(cgroupFilter)
	if err != nil {
		return 0, fmt.Errorf("reading the mount table: %w", err)
	}
	mounts := cgroupMounts(infos)
	if CgroupVersion("/sys/fs/cgroup") == 2 {
		return 2, setupCgroupV2("/sys/fs/cgroup")
	}
	return 1, remountCgroupV1(mounts)
}

// remountCgroupV1 replaces each (read-only) hierarchy Docker mounted with
// a fresh mount of the same hierarchy. Inside a private cgroup namespace
// the fresh mount shows exactly the container's own subtree, writable.
func remountCgroupV1(mounts []CgroupMount) error {
	for _, m := range mounts {
		if !strings.HasPrefix(m.MountPoint, "/sys/fs/cgroup") {
			continue
		}
		if err := unix.Unmount(m.MountPoint, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmounting %s: %w", m.MountPoint, err)
		}
		var err error
		if m.FSType == "cgroup2" {
			err = unix.Mount("cgroup2", m.MountPoint, "cgroup2", 0, "")
		} else {
			err = unix.Mount("cgroup", m.MountPoint, "cgroup", 0, m.Options)
		}
		if err != nil {
			return fmt.Errorf("mounting cgroup %q on %s: %w", m.Options, m.MountPoint, err)
		}
	}
	return nil
}

// InitCgroup is where PID 1 and its helpers move on cgroup v2, so that
// the root of the node's subtree holds no processes and can delegate
// controllers to /kubepods (cgroup v2's "no internal processes" rule).
const InitCgroup = "init"

func setupCgroupV2(root string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err == nil && st.Flags&unix.ST_RDONLY != 0 {
		if err := unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_BIND, ""); err != nil {
			// A bind remount without MS_RDONLY clears read-only on the
			// mount point; fall back to a fresh cgroup2 mount.
			_ = unix.Unmount(root, unix.MNT_DETACH)
			if err := unix.Mount("cgroup2", root, "cgroup2", 0, ""); err != nil {
				return fmt.Errorf("making %s writable: %w", root, err)
			}
		}
	}
	initDir := filepath.Join(root, InitCgroup)
	if err := os.MkdirAll(initDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", initDir, err)
	}
	procs, err := os.ReadFile(filepath.Join(root, "cgroup.procs"))
	if err != nil {
		return fmt.Errorf("reading root cgroup.procs: %w", err)
	}
	for _, pid := range strings.Fields(string(procs)) {
		// A process may have exited meanwhile; that is fine.
		_ = os.WriteFile(filepath.Join(initDir, "cgroup.procs"), []byte(pid), 0o644)
	}
	controllers, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("reading cgroup.controllers: %w", err)
	}
	enable := SubtreeControl(string(controllers))
	if enable == "" {
		return nil
	}
	if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte(enable), 0o644); err != nil {
		return fmt.Errorf("enabling cgroup controllers %q: %w", enable, err)
	}
	return nil
}

// SubtreeControl turns the content of cgroup.controllers into the line
// that enables all of them for child cgroups.
func SubtreeControl(controllers string) string {
	var parts []string
	for _, c := range strings.Fields(controllers) {
		parts = append(parts, "+"+c)
	}
	return strings.Join(parts, " ")
}
