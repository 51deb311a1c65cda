package ui

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// Snapshot is what `berth status` shows of a cluster at one moment.
type Snapshot struct {
	Cluster  string         `json:"cluster"`
	Time     time.Time      `json:"time"`
	Server   string         `json:"server,omitempty"`
	Nodes    []NodeStatus   `json:"nodes"`
	Warnings []WarningEvent `json:"warnings"`
	// Problems are parts of the snapshot that could not be read.
	Problems []string `json:"problems,omitempty"`
}

// NodeStatus is one node of a Snapshot.
type NodeStatus struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	Container string `json:"container"`
	// Status is Ready, NotReady, NotRegistered or Unknown, with
	// ",SchedulingDisabled" when cordoned.
	Status  string `json:"status"`
	Version string `json:"version,omitempty"`
	IP      string `json:"ip,omitempty"`
	// CPUPercent is the container's CPU use (100 = one core); negative
	// when unknown.
	CPUPercent  float64 `json:"cpuPercent"`
	MemoryBytes uint64  `json:"memoryBytes"`
	MemoryLimit uint64  `json:"memoryLimitBytes"`
	Pods        int     `json:"pods"`
	PodsReady   int     `json:"podsReady"`
	// Devices are the node's extended resources served by device plugins
	// (SR-IOV VFs): allocatable, and allocated to running pods.
	Devices []DeviceStatus `json:"devices,omitempty"`
}

// DeviceStatus is one extended resource of a node.
type DeviceStatus struct {
	Resource    string `json:"resource"`
	Allocatable int64  `json:"allocatable"`
	Allocated   int64  `json:"allocated"`
}

// WarningEvent is a recent Warning event of the cluster.
type WarningEvent struct {
	Time      time.Time `json:"time"`
	Namespace string    `json:"namespace"`
	Object    string    `json:"object"`
	Reason    string    `json:"reason"`
	Message   string    `json:"message"`
	Count     int32     `json:"count"`
}

// RenderSnapshot renders s as text (plain when theme has no colour).
func RenderSnapshot(s *Snapshot, theme *Theme, width int) string {
	if theme == nil {
		theme = NewTheme(false)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", theme.Bold.Render("Cluster"), theme.Accent.Render(s.Cluster))
	if s.Server != "" {
		fmt.Fprintf(&b, "  %s", theme.Dim.Render("API "+s.Server))
	}
	fmt.Fprintf(&b, "  %s\n\n", theme.Dim.Render(s.Time.Format("15:04:05")))

	var tb strings.Builder
	tw := tabwriter.NewWriter(&tb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tSTATUS\tCPU\tMEMORY\tPODS\tCONTAINER")
	for _, n := range s.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Role, n.Status, formatCPU(n.CPUPercent),
			formatMemory(n.MemoryBytes, n.MemoryLimit), fmt.Sprintf("%d/%d", n.PodsReady, n.Pods), n.Container)
	}
	_ = tw.Flush()
	// Colour after aligning: escape codes would confuse tabwriter.
	for i, line := range strings.Split(strings.TrimRight(tb.String(), "\n"), "\n") {
		switch {
		case i == 0:
			line = theme.Dim.Render(line)
		case i-1 < len(s.Nodes):
			n := s.Nodes[i-1]
			if strings.HasPrefix(n.Status, "Ready") {
				line = strings.Replace(line, n.Status, theme.OK.Render(n.Status), 1)
			} else {
				line = strings.Replace(line, n.Status, theme.Fail.Render(n.Status), 1)
			}
		}
		b.WriteString(truncate(line, width))
		b.WriteString("\n")
	}

	var devices []string
	for _, n := range s.Nodes {
		for _, d := range n.Devices {
			devices = append(devices, fmt.Sprintf("  %s %s %d/%d allocated", n.Name, d.Resource, d.Allocated, d.Allocatable))
		}
	}
	if len(devices) > 0 {
		fmt.Fprintf(&b, "\n%s\n", theme.Bold.Render("Devices"))
		for _, d := range devices {
			b.WriteString(truncate(d, width))
			b.WriteString("\n")
		}
	}

	b.WriteString("\n")
	if len(s.Warnings) == 0 {
		fmt.Fprintf(&b, "%s %s\n", theme.OK.Render(SymOK), "no warning events")
	} else {
		fmt.Fprintf(&b, "%s\n", theme.Warn.Render("Recent warnings"))
		for _, e := range s.Warnings {
			object := e.Object
			if e.Namespace != "" {
				object = e.Namespace + "/" + object
			}
			line := fmt.Sprintf("  %s %s %s: %s", theme.Dim.Render(e.Time.Format("15:04:05")), theme.Warn.Render(e.Reason), object, oneLine(e.Message))
			if e.Count > 1 {
				line += theme.Dim.Render(fmt.Sprintf(" (x%d)", e.Count))
			}
			b.WriteString(truncate(line, width))
			b.WriteString("\n")
		}
	}
	for _, p := range s.Problems {
		b.WriteString(truncate(fmt.Sprintf("%s %s", theme.Warn.Render(SymWarn), p), width))
		b.WriteString("\n")
	}
	return b.String()
}

func truncate(s string, width int) string {
	if width <= 1 {
		return s
	}
	return ansiTruncate(s, width-1)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func formatCPU(p float64) string {
	if p < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", p)
}

func formatMemory(used, limit uint64) string {
	if used == 0 {
		return "-"
	}
	return FormatBytes(used)
}

// FormatBytes renders a size in binary units: 512Mi, 1.2Gi.
func FormatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	suffix := []string{"Ki", "Mi", "Gi", "Ti", "Pi"}[exp]
	if v >= 100 {
		return fmt.Sprintf("%.0f%s", v, suffix)
	}
	return fmt.Sprintf("%.1f%s", v, suffix)
}

// StatusModel is the live `berth status` view: it fetches a snapshot
// every Interval and redraws; q, Esc or Ctrl-C quits.
type StatusModel struct {
	Fetch    func(ctx context.Context) (*Snapshot, error)
	Interval time.Duration
	Theme    *Theme
	Ctx      context.Context

	Snapshot *Snapshot
	Err      error
	width    int
	fetching bool
	Quit     bool
}

// SnapshotMsg carries the result of a fetch.
type SnapshotMsg struct {
	Snapshot *Snapshot
	Err      error
}

type tickMsg struct{}

// NewStatusModel returns the live view.
func NewStatusModel(ctx context.Context, fetch func(context.Context) (*Snapshot, error), interval time.Duration, theme *Theme) StatusModel {
	if theme == nil {
		theme = NewTheme(false)
	}
	return StatusModel{Fetch: fetch, Interval: interval, Theme: theme, Ctx: ctx}
}

func (m StatusModel) fetch() tea.Cmd {
	fetch, ctx := m.Fetch, m.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	return func() tea.Msg {
		s, err := fetch(ctx)
		return SnapshotMsg{Snapshot: s, Err: err}
	}
}

// Init implements tea.Model: the first fetch starts at once.
func (m StatusModel) Init() tea.Cmd { return m.fetch() }

// Update implements tea.Model.
func (m StatusModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "esc", "ctrl+c":
			m.Quit = true
			return m, tea.Quit
		case "r":
			if !m.fetching {
				m.fetching = true
				return m, m.fetch()
			}
		}
	case tea.WindowSizeMsg:
		m.width = msg.Width
	case SnapshotMsg:
		m.fetching = false
		if msg.Err != nil {
			m.Err = msg.Err
		} else {
			m.Snapshot, m.Err = msg.Snapshot, nil
		}
		interval := m.Interval
		if interval <= 0 {
			interval = 2 * time.Second
		}
		return m, tea.Tick(interval, func(time.Time) tea.Msg { return tickMsg{} })
	case tickMsg:
		if !m.fetching {
			m.fetching = true
			return m, m.fetch()
		}
	}
	return m, nil
}

// View implements tea.Model.
func (m StatusModel) View() string {
	var b strings.Builder
	if m.Snapshot == nil && m.Err == nil {
		b.WriteString(m.Theme.Running.Render(SpinnerFrames[0]) + " reading the cluster…\n")
	}
	if m.Snapshot != nil {
		b.WriteString(RenderSnapshot(m.Snapshot, m.Theme, m.width))
	}
	if m.Err != nil {
		b.WriteString(truncate(fmt.Sprintf("%s %s", m.Theme.Fail.Render(SymFail), oneLine(m.Err.Error())), m.width))
		b.WriteString("\n")
	}
	if !m.Quit {
		b.WriteString("\n" + m.Theme.Dim.Render("refreshing every "+FormatDuration(m.interval())+" · r refresh now · q quit") + "\n")
	}
	return b.String()
}

func (m StatusModel) interval() time.Duration {
	if m.Interval <= 0 {
		return 2 * time.Second
	}
	return m.Interval
}
