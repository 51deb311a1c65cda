// Package noquery stops Lip Gloss from querying the terminal for its
// background colour when berth starts.
//
// Bubble Tea v1's init calls lipgloss.HasDarkBackground, which at a
// terminal writes an OSC 11 query and waits for the answer: garbage on
// the screen and a 5 s stall in terminals that do not answer, for every
// berth command. Setting the background explicitly first skips the
// query. This package must be initialised before Bubble Tea: Go
// initialises ready packages in import-path order, and this path sorts
// before github.com/charmbracelet/bubbletea while importing only Lip
// Gloss. Every package importing Bubble Tea in berth imports this one.
package noquery

import "github.com/charmbracelet/lipgloss"

func init() { lipgloss.SetHasDarkBackground(true) }
