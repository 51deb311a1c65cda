package dockerstats

import (
	"testing"

	"github.com/docker/docker/api/types/container"
)

func TestFromStats(t *testing.T) {
	var s container.StatsResponse
	s.PreCPUStats.CPUUsage.TotalUsage = 1_000
	s.PreCPUStats.SystemUsage = 10_000
	s.CPUStats.CPUUsage.TotalUsage = 2_000
	s.CPUStats.SystemUsage = 20_000
	s.CPUStats.OnlineCPUs = 2
	s.MemoryStats.Usage = 500
	s.MemoryStats.Limit = 1000
	s.MemoryStats.Stats = map[string]uint64{"inactive_file": 100}
	u := FromStats(&s)
	if u.CPUPercent != 20 {
		t.Errorf("CPU = %v, want 20", u.CPUPercent)
	}
	if u.MemoryBytes != 400 || u.MemoryLimit != 1000 {
		t.Errorf("memory = %d/%d, want 400/1000", u.MemoryBytes, u.MemoryLimit)
	}

	// No previous sample: CPU unknown.
	s.PreCPUStats = container.CPUStats{}
	if u := FromStats(&s); u.CPUPercent >= 0 {
		t.Errorf("CPU without a previous sample = %v, want negative", u.CPUPercent)
	}
}
