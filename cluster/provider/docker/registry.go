package docker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/berth-dev/berth/cluster/provider"
)

// CreateRegistry creates the registry's volume (an existing one, with
// its images, is reused) and creates and starts its container on the
// engine's default network, publishing its port on the host. The
// restart policy brings it back after a crash or an engine restart.
func (p *Provider) CreateRegistry(ctx context.Context, spec provider.RegistrySpec) error {
	if _, err := p.api.VolumeCreate(ctx, volume.CreateOptions{Name: spec.Volume, Labels: spec.Labels}); err != nil {
		return fmt.Errorf("creating volume %s: %w", spec.Volume, err)
	}
	port, err := nat.NewPort("tcp", strconv.Itoa(spec.ContainerPort))
	if err != nil {
		return err
	}
	cfg := &container.Config{
		Image:        spec.Image,
		Hostname:     spec.Name,
		Labels:       spec.Labels,
		ExposedPorts: nat.PortSet{port: struct{}{}},
	}
	host := &container.HostConfig{
		PortBindings:  nat.PortMap{port: {{HostIP: ListenAddress(spec.ListenAddress), HostPort: strconv.Itoa(spec.HostPort)}}},
		Mounts:        []mount.Mount{{Type: mount.TypeVolume, Source: spec.Volume, Target: spec.DataDir}},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
	}
	if _, err := p.api.ContainerCreate(ctx, cfg, host, nil, nil, spec.Name); err != nil {
		return fmt.Errorf("creating the registry container %s: %w", spec.Name, err)
	}
	if err := p.api.ContainerStart(ctx, spec.Name, container.StartOptions{}); err != nil {
		// A container that cannot start (its port taken meanwhile) is
		// not left behind; the volume, possibly holding images, is.
		_ = p.api.ContainerRemove(context.WithoutCancel(ctx), spec.Name, container.RemoveOptions{Force: true})
		return fmt.Errorf("starting the registry container %s: %w", spec.Name, err)
	}
	return nil
}

// GetRegistry inspects the container called name.
func (p *Provider) GetRegistry(ctx context.Context, name string) (*provider.Registry, error) {
	info, err := p.api.ContainerInspect(ctx, name)
	if client.IsErrNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspecting container %s: %w", name, err)
	}
	r := &provider.Registry{Name: strings.TrimPrefix(info.Name, "/")}
	if info.Config != nil {
		r.Image = info.Config.Image
		r.Labels = info.Config.Labels
	}
	if info.State != nil {
		r.State = info.State.Status
	}
	if info.HostConfig != nil {
		for _, bindings := range info.HostConfig.PortBindings {
			for _, b := range bindings {
				if port, err := strconv.Atoi(b.HostPort); err == nil && r.HostPort == 0 {
					r.HostPort, r.ListenAddress = port, b.HostIP
				}
			}
		}
	}
	for _, m := range info.Mounts {
		if m.Type == mount.TypeVolume {
			r.Volume = m.Name
		}
	}
	if info.NetworkSettings != nil {
		for n := range info.NetworkSettings.Networks {
			r.Networks = append(r.Networks, n)
		}
		sort.Strings(r.Networks)
	}
	return r, nil
}

// StartRegistry starts the container called name.
func (p *Provider) StartRegistry(ctx context.Context, name string) error {
	if err := p.api.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting the registry container %s: %w", name, err)
	}
	return nil
}

// ConnectRegistry attaches the container to network under its own name
// (Docker's DNS on that network answers it).
func (p *Provider) ConnectRegistry(ctx context.Context, name, netName string) error {
	info, err := p.api.ContainerInspect(ctx, name)
	if err != nil {
		return fmt.Errorf("inspecting container %s: %w", name, err)
	}
	if info.NetworkSettings != nil {
		if _, ok := info.NetworkSettings.Networks[netName]; ok {
			return nil
		}
	}
	if err := p.api.NetworkConnect(ctx, netName, name, &network.EndpointSettings{Aliases: []string{name}}); err != nil {
		return fmt.Errorf("connecting %s to network %s: %w", name, netName, err)
	}
	return nil
}

// DisconnectRegistry detaches the container from network.
func (p *Provider) DisconnectRegistry(ctx context.Context, name, netName string) error {
	err := p.api.NetworkDisconnect(ctx, netName, name, true)
	if err == nil || client.IsErrNotFound(err) || strings.Contains(err.Error(), "is not connected") {
		return nil
	}
	return fmt.Errorf("disconnecting %s from network %s: %w", name, netName, err)
}

// DeleteRegistry removes the container (unless name is ""), then the
// volume.
func (p *Provider) DeleteRegistry(ctx context.Context, name, vol string) error {
	var errs []error
	if name != "" {
		if err := p.api.ContainerRemove(ctx, name, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, fmt.Errorf("removing container %s: %w", name, err))
		}
	}
	if vol != "" {
		if err := p.api.VolumeRemove(ctx, vol, true); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, fmt.Errorf("removing volume %s: %w", vol, err))
		}
	}
	return errors.Join(errs...)
}

// VolumeSize asks the engine's disk-usage report (which walks the
// volumes: it takes a moment) for a volume's size.
func (p *Provider) VolumeSize(ctx context.Context, vol string) (int64, error) {
	du, err := p.api.DiskUsage(ctx, types.DiskUsageOptions{Types: []types.DiskUsageObject{types.VolumeObject}})
	if err != nil {
		return -1, fmt.Errorf("reading Docker's disk usage: %w", err)
	}
	for _, v := range du.Volumes {
		if v != nil && v.Name == vol && v.UsageData != nil {
			return v.UsageData.Size, nil
		}
	}
	return -1, nil
}
