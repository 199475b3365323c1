package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the child get SIGKILL if the demo dies first, so that no
// redis-server or member outlives it.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
