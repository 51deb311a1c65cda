package ui

import (
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
)

// PickerModel is a list to choose one item from: arrow keys move, typing
// filters (case-insensitive substring), Enter picks, Esc or Ctrl-C
// cancels.
type PickerModel struct {
	Title string
	Items []string
	// Height is how many items are visible at once (default 10).
	Height int
	Theme  *Theme

	filter   string
	cursor   int // index into visible()
	offset   int // first visible() index shown
	Chosen   string
	Canceled bool
}

// NewPicker returns a picker over items.
func NewPicker(title string, items []string, theme *Theme) PickerModel {
	if theme == nil {
		theme = NewTheme(false)
	}
	return PickerModel{Title: title, Items: items, Theme: theme, Height: 10}
}

// Filter returns the current filter text.
func (m PickerModel) Filter() string { return m.filter }

// Visible returns the items matching the filter.
func (m PickerModel) Visible() []string {
	if m.filter == "" {
		return m.Items
	}
	f := strings.ToLower(m.filter)
	var out []string
	for _, it := range m.Items {
		if strings.Contains(strings.ToLower(it), f) {
			out = append(out, it)
		}
	}
	return out
}

// Current returns the item under the cursor ("" if none matches).
func (m PickerModel) Current() string {
	v := m.Visible()
	if m.cursor < 0 || m.cursor >= len(v) {
		return ""
	}
	return v[m.cursor]
}

// Init implements tea.Model.
func (m PickerModel) Init() tea.Cmd { return nil }

// Update implements tea.Model.
func (m PickerModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	key, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	n := len(m.Visible())
	switch key.Type {
	case tea.KeyCtrlC, tea.KeyEsc:
		m.Canceled = true
		return m, tea.Quit
	case tea.KeyEnter:
		if c := m.Current(); c != "" {
			m.Chosen = c
			return m, tea.Quit
		}
		return m, nil
	case tea.KeyUp, tea.KeyCtrlP, tea.KeyShiftTab:
		if m.cursor > 0 {
			m.cursor--
		} else if n > 0 {
			m.cursor = n - 1
		}
	case tea.KeyDown, tea.KeyCtrlN, tea.KeyTab:
		if m.cursor < n-1 {
			m.cursor++
		} else {
			m.cursor = 0
		}
	case tea.KeyHome:
		m.cursor = 0
	case tea.KeyEnd:
		m.cursor = max(n-1, 0)
	case tea.KeyBackspace:
		if m.filter != "" {
			r := []rune(m.filter)
			m.filter = string(r[:len(r)-1])
			m.cursor = 0
		}
	case tea.KeyCtrlU:
		m.filter, m.cursor = "", 0
	case tea.KeyRunes, tea.KeySpace:
		m.filter += string(key.Runes)
		if key.Type == tea.KeySpace && len(key.Runes) == 0 {
			m.filter += " "
		}
		m.cursor = 0
	}
	m.scroll()
	return m, nil
}

func (m *PickerModel) scroll() {
	h := m.height()
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+h {
		m.offset = m.cursor - h + 1
	}
	if m.offset < 0 {
		m.offset = 0
	}
}

func (m PickerModel) height() int {
	if m.Height <= 0 {
		return 10
	}
	return m.Height
}

// View implements tea.Model.
func (m PickerModel) View() string {
	if m.Chosen != "" || m.Canceled {
		return ""
	}
	t := m.Theme
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", t.Accent.Render("?"), t.Bold.Render(m.Title))
	fmt.Fprintf(&b, "  %s %s%s\n", t.Dim.Render("filter:"), m.filter, t.Running.Render("▏"))
	v := m.Visible()
	if len(v) == 0 {
		fmt.Fprintf(&b, "  %s\n", t.Warn.Render("no match for "+fmt.Sprintf("%q", m.filter)+" (Backspace to edit)"))
	}
	end := min(m.offset+m.height(), len(v))
	for i := m.offset; i < end; i++ {
		if i == m.cursor {
			fmt.Fprintf(&b, "%s %s\n", t.Selected.Render(SymPointer), t.Selected.Render(v[i]))
		} else {
			fmt.Fprintf(&b, "  %s\n", v[i])
		}
	}
	if len(v) > end-m.offset {
		fmt.Fprintf(&b, "  %s\n", t.Dim.Render(fmt.Sprintf("(%d of %d)", end-m.offset, len(v))))
	}
	fmt.Fprintf(&b, "%s\n", t.Dim.Render("↑/↓ move · type to filter · enter select · esc cancel"))
	return b.String()
}
