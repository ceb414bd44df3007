package maildir

import (
	"fmt"
	"os"
	"testing"
)

// helperEnv selects a helper role when the test binary is re-executed as a
// separate process by the multi-process tests (concurrency, crash).
const helperEnv = "TERN_MAILDIR_HELPER"

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		if err := runHelper(role); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(role string) error {
	switch role {
	case "deliver":
		return helperDeliver()
	case "syncer":
		return helperSyncer()
	case "crash":
		return helperCrash()
	case "change":
		return helperChange()
	case "claim":
		return helperClaim()
	}
	return fmt.Errorf("unknown helper role %q", role)
}
