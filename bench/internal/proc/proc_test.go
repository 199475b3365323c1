package proc

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestFreePortCanBeBound(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("binding the port FreePort returned: %v", err)
	}
	ln.Close()
}

// TestHelperMissing is run by TestMissingSkipsOutsideCIAndFailsUnderCI in a
// child process; on its own it does nothing.
func TestHelperMissing(t *testing.T) {
	if os.Getenv("PROC_HELPER") == "" {
		return
	}
	Missing(t, "frobnicator not installed")
}

func TestMissingSkipsOutsideCIAndFailsUnderCI(t *testing.T) {
	for _, c := range []struct{ ci, want string }{
		{"", "--- SKIP: TestHelperMissing"},
		{"true", "--- FAIL: TestHelperMissing"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "PROC_HELPER=1", "CI="+c.ci)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), c.want) || !strings.Contains(string(out), "frobnicator not installed") {
			t.Errorf("CI=%q: want %q and the message in the output, got:\n%s", c.ci, c.want, out)
		}
	}
}

func TestBufferKeepsWhatWasWritten(t *testing.T) {
	var b *Buffer
	if b.String() != "" {
		t.Fatal("a nil Buffer must read as empty")
	}
	b = new(Buffer)
	_, _ = b.Write([]byte("a"))
	_, _ = b.Write([]byte("b"))
	if b.String() != "ab" {
		t.Fatalf("String() = %q, want ab", b.String())
	}
}
