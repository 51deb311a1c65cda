package nodeimage

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// MirrorFromAptSources returns the Debian archive URL the host's apt is
// configured with (deb822 .sources files first, then sources.list), so the
// node image comes from the same mirror as the host's own packages.
func MirrorFromAptSources(root string) (string, error) {
	sources, _ := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d/*.sources"))
	for _, path := range sources {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if m := mirrorFromDeb822(string(data)); m != "" {
			return m, nil
		}
	}
	lists := []string{filepath.Join(root, "etc/apt/sources.list")}
	more, _ := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d/*.list"))
	lists = append(lists, more...)
	for _, path := range lists {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if m := mirrorFromList(string(data)); m != "" {
			return m, nil
		}
	}
	return "", fmt.Errorf("no Debian mirror found in the host's apt sources: pass --debian-mirror URL")
}

// mirrorFromDeb822 finds the first stanza of type deb whose URI is a
// Debian main archive (not the security archive).
func mirrorFromDeb822(text string) string {
	for _, stanza := range strings.Split(text, "\n\n") {
		fields := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(stanza))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if k, v, ok := strings.Cut(line, ":"); ok {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !strings.Contains(fields["types"], "deb") || strings.Contains(fields["enabled"], "no") {
			continue
		}
		for _, uri := range strings.Fields(fields["uris"]) {
			if isMainArchive(uri, fields["suites"]) {
				return strings.TrimRight(uri, "/")
			}
		}
	}
	return ""
}

func mirrorFromList(text string) string {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		i := 1
		if strings.HasPrefix(f[1], "[") {
			for i < len(f) && !strings.HasSuffix(f[i], "]") {
				i++
			}
			i++
		}
		if i+1 < len(f) && isMainArchive(f[i], f[i+1]) {
			return strings.TrimRight(f[i], "/")
		}
	}
	return ""
}

func isMainArchive(uri, suites string) bool {
	if !strings.HasPrefix(uri, "http://") && !strings.HasPrefix(uri, "https://") {
		return false
	}
	return !strings.Contains(uri, "security") && !strings.Contains(suites, "security")
}
