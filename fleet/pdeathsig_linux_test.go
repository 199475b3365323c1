package fleet

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a server or member process started by a test get
// SIGKILL if the test binary dies first (a panic, a timeout), so that none
// outlives the run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
