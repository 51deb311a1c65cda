// Package dockerstats reads the CPU and memory use of containers from the
// Docker engine, for `berth status`.
package dockerstats

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// Usage is a container's resource use.
type Usage struct {
	// CPUPercent is the CPU use over the engine's sampling interval
	// (100 = one core); negative when unknown.
	CPUPercent float64
	// MemoryBytes is the memory in use, without the page cache's
	// inactive files (what `docker stats` shows).
	MemoryBytes uint64
	// MemoryLimit is the container's limit (the host's memory if none).
	MemoryLimit uint64
}

// Client reads container stats.
type Client struct {
	api *client.Client
}

// New connects to the engine named by the environment (DOCKER_HOST or
// the local socket).
func New() (*Client, error) {
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("connecting to Docker: %w", err)
	}
	return &Client{api: api}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.api.Close() }

// Usage samples one container (the engine takes two samples about a
// second apart to compute the CPU use).
func (c *Client) Usage(ctx context.Context, name string) (Usage, error) {
	resp, err := c.api.ContainerStats(ctx, name, false)
	if err != nil {
		return Usage{CPUPercent: -1}, fmt.Errorf("reading stats of container %s: %w", name, err)
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return Usage{CPUPercent: -1}, fmt.Errorf("decoding stats of container %s: %w", name, err)
	}
	return FromStats(&s), nil
}

// UsageOf samples several containers in parallel; a container whose
// stats cannot be read is missing from the result and its error is
// returned (the first one).
func (c *Client) UsageOf(ctx context.Context, names []string) (map[string]Usage, error) {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
	)
	out := make(map[string]Usage, len(names))
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := c.Usage(ctx, n)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
				}
				return
			}
			out[n] = u
		}()
	}
	wg.Wait()
	return out, first
}

// FromStats computes the usage from one stats response, the way the
// docker CLI does.
func FromStats(s *container.StatsResponse) Usage {
	u := Usage{CPUPercent: -1, MemoryLimit: s.MemoryStats.Limit}
	cpuDelta := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	online := float64(s.CPUStats.OnlineCPUs)
	if online == 0 {
		online = float64(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	if s.PreCPUStats.SystemUsage != 0 && sysDelta > 0 && cpuDelta >= 0 {
		u.CPUPercent = cpuDelta / sysDelta * online * 100
	}
	mem := s.MemoryStats.Usage
	inactive, ok := s.MemoryStats.Stats["inactive_file"] // cgroup v2
	if !ok {
		inactive = s.MemoryStats.Stats["total_inactive_file"] // cgroup v1
	}
	if inactive < mem {
		mem -= inactive
	}
	u.MemoryBytes = mem
	return u
}
