// Command report turns the JSON report of a ginkgo run of the upstream
// Kubernetes e2e suite into the Markdown section hack/conformance.sh puts
// in docs/conformance.md: counts, wall times and, per failure, its known
// cause (see causes).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// A cause explains failures whose test name or failure message matches.
type cause struct {
	match *regexp.Regexp
	kind  string // "berth bug", "outside berth" or "flaky"
	why   string
}

// causes is the list of failures understood so far; a failure matching
// none is reported as unclassified, to be looked at. (Earlier entries —
// the aggregator's images, nonewprivs, busybox's ash and environment
// variable names, image volumes pulled with pullPolicy Always — went away
// when hack/conformance/images.sh and the conformance mirror fixed them.)
var causes = []cause{
	{regexp.MustCompile(`/bin/sh: line 1: /file: Read-only file system`),
		"outside berth", "test image: until 2026-11-22 08:58 the busybox image's sh was bash (its error message is not ash's); the image now carries upstream's busybox built from source"},
	{regexp.MustCompile(`A suite timeout occurred`),
		"not a failure", "the run's TIMEOUT ended the suite while this test ran"},
	{regexp.MustCompile(`ErrImagePull|ImagePullBackOff|failed to pull|pull access denied|failed to resolve reference`),
		"outside berth", "the test pulls an image from a registry (none is reachable) or one not built by hack/conformance/images.sh"},
}

func main() {
	in := flag.String("json", "", "ginkgo JSON report")
	title := flag.String("title", "Conformance run", "section title")
	command := flag.String("command", "", "the command that ran, shown in the report")
	timings := flag.String("timings", "", "file of 'step seconds' lines to include")
	flag.Parse()
	if err := run(os.Stdout, *in, *title, *command, *timings); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, in, title, command, timings string) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var reports []types.Report
	if err := json.Unmarshal(data, &reports); err != nil {
		return fmt.Errorf("reading %s: %w", in, err)
	}
	if len(reports) == 0 {
		return fmt.Errorf("%s holds no report", in)
	}
	r := reports[0]

	var passed, failed, skipped, notSelected int
	var failures []types.SpecReport
	for _, s := range r.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt {
			if s.State.Is(types.SpecStateFailureStates) {
				failures = append(failures, s)
				failed++
			}
			continue
		}
		switch {
		case s.State == types.SpecStatePassed:
			passed++
		case s.State.Is(types.SpecStateFailureStates):
			failed++
			failures = append(failures, s)
		case s.State == types.SpecStateSkipped && s.Failure.Message != "":
			skipped++
		default:
			notSelected++
		}
	}

	fmt.Fprintf(w, "### %s\n\n", title)
	fmt.Fprintf(w, "Run %s", r.StartTime.UTC().Format("2006-01-02 15:04 MST"))
	if command != "" {
		fmt.Fprintf(w, ": `%s`", command)
	}
	fmt.Fprintf(w, "\n\n| passed | failed | skipped at run time | selected | suite wall time |\n|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| %d | %d | %d | %d | %s |\n\n", passed, failed, skipped, passed+failed+skipped, r.RunTime.Round(time.Second))
	if timings != "" {
		if t, err := os.ReadFile(timings); err == nil {
			fmt.Fprintf(w, "Wall time of each step of `hack/conformance.sh`:\n\n| step | seconds |\n|---|---|\n")
			for _, line := range strings.Split(strings.TrimSpace(string(t)), "\n") {
				if f := strings.Fields(line); len(f) == 2 {
					fmt.Fprintf(w, "| %s | %s |\n", f[0], f[1])
				}
			}
			fmt.Fprintln(w)
		}
	}
	if len(failures) == 0 {
		fmt.Fprintf(w, "No failures.\n")
		return nil
	}
	sort.Slice(failures, func(i, j int) bool { return name(failures[i]) < name(failures[j]) })
	fmt.Fprintf(w, "| failed test | cause | first line of the failure |\n|---|---|---|\n")
	for _, s := range failures {
		msg := firstLine(s.Failure.Message)
		kind, why := "unclassified", "not looked at yet: see the run's log"
		for _, c := range causes {
			if c.match.MatchString(name(s)) || c.match.MatchString(s.Failure.Message) {
				kind, why = c.kind, c.why
				break
			}
		}
		fmt.Fprintf(w, "| %s | **%s**: %s | %s |\n", md(name(s)), kind, md(why), md(msg))
	}
	return nil
}

func name(s types.SpecReport) string {
	n := strings.TrimSpace(strings.Join(append(append([]string{}, s.ContainerHierarchyTexts...), s.LeafNodeText), " "))
	if s.LeafNodeType != types.NodeTypeIt {
		n = fmt.Sprintf("[%s] %s", s.LeafNodeType, n)
	}
	return n
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 240 {
		s = s[:240] + "…"
	}
	return s
}

func md(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
