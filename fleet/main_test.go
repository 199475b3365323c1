package fleet

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(memberEnv); spec != "" {
		runMemberProcess(spec) // a fleet member for the integration tests; exits
	}
	goleak.VerifyTestMain(m)
}
