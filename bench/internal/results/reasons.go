package results

import (
	"bufio"
	"io"
	"os"
	"strings"
)

// Reasons maps a goal's ID to the reason it was missed, as written by hand in
// bench/reasons.md: one line per goal, "- <ID>: <reason>" (the ID may be in
// backquotes). Other lines are ignored, so the file can explain itself.
type Reasons map[string]string

// ParseReasons reads reasons.md.
func ParseReasons(r io.Reader) (Reasons, error) {
	rs := Reasons{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "- ")
		if !ok {
			continue
		}
		id, reason, ok := strings.Cut(line, ":")
		id = strings.Trim(strings.TrimSpace(id), "`")
		if !ok || id == "" || strings.ContainsAny(id, " \t") {
			continue
		}
		if reason = strings.TrimSpace(reason); reason != "" {
			rs[id] = reason
		}
	}
	return rs, sc.Err()
}

// ReadReasons reads the named reasons file; a missing file means no reasons.
func ReadReasons(path string) (Reasons, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return Reasons{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseReasons(f)
}
