package main

import (
	"sort"
	"strings"
)

// parseList reads `e2e.test --list-images`: one reference a line.
func parseList(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// matching returns the references of repository repo, in list order.
func (b *builder) matching(repo string) []string {
	var out []string
	for _, ref := range b.list {
		if strings.HasPrefix(ref, repo+":") {
			out = append(out, ref)
		}
	}
	return out
}

// first returns the first reference of repo in the list ("" if none).
func (b *builder) first(repo string) string {
	if m := b.matching(repo); len(m) > 0 {
		return m[0]
	}
	return ""
}

// want returns the reference the suite uses for test image name.
func (b *builder) want(name string) string { return b.first(testImages + name) }

// missing lists what the list names and was not built, but the pause
// image every node carries.
func (b *builder) missing(built []string) []string {
	have := map[string]bool{}
	for _, n := range built {
		have[n] = true
	}
	var out []string
	for _, ref := range b.list {
		if !have[ref] && !strings.HasPrefix(ref, "registry.k8s.io/pause:") {
			out = append(out, ref+"\n")
		}
	}
	return out
}

// listed returns the names of the test images, in build order.
func listed(images []built) []string {
	var out []string
	for _, i := range images {
		if i.test {
			out = append(out, i.img.Name)
		}
	}
	return out
}

func tag(ref string) string {
	return ref[strings.LastIndex(ref, ":")+1:]
}

// newest returns the reference with the highest tag, compared as
// versions (2.63.0 above 2.55); "" for none.
func newest(refs []string) string {
	if len(refs) == 0 {
		return ""
	}
	sorted := append([]string(nil), refs...)
	sort.SliceStable(sorted, func(i, j int) bool { return versionLess(tag(sorted[i]), tag(sorted[j])) })
	return sorted[len(sorted)-1]
}

// others returns refs without ref.
func others(refs []string, ref string) []string {
	var out []string
	for _, r := range refs {
		if r != ref {
			out = append(out, r)
		}
	}
	return out
}

// versionLess compares runs of digits as numbers and everything else as
// text, as `sort -V` does for tags.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da != db {
			return da // a number sorts before text
		}
		ra, rb := leadingRun(a, da), leadingRun(b, db)
		if ra != rb {
			if da {
				na, nb := strings.TrimLeft(ra, "0"), strings.TrimLeft(rb, "0")
				if len(na) != len(nb) {
					return len(na) < len(nb)
				}
				if na != nb {
					return na < nb
				}
			} else {
				return ra < rb
			}
		}
		a, b = a[len(ra):], b[len(rb):]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// leadingRun returns the leading run of digits (or of non-digits) of s.
func leadingRun(s string, digits bool) string {
	i := 0
	for i < len(s) && isDigit(s[i]) == digits {
		i++
	}
	return s[:i]
}
